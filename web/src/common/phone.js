// What the phone pages (/owner/, /grid/) share: the top bar, a live countdown to a deadline, an update's id,
// a form whose refusal is shown in it, and the street's time for a datetime-local field.
import { streetTime } from "./api.js";
import { signOutButton } from "./session.js";
import { h, notify } from "../workbench/dom.js";

export function topBar(title, me) {
  return h("header", { class: "bar" }, h("h1", {}, title),
    h("span", { class: "who", id: "who" }, me.display_name || me.username), signOutButton());
}

function span(ms) {
  const m = Math.floor(Math.abs(ms) / 60000);
  const d = Math.floor(m / 1440), hh = Math.floor((m % 1440) / 60), mm = m % 60;
  return d ? `${d}天${hh}小时` : hh ? `${hh}小时${mm}分` : `${mm}分`;
}

// "剩余 3小时12分" / "已超期 1天2小时", kept current by tick() below.
export function countdown(dueAt) {
  if (!dueAt) return h("span", { class: "due muted" }, "无期限");
  return h("span", { class: "due", "data-due": dueAt }, text(dueAt));
}

function text(dueAt) {
  const left = new Date(dueAt) - Date.now();
  return left >= 0 ? `剩余 ${span(left)}（${streetTime(dueAt)} 前）` : `已超期 ${span(left)}（期限 ${streetTime(dueAt)}）`;
}

setInterval(() => {
  for (const el of document.querySelectorAll("[data-due]")) {
    el.textContent = text(el.dataset.due);
    el.classList.toggle("late", new Date(el.dataset.due) < Date.now());
  }
}, 1000);

// Work time left on the street's calendar (supervision counts it): "工作时间剩余 5小时".
export function workLeft(seconds) {
  if (seconds === null || seconds === undefined) return null;
  return seconds > 0 ? `按工作日历剩余 ${span(seconds * 1000)}` : "按工作日历已无剩余时间";
}

// An id for one update or report, made once when the person acts (so a retry is the same update).
export function newId(prefix = "") {
  const rand = globalThis.crypto && crypto.getRandomValues
    ? [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("")
    : Math.random().toString(16).slice(2, 18);
  return `${prefix}${Date.now().toString(36)}-${rand}`;
}

// A form that runs `work` on submit with its button disabled; a refusal's reason is shown in the form and on top.
export function actionForm({ title, action, submit = "提交", fields = [], work, cls = "" }) {
  const refusal = h("p", { class: "refusal", role: "alert", "data-role": "refusal" });
  const button = h("button", { type: "submit", class: `primary ${cls}`, "data-action": action }, submit);
  const form = h("form", {
    class: "action", "data-form": action,
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      refusal.textContent = "";
      try {
        await work(form);
      } catch (err) {
        refusal.textContent = `未成功：${err.message}`;
        notify(`${title}未成功：${err.message}`, "error");
      } finally {
        button.disabled = false;
      }
    },
  }, title ? h("h3", {}, title) : null, fields, button, refusal);
  return form;
}

// datetime-local's "2026-12-08T17:30" read in the street's zone (Asia/Shanghai, +08:00 all year).
export function streetIso(local) {
  return local ? `${local.length === 16 ? `${local}:00` : local}+08:00` : null;
}

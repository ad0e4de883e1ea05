// 指挥中心工作台: the operator signs in, works the queues, opens a case, searches by number, address or phone.
import { ApiError, api, streetTime } from "../common/api.js";
import { signOutButton, signedIn } from "../common/session.js";
import { renderCase } from "./casepage.js";
import { clear, h, notify } from "./dom.js";
import { STATES, stateLabel } from "./labels.js";
import { QUEUES, queue } from "./queues.js";
import { categories, forget, owners } from "./reference.js";

const app = document.getElementById("app");
let current = { queue: "held", filters: {}, selected: null, results: null };

// ---- sign-in: the person signs in with username and password (common/session.js); the cookie does the rest --

let me = null;

// ---- the shell --------------------------------------------------------------------------------

function searchForm() {
  const input = h("input", { id: "search", type: "search", placeholder: "案件编号 / 地址 / 手机号", size: 28 });
  return h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); search(input.value.trim()); } },
    input, h("button", { type: "submit", id: "search-go" }, "查询"));
}

function shell() {
  const nav = h("nav", { class: "queues", id: "queues" }, QUEUES.map((q) => h("a", {
    href: `#/q/${q.id}`, "data-queue": q.id, title: q.hint,
  }, h("span", {}, q.title), q.filters ? null : h("span", { class: "count", "data-count": q.id }, "…"))),
  h("a", { href: "/report", class: "report-link" }, "周例会通报 ›"));
  clear(app,
    h("header", { class: "top" }, h("h1", {}, "指挥中心工作台"), searchForm(),
      h("span", { class: "clock", id: "clock" }), h("span", { class: "who", id: "who" }, me ? me.display_name : ""),
      signOutButton()),
    nav,
    h("main", {}, h("div", { id: "notice", class: "notice", role: "status" }),
      h("div", { class: "split" }, h("section", { id: "list", class: "list" }), h("section", { id: "detail", class: "detail" },
        h("p", { class: "muted" }, "在左侧选择一件案件")))),
    h("datalist", { id: "unit-grid-codes" }));
  const tick = () => { const c = document.getElementById("clock"); if (c) c.textContent = streetTime(new Date().toISOString()); };
  tick();
  setInterval(tick, 30000);
}

async function refreshCounts() {
  await Promise.all(QUEUES.filter((q) => !q.filters).map(async (q) => {
    const el = document.querySelector(`[data-count="${q.id}"]`);
    try {
      const found = await q.load();
      if (el) el.textContent = String(found.length);
    } catch {
      if (el) el.textContent = "!";
    }
  }));
}

// ---- lists ------------------------------------------------------------------------------------

function table(cases, note) {
  if (!cases.length) return h("p", { class: "muted empty" }, "没有案件");
  return h("table", { class: "grid cases" },
    h("thead", {}, h("tr", {}, ["编号", "状态", "类别", "网格", "描述", "责任单位", "期限", "要点"].map((t) => h("th", {}, t)))),
    h("tbody", {}, cases.map((c) => h("tr", {
      "data-case": c.case_no, class: [c.case_no === current.selected ? "selected" : "", c.overdue ? "late" : ""].join(" "),
      onclick: () => select(c.case_no),
    }, h("td", { class: "no" }, c.case_no), h("td", {}, stateLabel(c.state)), h("td", {}, c.category || "—"),
      h("td", {}, c.unit_grid || "—"), h("td", { class: "text" }, (c.description || "").slice(0, 60)),
      h("td", {}, c.owner_name || c.owner || "—"), h("td", {}, streetTime(c.due_at)), h("td", { class: "text" }, note(c))))));
}

async function filterBar() {
  const f = current.filters;
  const opt = (value, label, selected) => h("option", { value, selected: selected === value }, label);
  const state = h("select", { name: "state" }, opt("", "全部状态", f.state || ""), Object.entries(STATES).map(([k, v]) => opt(k, v, f.state)));
  const [cats, own] = await Promise.all([categories(), owners()]);
  const community = h("select", { name: "community" }, opt("", "全部社区", f.community || ""),
    own.filter((o) => o.kind === "community").map((o) => opt(o.code, o.name, f.community)));
  const category = h("select", { name: "category" }, opt("", "全部类别", f.category || ""), cats.map((c) => opt(c.code, `${c.name}（${c.code}）`, f.category)));
  const owner = h("select", { name: "owner" }, opt("", "全部责任单位", f.owner || ""), own.map((o) => opt(o.code, o.name, f.owner)));
  const overdue = h("input", { type: "checkbox", name: "overdue", checked: f.overdue === "true" });
  return h("form", {
    class: "filters", onsubmit: (e) => {
      e.preventDefault();
      current.filters = Object.fromEntries([["state", state.value], ["community", community.value], ["category", category.value],
        ["owner", owner.value], ["overdue", overdue.checked ? "true" : ""]].filter(([, v]) => v));
      showList();
    },
  }, state, community, category, owner, h("label", {}, overdue, "仅超期"), h("button", { type: "submit" }, "筛选"));
}

async function showList() {
  const box = document.getElementById("list");
  if (!box) return;
  if (current.results) {
    const r = current.results;
    clear(box, h("h2", {}, r.title), h("p", { class: "hint" }, r.hint, " ", h("a", { href: `#/q/${current.queue}`, onclick: () => { current.results = null; } }, "返回队列")),
      table(r.cases, (c) => stateLabel(c.state)));
    return;
  }
  const q = queue(current.queue);
  document.querySelectorAll("[data-queue]").forEach((a) => a.classList.toggle("active", a.dataset.queue === q.id));
  clear(box, h("h2", {}, q.title), h("p", { class: "hint" }, q.hint), q.filters ? await filterBar() : null, h("p", { class: "muted" }, "加载中…"));
  try {
    const cases = await q.load(current.filters);
    box.lastChild.replaceWith(table(cases, q.note));
  } catch (err) {
    box.lastChild.replaceWith(h("p", { class: "error" }, `无法加载：${err.message}`));
  }
}

async function select(no) {
  current.selected = no;
  document.querySelectorAll("tr[data-case]").forEach((tr) => tr.classList.toggle("selected", tr.dataset.case === no));
  const pane = document.getElementById("detail");
  clear(pane, h("p", { class: "muted" }, `案件 ${no} 加载中…`));
  try {
    clear(pane, await renderCase(no, afterAction));
  } catch (err) {
    clear(pane, h("p", { class: "error" }, err instanceof ApiError && err.status === 404 ? `没有编号为 ${no} 的案件` : `无法加载案件 ${no}：${err.message}`));
  }
}

async function afterAction() {
  await Promise.all([refreshCounts(), showList()]);
  if (current.selected) await select(current.selected);
  followUp(current.selected, 0);
}

// The other services take the next step a moment later (立案 → 派遣): look again a few times, and redraw
// the case only when its state has moved (never under an operator's hands otherwise).
function followUp(no, tries) {
  if (!no || tries >= 4) return;
  setTimeout(async () => {
    if (current.selected !== no) return;
    const shown = document.querySelector("article.case")?.dataset.state;
    const now = await api(`/api/v1/cases/${encodeURIComponent(no)}`).catch(() => null);
    if (now && now.state !== shown && current.selected === no) {
      await Promise.all([refreshCounts(), showList(), select(no)]);
    } else {
      followUp(no, tries + 1);
    }
  }, 1500);
}

// ---- search: case number, phone (matched in notify, never shown in full), or address words ---------------

const CASE_NO = /^\d{8}-\d{3,6}$/;
const PHONE = /^[+\d\s()-]{7,20}$/;

async function search(text) {
  if (!text) return;
  try {
    if (CASE_NO.test(text)) {
      current.results = { title: `案件编号 ${text}`, hint: "", cases: (await api("/api/v1/cases/search", { query: { case_no: text } })).cases };
    } else if (PHONE.test(text) && text.replace(/\D/g, "").length >= 7) {
      const found = await api("/api/v1/contacts/lookup", { method: "POST", body: { phone: text } });
      const cases = found.case_nos.length
        ? (await api(`/api/v1/cases/search?${found.case_nos.map((n) => `case_no=${encodeURIComponent(n)}`).join("&")}`)).cases : [];
      current.results = { title: `手机号 ${found.phone} 反映的案件`, hint: `共 ${cases.length} 件（号码只在通知服务中比对，不在此显示）`, cases };
      document.getElementById("search").value = found.phone; // the full number does not stay on screen
    } else {
      current.results = { title: `地址或描述含“${text}”`, hint: "", cases: (await api("/api/v1/cases/search", { query: { q: text } })).cases };
    }
    await showList();
    if (current.results.cases.length === 1) await select(current.results.cases[0].case_no);
  } catch (err) {
    notify(`查询未成功：${err.message}`, "error");
  }
}

// ---- routes: #/q/<queue>, #/case/<no> -------------------------------------------------------------

async function route() {
  const [, kind, value] = (location.hash || "#/q/held").split("/");
  if (kind === "case" && value) {
    await showList();
    await select(decodeURIComponent(value));
    return;
  }
  current.queue = queue(value).id;
  current.results = null;
  await showList();
}

async function start() {
  shell();
  if (!start.listening) window.addEventListener("hashchange", route);
  start.listening = true;
  await Promise.all([refreshCounts(), route()]);
  document.body.dataset.ready = "1";
}

signedIn({ roles: ["operator", "admin"], title: "网格化管理 · 指挥中心工作台" }).then((person) => {
  me = person;
  forget();
  return start();
});

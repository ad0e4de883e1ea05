// Sign-in as a person (DESIGN "People and their screens"): the session cookie (HttpOnly, set by
// POST /api/v1/sessions) is all the page has; it never sees a token. signedIn() resolves with `me` once the
// person is signed in with one of `roles`, showing a Chinese sign-in form until then.
// (Minimal version written by the pages' branch against the agreed interface; the sessions branch owns it.)
import { ApiError, api } from "./api.js";

const ROLE_NAMES = { operator: "指挥中心受理员", terminal: "网格员", owner: "责任单位", admin: "管理员" };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function form({ title, message }, resolve) {
  const username = el("input", { id: "username", name: "username", autocomplete: "username", placeholder: "用户名", required: "" });
  const password = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", placeholder: "密码", required: "" });
  const error = el("p", { id: "sign-in-error", class: "error", role: "alert" }, message || "");
  const button = el("button", { id: "sign-in", type: "submit", class: "primary" }, "登录");
  const box = el("form", {
    class: "sign-in",
    onsubmit: async (e) => {
      e.preventDefault();
      button.disabled = true;
      error.textContent = "";
      try {
        const me = await api("/api/v1/sessions", { method: "POST", body: { username: username.value.trim(), password: password.value } });
        resolve(me);
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) error.textContent = `用户名或密码不正确（${err.message}）`;
        else if (err instanceof ApiError && err.status === 429) error.textContent = `尝试次数过多，请稍后再试（${err.message}）`;
        else error.textContent = `暂时无法登录：${err.message}`;
      } finally {
        button.disabled = false;
      }
    },
  }, el("h1", {}, title), username, password, button, error);
  return el("div", { class: "sign-in-page" }, box);
}

export async function signedIn({ roles, title }) {
  const app = document.getElementById("app");
  let me = null;
  try {
    me = await api("/api/v1/sessions");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
  }
  let message = "";
  for (;;) {
    if (me && roles.includes(me.role)) return me;
    if (me) {
      message = `此账号（${me.username}，${ROLE_NAMES[me.role] || me.role}）不能使用本页面，请用${roles.map((r) => ROLE_NAMES[r] || r).join("或")}账号登录`;
      await api("/api/v1/sessions", { method: "DELETE" }).catch(() => {});
    }
    me = await new Promise((resolve) => app.replaceChildren(form({ title, message }, resolve)));
  }
}

export function signOutButton() {
  return el("button", {
    type: "button", id: "sign-out",
    onclick: async () => {
      await api("/api/v1/sessions", { method: "DELETE" }).catch(() => {});
      location.reload();
    },
  }, "退出");
}

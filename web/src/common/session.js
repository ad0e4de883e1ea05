// People sign in as people: the pages ask who is signed in (GET /api/v1/sessions) and, if nobody is, show a
// Chinese sign-in form. The session is an HttpOnly cookie set by POST /api/v1/sessions: page code never sees a
// token, and api() (api.js) sends the cookie with the X-Requested-With header the services demand of changes.
//
//   const me = await signedIn({ roles: ["owner"], title: "责任单位 · 我的任务" });
//   header.append(signOutButton());
import { ApiError, api } from "./api.js";

const ROLE_LABELS = { operator: "指挥中心", terminal: "网格员", owner: "责任单位", admin: "管理员" };

const STYLE = `
.wg-signin{position:fixed;inset:0;z-index:1000;display:flex;align-items:flex-start;justify-content:center;
  background:#f4f6f8;overflow:auto;padding:12vh 16px 16px;box-sizing:border-box;font:16px/1.5 system-ui,sans-serif}
.wg-signin form{width:100%;max-width:360px;background:#fff;border-radius:10px;padding:20px;box-sizing:border-box;
  box-shadow:0 2px 10px rgba(0,0,0,.08);display:flex;flex-direction:column;gap:12px}
.wg-signin h1{font-size:20px;margin:0 0 4px}
.wg-signin label{display:flex;flex-direction:column;gap:4px;font-size:14px;color:#444}
.wg-signin input{font-size:16px;padding:10px;border:1px solid #bbb;border-radius:6px}
.wg-signin button{font-size:16px;padding:10px;border:0;border-radius:6px;background:#1565c0;color:#fff}
.wg-signin button[disabled]{opacity:.6}
.wg-signin .wg-error{color:#b71c1c;min-height:1.5em;margin:0}
.wg-signin .wg-note{color:#666;font-size:13px;margin:0}
.wg-signout{font-size:14px;padding:6px 10px}
`;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function styled() {
  if (document.getElementById("wg-session-style")) return;
  document.head.append(el("style", { id: "wg-session-style" }, STYLE));
}

// A page that works without signal (the coordinator's, /grid/) remembers on the phone who was signed in (their
// name, role, worker id and grids — what GET /api/v1/sessions says of them, never a token: the session stays in
// its HttpOnly cookie). When the services cannot be reached, the page opens as that person; what it sends then
// is still judged by the cookie when the signal is back (401: the sign-in form comes first).
const REMEMBERED = "wangge.session.offline";

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(REMEMBERED) || "null");
  } catch {
    return null;
  }
}

function remember(me, offline) {
  if (!offline) return;
  if (me) localStorage.setItem(REMEMBERED, JSON.stringify(me));
  else localStorage.removeItem(REMEMBERED);
}

// No answer at all (no signal, the front door away) or the front door's "service not answering" (502–504).
function unreachable(err) {
  return !(err instanceof ApiError) || [502, 503, 504].includes(err.status);
}

class Unreachable extends Error {}
const NO_SIGNAL = "当前无信号，无法登录：请在有信号时登录（登录过的网格员无信号时也可使用本页面）";

async function whoAmI(offline) {
  try {
    const me = await api("/api/v1/sessions");
    remember(me, offline);
    return me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      remember(null, offline);
      return null;
    }
    if (offline && unreachable(err)) {
      const before = remembered();
      if (before) return { ...before, offline: true };
      throw new Unreachable();  // nobody signed in on this phone: the form, saying why it cannot work yet
    }
    throw err;
  }
}

async function signOut() {
  localStorage.removeItem(REMEMBERED);  // who was signed in is forgotten on the phone too
  try {
    await api("/api/v1/sessions", { method: "DELETE" });
  } catch {
    // Signed out or not, the page starts over at the sign-in form.
  }
}

function wrongRole(me, roles, title) {
  // A person signed in whose role this page does not serve: say so, offer to sign in as someone else.
  const wanted = roles.map((r) => ROLE_LABELS[r] || r).join("、");
  return new Promise((resolve) => {
    const overlay = el("div", { class: "wg-signin", id: "wg-wrong-role" },
      el("form", { onsubmit: async (e) => { e.preventDefault(); await signOut(); overlay.remove(); resolve(); } },
        el("h1", {}, title || "网格化管理"),
        el("p", { class: "wg-error", role: "alert", id: "wg-role-error" },
          `当前账户「${me.display_name}」（${ROLE_LABELS[me.role] || me.role}）不能使用本页面；本页面供${wanted}使用。`),
        el("button", { type: "submit", id: "wg-switch" }, "退出并换账户登录")));
    document.body.append(overlay);
  });
}

function form(title, message, offline) {
  // Resolves with `me` once the server accepted a username and password.
  return new Promise((resolve) => {
    const username = el("input", { id: "wg-username", name: "username", autocomplete: "username", required: true,
      autocapitalize: "none", spellcheck: "false" });
    const password = el("input", { id: "wg-password", name: "password", type: "password",
      autocomplete: "current-password", required: true });
    const button = el("button", { type: "submit", id: "wg-sign-in" }, "登录");
    const error = el("p", { class: "wg-error", role: "alert", id: "wg-sign-in-error" }, message || "");
    const overlay = el("div", { class: "wg-signin", id: "wg-sign-in-page" },
      el("form", {
        onsubmit: async (e) => {
          e.preventDefault();
          button.disabled = true;
          error.textContent = "";
          try {
            const me = await api("/api/v1/sessions", { method: "POST",
              body: { username: username.value.trim(), password: password.value } });
            remember(me, offline);
            overlay.remove();
            resolve(me);
          } catch (err) {
            password.value = "";
            error.textContent = offline && !(err instanceof ApiError) ? NO_SIGNAL
              : err instanceof ApiError && err.status >= 500 ? `暂时无法登录：${err.message}` : err.message;
          } finally {
            button.disabled = false;
          }
        },
      },
      el("h1", {}, title || "网格化管理"),
      el("label", {}, "用户名", username),
      el("label", {}, "密码", password),
      button, error,
      el("p", { class: "wg-note" }, "登录状态保存在本浏览器中（12 小时内有效），在公用设备上用完请退出。")));
    document.body.append(overlay);
    username.focus();
  });
}

async function someone(roles, title, message, offline) {
  let me = null;
  try {
    me = await whoAmI(offline);
  } catch (err) {
    if (!(err instanceof Unreachable)) throw err;
    message = NO_SIGNAL;
  }
  for (;;) {
    if (!me) me = await form(title, message, offline);
    if (!roles || roles.includes(me.role)) return me;
    await wrongRole(me, roles, title);
    me = null;
    message = "";
  }
}

// The person signed in, once there is one whose role is in `roles` (shows the sign-in form until then). Should the
// session end later (an API call answered 401), the form comes back over the page; signing in again as the same
// person leaves the page as it was (retry what failed), as someone else reloads it.
// With `offline: true` (a page that works without signal) the person signed in before on this phone is who the
// page opens as when the services cannot be reached (`me.offline` is then true).
export async function signedIn({ roles, title, offline = false } = {}) {
  styled();
  const me = await someone(roles, title, "", offline);
  let asking = false;
  window.addEventListener("wangge:session-ended", async () => {
    if (asking || document.getElementById("wg-sign-in-page")) return;
    asking = true;
    try {
      const again = await someone(roles, title, "登录已失效，请重新登录", offline);
      if (again.username !== me.username) location.reload();
      // The same person is back: a page may retry at once what waited (the coordinator's outbox).
      else window.dispatchEvent(new CustomEvent("wangge:session-back"));
    } finally {
      asking = false;
    }
  });
  return me;
}

// A button that signs out (the session ends on every service) and shows the sign-in form again.
export function signOutButton() {
  styled();
  return el("button", { type: "button", class: "wg-signout", id: "wg-sign-out",
    onclick: async () => { await signOut(); location.reload(); } }, "退出登录");
}

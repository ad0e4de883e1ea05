// 网格员终端 (/grid/): the grid coordinator reports what they find (position from the phone or a tap on the map of
// their grids, the suggested category, photos from the camera), also without signal (kept on the phone and sent
// when the signal is back); follows their own reports; does the on-site checks (核查) of their grids; records what
// they fixed on the spot (自行处置).
import { ApiError } from "../common/api.js";
import { topBar } from "../common/phone.js";
import { signedIn } from "../common/session.js";
import { clear, h, notify } from "../workbench/dom.js";
import { renderChecks } from "./checks.js";
import { renderMine } from "./mine.js";
import { flush, waiting } from "./outbox.js";
import { renderReport } from "./report.js";

const TABS = [["report", "上报"], ["fixed", "自行处置"], ["mine", "我的上报"], ["checks", "核查"]];
const RETRY_MS = 15000;
const app = document.getElementById("app");
let me = null;

export async function outboxChanged() {
  const count = (await waiting(me.worker_id)).filter((i) => !i.refused).length;
  const badge = document.getElementById("outbox-count");
  if (badge) badge.textContent = count ? `待发送 ${count}` : "";
  document.body.dataset.outbox = String(count);
}

// Send what waits; say what went out. Called on load, when the signal comes back, and every 15 s.
export async function sendWaiting() {
  // The session ended (401): session.js shows the sign-in form over the page; what waits stays on the phone
  // (IndexedDB) and goes at the next try once they are signed in again.
  const sent = await flush(me.worker_id).catch(() => []);
  await outboxChanged();
  if (sent.length) {
    notify(`已发送 ${sent.length} 件：${sent.map((r) => r.case_no).join("、")}`, "ok");
    if ((location.hash || "").startsWith("#/mine")) route();
  }
  return sent;
}

function signal() {
  const el = document.getElementById("signal");
  if (!el) return;
  el.textContent = navigator.onLine ? "在线" : "离线";
  el.classList.toggle("off", !navigator.onLine);
}

async function route() {
  const tab = (location.hash.match(/^#\/(\w+)/) || [])[1] || "report";
  for (const a of document.querySelectorAll("nav.tabs a")) a.classList.toggle("active", a.dataset.tab === tab);
  const view = document.getElementById("view");
  try {
    if (tab === "mine") await renderMine(view, me, { send: sendWaiting, changed: outboxChanged });
    else if (tab === "checks") await renderChecks(view, me);
    else await renderReport(view, me, { fixed: tab === "fixed", send: sendWaiting, changed: outboxChanged });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return location.reload();
    clear(view, h("p", { class: "error" }, `无法加载：${err.message}`));
  }
}

async function start() {
  // offline: a coordinator signed in before on this phone keeps working without signal (session.js).
  me = await signedIn({ roles: ["terminal"], title: "网格化管理 · 网格员终端", offline: true });
  const bar = topBar("网格员终端", me);
  bar.insertBefore(h("span", { class: "signal", id: "signal" }), bar.querySelector(".who"));
  bar.insertBefore(h("span", { class: "outbox-count", id: "outbox-count" }), bar.querySelector(".who"));
  clear(app, bar, h("nav", { class: "tabs" }, TABS.map(([id, title]) => h("a", { href: `#/${id}`, "data-tab": id }, title))),
    h("div", { id: "notice", class: "notice", role: "status" }), h("main", { id: "view" }));
  document.body.dataset.worker = me.worker_id || "";
  if (me.offline) document.body.dataset.offlineStart = "1";  // opened without reaching the services
  signal();
  window.addEventListener("online", () => { signal(); sendWaiting(); });
  window.addEventListener("offline", signal);
  // Signed in again after the session ended (e.g. it expired while the page was offline): send what waits now.
  window.addEventListener("wangge:session-back", () => sendWaiting());
  window.addEventListener("hashchange", () => { notify(""); route(); });
  await route();
  document.body.dataset.ready = "1";
  sendWaiting();
  setInterval(() => { signal(); sendWaiting(); }, RETRY_MS);
}

// The service worker keeps this page's shell so that /grid/ opens without signal (sw.js; never the API's answers).
function keepShell() {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/grid/sw.js", { scope: "/grid/" })
    .catch(() => {});  // no worker (a private window, an old browser): the page works online as before
  navigator.serviceWorker.ready.then(() => { document.body.dataset.shell = "kept"; });
}

keepShell();
start();

// 责任单位任务 (/owner/): a department's, utility's or community's staff sign in, see their tasks due first with
// filters, open one, and answer it (签收, 进展, 处置完成, 回退, 延期, 解释说明, 挂起/恢复). New tasks and the command
// center's 督办 appear without a reload: the page asks supervision again every 10 s (polling, not a stream: the
// task list is supervision's read model, and a phone on a weak signal copes better with a short GET than a
// long-lived connection).
import { ApiError } from "../common/api.js";
import { topBar } from "../common/phone.js";
import { signedIn } from "../common/session.js";
import { clear, h, notify } from "../workbench/dom.js";
import { renderList } from "./list.js";
import { renderTask } from "./task.js";

const app = document.getElementById("app");

function view() {
  return document.getElementById("view");
}

async function route() {
  const m = location.hash.match(/^#\/task\/([0-9A-Za-z-]+)$/);
  try {
    if (m) await renderTask(view(), m[1]);
    else await renderList(view());
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return location.reload();  // the session ended: sign in again
    clear(view(), h("p", { class: "error" }, `无法加载：${err.message}`), h("a", { href: "#/" }, "‹ 返回任务列表"));
  }
}

async function start() {
  const me = await signedIn({ roles: ["owner"], title: "网格化管理 · 责任单位任务" });
  clear(app, topBar("本单位任务", me), h("div", { id: "notice", class: "notice", role: "status" }), h("main", { id: "view" }));
  document.body.dataset.owner = me.owner_code || "";
  window.addEventListener("hashchange", () => { notify(""); route(); });
  await route();
  document.body.dataset.ready = "1";
}

start();

// 我的上报: what waits on the phone (not sent yet, or refused with the reason), then the coordinator's own
// reports with their state and outcome, newest first (GET /api/v1/coordinator/reports, a page at a time).
import { api, streetTime } from "../common/api.js";
import { photoStrip } from "../common/photos.js";
import { clear, h, notify } from "../workbench/dom.js";
import { drop, waiting } from "./outbox.js";

function waitingCard(item, redraw) {
  return h("li", { class: `card ${item.refused ? "refused" : "waiting"}`, "data-external-id": item.external_id },
    h("div", { class: "line" }, h("b", {}, item.refused ? "未被接受" : "待发送"), h("span", { class: "muted" }, streetTime(item.made_at))),
    h("p", { class: "desc" }, item.body.description),
    item.refused ? h("p", { class: "refusal" }, `原因：${item.refused}`) : h("p", { class: "muted" }, `照片 ${item.photos.length + item.after.length} 张，有信号时自动发送`),
    item.refused ? h("button", { type: "button", onclick: async () => { await drop(item.external_id); await redraw(); } }, "删除") : null);
}

function reportCard(r) {
  return h("li", { class: "card", "data-case": r.case_no, "data-state": r.state },
    h("div", { class: "line" }, h("b", { class: "no" }, r.case_no), h("span", { class: `badge state-${r.state}` }, r.state_label || r.state),
      r.outcome === "fixed_on_the_spot" ? h("span", { class: "badge state-closed" }, "自行处置") : null),
    h("p", { class: "desc" }, [r.category_name || r.category, r.description].filter(Boolean).join("：")),
    h("div", { class: "muted" }, [streetTime(r.reported_at), r.address, r.holder && `承办：${r.holder}`].filter(Boolean).join(" · ")),
    r.result ? h("p", {}, `处置结果：${r.result}${r.resolved_at ? `（${streetTime(r.resolved_at)}）` : ""}`) : null,
    r.media && r.media.length ? photoStrip(r.media) : null);
}

export async function renderMine(root, me, { send, changed }) {
  const pending = h("ul", { class: "cards", id: "outbox" });
  const list = h("ul", { class: "cards", id: "my-reports" });
  const more = h("button", { type: "button", class: "more", hidden: true }, "加载更多");
  let next = null;
  const redraw = async () => {
    const items = await waiting(me.worker_id);
    pending.replaceChildren(...(items.length ? items.map((i) => waitingCard(i, redraw)) : [h("li", { class: "empty muted" }, "没有待发送的上报")]));
    await changed();
  };
  const load = async (append) => {
    const page = await api("/api/v1/coordinator/reports", { query: { cursor: append ? next : undefined } });
    if (!append) list.replaceChildren();
    list.append(...page.reports.map(reportCard));
    if (!list.children.length) list.append(h("li", { class: "empty muted" }, "还没有上报"));
    next = page.next;
    more.hidden = !next;
  };
  more.addEventListener("click", () => load(true).catch((err) => notify(`无法加载：${err.message}`, "error")));
  clear(root, h("h3", {}, "手机上待发送"), pending,
    h("button", { type: "button", id: "send-now", onclick: () => send().then(redraw) }, "立即发送"),
    h("h3", {}, "我的上报"), list, more);
  await redraw();
  try {
    await load(false);
  } catch (err) {
    list.replaceChildren(h("li", { class: "empty muted" }, `暂时无法读取（${err.message}）`));
  }
}

// One task: what the problem is, where (the street's own map), the report's photos, the masked reporter, the
// deadline counting down (and the work time left on the street's calendar), the history, and the answers the
// contract allows in its state. Every 10 s the task is read again: a 督办 or a decision appears without a reload.
import { api, streetTime } from "../common/api.js";
import { upload } from "../common/media.js";
import { actionForm, countdown, newId, streetIso, workLeft } from "../common/phone.js";
import { photoPicker, photoStrip } from "../common/photos.js";
import { clear, h, notify } from "../workbench/dom.js";
import { CLOCKS, EVENTS, EXTENSION, stateLabel } from "../workbench/labels.js";
import { drawMap } from "../workbench/map.js";
import { categoryName, unitGrids } from "../workbench/reference.js";

const POLL_MS = 10000;
let timer = null;

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function said(type, d) {
  const bits = [];
  for (const k of ["note", "reason", "result", "explanation", "text"]) if (d[k]) bits.push(d[k]);
  if (d.until) bits.push(`延期至 ${streetTime(d.until)}`);
  if (d.due_at) bits.push(`期限 ${streetTime(d.due_at)}`);
  if (typeof d.approved === "boolean") bits.push(d.approved ? "批准" : "未批准");
  if (typeof d.passed === "boolean") bits.push(d.passed ? "核查通过" : "核查未通过");
  if (d.occasion === "rework") bits.push("返工");
  if (d.occasion === "reopen") bits.push("居民不满意，重新办理");
  if (d.stage) bits.push(`${CLOCKS[d.stage] || ""}环节`);
  return bits.join("；");
}

function history(entries) {
  return h("ol", { class: "timeline", id: "history" }, entries.map((e) => h("li", { class: `effect-${e.effect}`, "data-type": e.type },
    h("time", {}, streetTime(e.occurred_at)), h("b", {}, EVENTS[e.type] || "其他记录"),
    h("span", { class: "what" }, said(e.type, e.data || {})),
    e.data && e.data.media && e.data.media.length ? photoStrip(e.data.media) : null)));
}

function lastUrge(t) {
  const urges = t.history.filter((e) => e.type === "case.urged");
  return urges.length ? urges[urges.length - 1] : null;
}

async function info(t) {
  const urge = lastUrge(t);
  const reporter = t.reporter ? [t.reporter.name, t.reporter.phone].filter(Boolean).join(" ") : "";
  return [
    urge ? h("p", { class: "urge banner", "data-role": "urge" }, `督办（${streetTime(urge.occurred_at)}）：${urge.data.note || ""}`) : null,
    facts([
      ["类别", await categoryName(t.category).catch(() => t.category)], ["处置期限", t.due_at ? [countdown(t.due_at), h("br"), h("small", { class: "muted" }, workLeft(t.work_seconds_left) || "")] : "—"],
      ["地址", t.address || "—"], ["单元网格", t.unit_grid], ["派遣时间", streetTime(t.dispatched_at)],
      ["签收时间", t.signed_at ? streetTime(t.signed_at) : "未签收"],
      ["反映人", reporter || "—"],
      ["延期", t.extension_state ? `${EXTENSION[t.extension_state]}（至 ${streetTime(t.extension_until)}）` : null],
      ["挂起原因", t.state === "suspended" ? t.suspend_reason : null],
      ["返工说明", t.rework_count ? t.check_note : null],
      ["派遣说明", t.dispatch_note],
      ["处置结果", t.result || t.explanation],
    ]),
    h("p", { class: "description" }, t.description || ""),
  ];
}

// Send one update of the contract; photos chosen in `picker` are uploaded first and go as its media.
async function update(no, body, picker) {
  const payload = { id: newId("owner-"), ...body };
  if (picker && picker.files().length) payload.media = await Promise.all(picker.files().map(async (f) => (await upload(f)).url));
  return api(`/api/v1/tasks/${encodeURIComponent(no)}/updates`, { method: "POST", body: payload });
}

function field(label, input) {
  return h("label", { class: "field" }, h("span", {}, label), input);
}

function actions(t, done) {
  const no = t.case_no;
  const after = (what) => async (r) => { notify(`${what}：已提交，当前状态 ${stateLabel(r.state)}`, "ok"); await done(); };
  const simple = (action, title, body, cls) => actionForm({ title: null, action, submit: title, cls,
    work: async () => after(title)(await update(no, body)) });
  const text = (action, title, key, placeholder, { photos = false, required = true } = {}) => {
    const input = h("textarea", { name: key, rows: 3, placeholder, required });
    const picker = photos ? photoPicker({ name: `${action}-photos` }) : null;
    return actionForm({ title, action, fields: [input, picker && picker.element], work: async () => {
      await after(title)(await update(no, { type: `task.${action}`, [key]: input.value.trim() }, picker));
    } });
  };
  const parts = [];
  if (t.state === "dispatched") {
    parts.push(simple("accepted", "签收", { type: "task.accepted" }, "sign"));
    parts.push(text("returned", "回退（非本单位职责）", "reason", "回退原因"));
  }
  if (t.state === "in_progress") {
    parts.push(text("resolved", "处置完成", "result", "处置结果：做了什么", { photos: true }));
    parts.push(text("progress", "报告进展", "note", "进展情况", { photos: true }));
    parts.push(text("explained", "解释说明（暂不能解决）", "explanation", "向居民说明的理由"));
    if (t.extension_state !== "pending") {
      const until = h("input", { type: "datetime-local", name: "until", required: true });
      const reason = h("textarea", { name: "reason", rows: 2, placeholder: "延期理由", required: true });
      parts.push(actionForm({ title: "申请延期", action: "extension-requested", fields: [field("延期至", until), reason],
        work: async () => after("申请延期")(await update(no, { type: "task.extension-requested", until: streetIso(until.value), reason: reason.value.trim() })) }));
    }
    parts.push(text("suspended", "挂起（暂停计时）", "reason", "挂起原因，如等待居民在家"));
  }
  if (t.state === "suspended") parts.push(simple("resumed", "恢复办理", { type: "task.resumed" }));
  if (["resolved", "explained"].includes(t.state)) parts.push(h("p", { class: "muted" }, "已提交，等待网格员或指挥中心现场核查"));
  if (t.state === "closed") parts.push(h("p", { class: "muted" }, "已结案"));
  return h("div", { class: "actions", id: "actions" }, parts);
}

export async function renderTask(root, no) {
  clearInterval(timer);
  let t = await api(`/api/v1/tasks/${encodeURIComponent(no)}`);
  const infoBox = h("section", { id: "task-info" });
  const actionBox = h("section", { id: "task-actions" });
  const historyBox = h("section", {}, h("h3", {}, "办理过程"), h("div", { id: "history-box" }));
  const head = h("header", { class: "task-head" });
  const mapBox = h("div", { class: "map", id: "task-map" });
  const drawn = async () => {
    head.replaceChildren(h("a", { href: "#/", class: "back" }, "‹ 任务列表"), h("h2", {}, t.case_no),
      h("span", { class: `badge state-${t.state}`, id: "task-state", "data-state": t.state }, stateLabel(t.state)));
    infoBox.replaceChildren(...(await info(t)).flat().filter(Boolean));
    historyBox.querySelector("#history-box").replaceChildren(history(t.history));
  };
  const reload = async () => {
    t = await api(`/api/v1/tasks/${encodeURIComponent(no)}`);
    await drawn();
    actionBox.replaceChildren(actions(t, reload));
    root.querySelector("article").dataset.state = t.state;
  };
  await drawn();
  actionBox.replaceChildren(actions(t, reload));
  // Two halves: what the task is and what to do with it; where it is, its photos and its history. On a phone they
  // follow each other in that order; on a desk they stand side by side (style.css).
  clear(root, h("article", { class: "task-page", "data-case": no, "data-state": t.state }, head,
    h("div", { class: "task-main" }, infoBox, h("h3", {}, "办理"), actionBox),
    h("div", { class: "task-side" },
      h("h3", {}, "上报照片"), photoStrip(t.media),
      t.result_media && t.result_media.length ? [h("h3", {}, "处置照片"), photoStrip(t.result_media)] : null,
      h("h3", {}, "位置"), mapBox, historyBox)));
  unitGrids().then((geo) => {
    if (!geo || !document.body.contains(mapBox)) { mapBox.replaceChildren(h("p", { class: "muted" }, "地图暂不可用")); return; }
    const at = t.location || null;
    const map = drawMap(mapBox, geo, () => map.mark(at), { marked: at, highlight: t.unit_grid });
  });
  // Read the task again every 10 s; the forms are redrawn only when the state moved (so typing is not lost).
  timer = setInterval(async () => {
    if (!document.body.contains(infoBox)) { clearInterval(timer); return; }
    try {
      const before = t.state;
      t = await api(`/api/v1/tasks/${encodeURIComponent(no)}`);
      await drawn();
      root.querySelector("article").dataset.state = t.state;
      if (t.state !== before) actionBox.replaceChildren(actions(t, reload));
    } catch {
      // No signal, the task taken back (404), or the session ended (session.js shows the sign-in form over the
      // page): the next look tells.
    }
  }, POLL_MS);
}

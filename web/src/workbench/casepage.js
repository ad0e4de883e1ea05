// One case as the operator needs it: state, owner, place, photos, deadlines, the whole timeline and
// the replies sent to the resident, with the actions its state allows.
import { api, streetTime } from "../common/api.js";
import { checkForm, dispatchForm, extensionForm, heldActions, suspendForm, urgeForm } from "./actions.js";
import { h } from "./dom.js";
import { CLOCK_STATES, CLOCKS, DELIVERY_STATES, EVENTS, EXTENSION, REPLY_KINDS, SOURCES, UNITS, VERDICTS, levelLabel, stateLabel } from "./labels.js";
import { categoryName, ownerName } from "./reference.js";

const OPEN = ["dispatched", "in_progress", "suspended", "rework", "reopened"];

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

// A photo stored by wangge (/media/<id>) is shown by its thumbnail and opens whole; another URL as it is.
const STORED = /^\/media\/[0-9a-f]{64}$/;

function photos(urls) {
  if (!urls || !urls.length) return h("p", { class: "muted" }, "无照片");
  return h("div", { class: "photos" }, urls.map((u) => h("a", { href: u, target: "_blank", rel: "noopener" },
    h("img", { src: STORED.test(u) ? `${u}/thumbnail` : u, alt: "现场照片", loading: "lazy",
      onerror: (e) => { e.target.replaceWith(h("span", { class: "photo-link" }, u)); } }))));
}

// The words of an event worth a line in the timeline (its data is masked by supervision already).
function summary(type, d) {
  const bits = [];
  if (d.owner_name || d.owner) bits.push(`责任单位 ${d.owner_name || d.owner}`);
  if (type === "case.reported" && d.description) bits.push(d.description);
  if (d.category && ["case.classified", "case.accepted"].includes(type)) bits.push(`类别 ${d.category}`);
  if (d.unit_grid && ["case.located", "case.accepted"].includes(type)) bits.push(`网格 ${d.unit_grid}`);
  for (const k of ["reason", "note", "result", "explanation", "comment"]) if (d[k]) bits.push(d[k]);
  if (d.until) bits.push(`至 ${streetTime(d.until)}`);
  if (d.due_at && type !== "case.reported") bits.push(`期限 ${streetTime(d.due_at)}`);
  if (d.verdict) bits.push(VERDICTS[d.verdict] || d.verdict);
  if (d.stage) bits.push(`${CLOCKS[d.stage] || d.stage}环节`);
  if (d.level && type === "case.escalated") bits.push(`升级至 ${levelLabel(d.level)}`);
  if (typeof d.approved === "boolean") bits.push(d.approved ? "批准" : "未批准");
  if (d.by && d.by !== "system") bits.push(`操作人 ${d.by}`);
  return bits.join("；");
}

function timeline(history) {
  return h("ol", { class: "timeline" }, history.map((e) => h("li", { class: `effect-${e.effect}` },
    h("time", {}, streetTime(e.occurred_at)), h("b", {}, EVENTS[e.type] || e.type),
    e.state_after ? h("span", { class: "state" }, `→ ${stateLabel(e.state_after)}`) : null,
    h("span", { class: "what" }, summary(e.type, e.data || {})),
    e.effect === "refused" ? h("span", { class: "warn" }, `未采纳：${e.note || ""}`) : null)));
}

function clocks(stages) {
  if (!stages.length) return h("p", { class: "muted" }, "尚未派遣，没有计时");
  return h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["环节", "状态", "时限", "开始", "提醒", "期限", "超期", "督办级别"].map((t) => h("th", {}, t)))),
    h("tbody", {}, stages.map((s) => h("tr", { class: s.overdue_at && s.state === "running" ? "late" : "" },
      h("td", {}, CLOCKS[s.kind] || s.kind), h("td", {}, CLOCK_STATES[s.state] || s.state),
      h("td", {}, `${s.limit_value} ${UNITS[s.limit_unit] || s.limit_unit}`), h("td", {}, streetTime(s.started_at)),
      h("td", {}, streetTime(s.warn_at)), h("td", {}, streetTime(s.due_at)), h("td", {}, s.overdue_at ? streetTime(s.overdue_at) : "—"),
      h("td", {}, levelLabel(s.escalation_level))))));
}

function replies(list) {
  if (!list.length) return h("p", { class: "muted" }, "尚无回复");
  return h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["时间", "类型", "渠道", "发往", "状态", "内容"].map((t) => h("th", {}, t)))),
    h("tbody", {}, list.map((d) => h("tr", {}, h("td", {}, streetTime(d.sent_at || d.created_at)),
      h("td", {}, REPLY_KINDS[d.kind] || d.kind), h("td", {}, d.channel === "sms" ? "短信" : d.channel), h("td", {}, d.to),
      h("td", {}, DELIVERY_STATES[d.state] || d.state), h("td", { class: "text" }, d.text)))));
}

// The actions this case's state allows.
export async function actionsFor(c, onDone) {
  if (c.state === "reported") return heldActions(c, onDone);
  const parts = [];
  if (c.extension_state === "pending" && OPEN.includes(c.state)) parts.push(extensionForm(c, onDone));
  if (["resolved", "explained"].includes(c.state)) parts.push(checkForm(c, onDone));
  if (c.state === "returned") parts.push(await dispatchForm(c, onDone, { title: "重新派遣" }));
  if (OPEN.includes(c.state) || ["resolved", "explained", "accepted"].includes(c.state)) {
    parts.push(await dispatchForm(c, onDone, { title: c.owner ? "改派" : "派遣" }));
  }
  if (["dispatched", "in_progress", "suspended"].includes(c.state) && c.owner) parts.push(urgeForm(c, onDone));
  if (["in_progress", "suspended"].includes(c.state)) parts.push(suspendForm(c, onDone));
  return parts.length ? h("div", { class: "actions" }, parts) : h("p", { class: "muted" }, "此状态无需操作");
}

export async function renderCase(no, onDone) {
  const path = `/api/v1/cases/${encodeURIComponent(no)}`;
  const [detail, found, sent] = await Promise.all([
    api(path),
    api("/api/v1/cases/search", { query: { case_no: no } }).catch(() => ({ cases: [] })),
    api("/api/v1/deliveries", { query: { case_no: no, limit: 100 } }).catch(() => ({ deliveries: [] })),
  ]);
  const place = found.cases.find((x) => x.case_no === no) || {};
  const c = { ...detail, address: place.address, location: place.location, media: place.media || [] };
  const late = c.overdue;  // supervision's one rule of 超期 (domain/overdue.py), never worked out here
  return h("article", { class: "case", "data-case": no, "data-state": c.state },
    h("header", {}, h("h2", {}, `案件 ${no}`), h("span", { class: `badge state-${c.state}` }, stateLabel(c.state)),
      late ? h("span", { class: "badge late" }, "已超期") : null),
    facts([
      ["类别", await categoryName(c.category)], ["单元网格", c.unit_grid || "待定位"],
      ["地址", c.address || "—"], ["位置", c.location ? `${c.location.lon}, ${c.location.lat}` : "—"],
      ["责任单位", c.owner ? `${c.owner_name || await ownerName(c.owner)}（${c.owner}）` : "—"], ["来源", SOURCES[c.source] || c.source],
      ["上报时间", streetTime(c.reported_at)], ["派遣时间", streetTime(c.dispatched_at)],
      ["处置期限", streetTime(c.due_at)], ["延期", c.extension_state ? `${EXTENSION[c.extension_state]}（至 ${streetTime(c.extension_until)}）` : "—"],
      ["督办级别", levelLabel(c.escalation_level)], ["回访评价", c.last_verdict ? VERDICTS[c.last_verdict] : "—"],
    ]),
    h("p", { class: "description" }, c.description || ""),
    h("h3", {}, "办理"), await actionsFor(c, onDone),
    h("h3", {}, "照片"), h("h4", {}, "上报照片"), photos(c.media), c.result_media && c.result_media.length ? [h("h4", {}, "处置照片"), photos(c.result_media)] : null,
    h("h3", {}, "时限"), clocks(c.stages || []),
    h("h3", {}, "办理过程"), timeline(c.history || []),
    h("h3", {}, "回复居民"), replies(sent.deliveries || []));
}

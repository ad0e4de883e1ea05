// What the wall says, in Chinese: event types, and how an event is coloured in the feed.
export const EVENTS = {
  "case.reported": "上报", "case.accepted": "立案", "case.classified": "分类", "case.located": "定位",
  "case.rejected": "不予受理", "case.merged": "合并", "case.dispatched": "派遣", "case.returned": "回退",
  "case.signed": "签收", "case.progress-reported": "处置进展", "case.resolved": "处置完成",
  "case.explained": "解释说明", "case.suspended": "挂起", "case.resumed": "恢复办理",
  "case.extension-requested": "申请延期", "case.extension-decided": "延期审批", "case.warned": "催办",
  "case.overdue": "超期", "case.escalated": "升级督办", "case.reworked": "返工", "case.closed": "结案",
  "case.survey-answered": "回访评价", "case.reopened": "重新办理", "case.personal-data-erased": "信息删除",
};
const BAD = new Set(["case.overdue", "case.escalated", "case.returned", "case.reworked", "case.reopened", "case.warned"]);
const DONE = new Set(["case.closed", "case.resolved"]);

export function eventLabel(type) {
  return EVENTS[type] || type;
}

export function eventTone(type) {
  return BAD.has(type) ? "bad" : DONE.has(type) ? "done" : "";
}

// A rate 0–1 (or null) as the wall shows it: 96.5%.
export function percent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(1)}%`;
}

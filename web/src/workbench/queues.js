// The command center's queues: what waits for an operator, each loaded from supervision's case list.
import { api, streetTime } from "../common/api.js";
import { EXTENSION, levelLabel, stateLabel } from "./labels.js";

const OPEN = new Set(["dispatched", "in_progress", "suspended", "rework", "reopened"]);
const list = (query) => api("/api/v1/cases", { query: { limit: 500, ...query } }).then((r) => r.cases);
const byDue = (a, b) => String(a.due_at || "9").localeCompare(String(b.due_at || "9"));

function missing(c) {
  const what = [];
  if (!c.category) what.push("待分类");
  if (!c.unit_grid) what.push("待定位");
  return what.join("、") || "待立案";
}

export const QUEUES = [
  {
    id: "held", title: "待分类/定位", hint: "无法自动受理的报告：补类别或位置后立案",
    load: () => api("/api/v1/cases/search", { query: { state: "reported", limit: 500 } })
      .then((r) => r.cases.sort((a, b) => String(a.reported_at).localeCompare(String(b.reported_at)))), // oldest first
    note: (c) => `${missing(c)}${c.address ? `｜${c.address}` : ""}`,
  },
  {
    id: "returned", title: "回退待派遣", hint: "责任单位认为不属于本单位：人工派遣",
    load: () => list({ state: "returned" }), note: (c) => `回退原因：${c.return_reason || "—"}`,
  },
  {
    id: "extensions", title: "延期申请", hint: "责任单位申请延期：批准或不批准",
    load: async () => (await api("/api/v1/cases/search", { query: { extension_state: "pending", limit: 500 } })).cases
      .filter((c) => OPEN.has(c.state)).sort(byDue),
    note: (c) => `申请至 ${streetTime(c.extension_until)}：${c.extension_reason || ""}（${EXTENSION.pending}）`,
  },
  {
    id: "checks", title: "待核查", hint: "处置完成或解释说明的案件：现场核查后结案或返工",
    load: async () => [...await list({ state: "resolved" }), ...await list({ state: "explained" })].sort(byDue),
    note: (c) => (c.state === "explained" ? `解释：${c.explanation || ""}` : `结果：${c.result || ""}`),
  },
  {
    id: "overdue", title: "已超期", hint: "超过处置期限仍未办结：督办或改派",
    load: async () => (await list({ overdue: true })).sort(byDue), note: (c) => `超期于 ${streetTime(c.overdue_at || c.due_at)}｜督办 ${levelLabel(c.escalation_level)}`,
  },
  {
    id: "due-soon", title: "即将到期", hint: "24 小时内到期、尚未超期的在办案件",
    load: async () => (await list({ overdue: false, due_before: new Date(Date.now() + 86400e3).toISOString() }))
      .filter((c) => OPEN.has(c.state)).sort(byDue),
    note: (c) => `期限 ${streetTime(c.due_at)}`,
  },
  {
    id: "all", title: "全部案件", hint: "按状态、社区、类别、责任单位筛选", filters: true,
    load: (filters) => list(filters || {}), note: (c) => stateLabel(c.state),
  },
];

export function queue(id) {
  return QUEUES.find((q) => q.id === id) || QUEUES[0];
}

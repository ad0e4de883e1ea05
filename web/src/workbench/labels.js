// The words operators read: case states, event types, clock kinds and units in Chinese.
export const STATES = {
  reported: "待受理", rejected: "不予受理", merged: "已合并", accepted: "已立案", dispatched: "已派遣",
  returned: "已回退", in_progress: "处置中", suspended: "挂起", resolved: "处置完成待核查", rework: "返工",
  explained: "解释说明待核查", closed: "已结案", reopened: "重新办理",
};

export { EVENTS } from "../common/labels.js";

// 督办 levels up the ladder (DESIGN "Time limits"): who now supervises an overdue case.
export const LEVELS = { coordinator: "网格员", community: "社区", command_center: "指挥中心", leadership: "街道领导" };

export function levelLabel(level) {
  return LEVELS[level] || (level ? "其他层级" : "—");
}

export const CLOCKS = { dispatch: "受理派遣", sign: "签收", handling: "处置", check: "核查" };
export const CLOCK_STATES = { running: "计时中", stopped: "已停止", suspended: "已挂起" };
export const UNITS = { work_hours: "工作小时", work_days: "工作日", hours: "小时", days: "天" };
export const REPLY_KINDS = {
  acknowledgement: "受理回复", progress: "进展告知", resolution: "办结告知", explanation: "解释说明",
  survey: "满意度回访", rejection: "不予受理告知", escalation: "升级督办短信（带班领导）",
};
export const DELIVERY_STATES = {
  sent: "已发送", failed: "发送失败", held: "待人工回电", pending: "待发送", sending: "发送中",
  awaiting_contact: "待接收联系方式",
};
export const VERDICTS = { satisfied: "满意", basically_satisfied: "基本满意", unsatisfied: "不满意" };
export const EXTENSION = { pending: "待审批", approved: "已批准", denied: "未批准" };

// Never a code on screen: a state this page does not know yet reads as such.
export function stateLabel(state) {
  return STATES[state] || (state ? "其他状态" : "—");
}

export const SOURCES = { terminal: "网格员终端", hotline: "12345热线", web: "网上反映", camera: "视频监控" };

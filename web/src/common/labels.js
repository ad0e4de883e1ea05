// Words every screen shows for the contract's event types, in Chinese (one place, so the wall and the desk agree).
export const EVENTS = {
  "case.reported": "上报", "case.accepted": "立案", "case.classified": "分类", "case.located": "定位",
  "case.rejected": "不予受理", "case.merged": "合并", "case.dispatched": "派遣", "case.returned": "回退",
  "case.signed": "签收", "case.progress-reported": "处置进展", "case.resolved": "处置完成",
  "case.explained": "解释说明", "case.suspended": "挂起", "case.resumed": "恢复办理",
  "case.extension-requested": "申请延期", "case.extension-decided": "延期审批", "case.warned": "催办",
  "case.overdue": "超期", "case.escalated": "升级督办", "case.urged": "督办", "case.reworked": "核查不通过·返工", "case.closed": "结案",
  "case.survey-answered": "回访评价", "case.reopened": "重新办理", "case.commented": "居民留言", "case.personal-data-erased": "个人信息已删除",
};

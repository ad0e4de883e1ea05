// 核查: the resolved and explained cases of the coordinator's unit grids waiting for the on-site check; pass
// closes the case (the resident hears the result), fail sends it back for rework with the note — the same
// effect as the command center's check (POST /api/v1/cases/{case_no}/check).
import { api, streetTime } from "../common/api.js";
import { upload } from "../common/media.js";
import { actionForm } from "../common/phone.js";
import { photoPicker, photoStrip } from "../common/photos.js";
import { clear, h, notify } from "../workbench/dom.js";

function checkForm(c, done) {
  const pass = h("input", { type: "radio", name: `passed-${c.case_no}`, value: "yes", checked: true, "data-choice": "pass" });
  const fail = h("input", { type: "radio", name: `passed-${c.case_no}`, value: "no", "data-choice": "fail" });
  const note = h("textarea", { name: "note", rows: 2, maxlength: 1000, placeholder: "核查情况（不通过时写明还需做什么）" });
  const picker = photoPicker({ name: "check-photos", label: "核查照片" });
  return actionForm({
    title: null, action: "check", submit: "提交核查",
    fields: [h("div", { class: "check-choice" }, h("label", {}, pass, "通过（结案）"), h("label", {}, fail, "不通过（返工）")), note, picker.element],
    work: async () => {
      const passed = pass.checked;
      if (!passed && !note.value.trim()) throw new Error("不通过时请写明还需做什么（返工说明）");
      const media = await Promise.all(picker.files().map(async (f) => (await upload(f)).url));
      const r = await api(`/api/v1/cases/${encodeURIComponent(c.case_no)}/check`, {
        method: "POST", body: { passed, note: note.value.trim() || null, media } });
      notify(`${c.case_no} 核查${passed ? "通过，已结案" : "不通过，已返工"}（${r.state}）`, "ok");
      await done();
    },
  });
}

function card(c, done) {
  return h("li", { class: "card", "data-case": c.case_no },
    h("div", { class: "line" }, h("b", { class: "no" }, c.case_no), h("span", { class: "badge" }, c.explanation ? "解释说明待核查" : "处置完成待核查")),
    h("p", { class: "desc" }, c.description || ""),
    h("div", { class: "muted" }, [c.address, c.holder && `承办：${c.holder}`, c.resolved_at && `处置于 ${streetTime(c.resolved_at)}`].filter(Boolean).join(" · ")),
    c.result ? h("p", {}, `处置结果：${c.result}`) : null,
    c.explanation ? h("p", {}, `解释说明：${c.explanation}`) : null,
    photoStrip(c.result_media, "无处置照片"),
    checkForm(c, done));
}

export async function renderChecks(root) {
  const list = h("ul", { class: "cards", id: "checks" });
  const load = async () => {
    const { checks } = await api("/api/v1/coordinator/checks");
    list.replaceChildren(...(checks.length ? checks.map((c) => card(c, load)) : [h("li", { class: "empty muted" }, "暂无待核查案件")]));
  };
  clear(root, h("h3", {}, "待核查（本人网格）"), list);
  await load();
}

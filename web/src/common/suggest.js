// The suggested category while a description is typed (GET /api/v1/categories/suggest): chips to pick from, the
// best one chosen in `select` unless the person chose one themselves (select.dataset.touched).
import { api } from "./api.js";
import { h } from "../workbench/dom.js";

export function suggestBox(description, select, { id } = {}) {
  const box = h("div", { class: "suggestions", "data-role": "suggestions", id });
  let timer = null;
  description.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const text = description.value.trim();
      if (!text) return box.replaceChildren();
      try {
        const { suggestions } = await api("/api/v1/categories/suggest", { query: { text: text.slice(0, 2000) } });
        box.replaceChildren(...(suggestions.length ? ["建议类别：", ...suggestions.map((s, i) => h("button", {
          type: "button", class: `chip${i === 0 ? " best" : ""}`, "data-code": s.code,
          onclick: () => { select.value = s.code; },
        }, s.name))] : []));
        if (suggestions.length && !select.dataset.touched) select.value = suggestions[0].code;
      } catch {
        box.replaceChildren(h("span", { class: "muted" }, "离线：无类别建议，可手选或留待指挥中心分类"));
      }
    }, 400);
  });
  return box;
}

// The operator's actions, each a small form on the fixed paths of DESIGN.md ("HTTP surfaces").
import { api, streetTime } from "../common/api.js";
import { busy, h, notify } from "./dom.js";
import { drawMap } from "./map.js";
import { categories, owners, unitGrids } from "./reference.js";
import { stateLabel } from "./labels.js";

const post = (path, body) => api(path, { method: "POST", body });

// <input type="datetime-local"> (street time) → ISO 8601 with the street's offset.
export function streetIso(local) {
  return local ? `${local.length === 16 ? `${local}:00` : local}+08:00` : null;
}

function section(title, ...body) {
  return h("section", { class: "action" }, h("h3", {}, title), ...body);
}

async function categorySelect() {
  const select = h("select", { name: "category", "aria-label": "类别" }, h("option", { value: "" }, "— 选择类别 —"));
  const groups = {};
  for (const c of await categories()) (groups[c.group] ||= []).push(c);
  for (const [group, list] of Object.entries(groups)) {
    select.append(h("optgroup", { label: group }, list.map((c) => h("option", { value: c.code }, `${c.name}（${c.code}）`))));
  }
  return select;
}

async function suggestionChips(description, select) {
  const box = h("div", { class: "suggestions", "data-role": "suggestions" }, "建议类别：计算中…");
  api("/api/v1/categories/suggest", { query: { text: description.slice(0, 2000) } })
    .then(({ suggestions }) => {
      if (!suggestions.length) {
        box.replaceChildren("建议类别：描述中没有与类别名称相符的词，请人工选择");
        return;
      }
      box.replaceChildren("建议类别：", ...suggestions.map((s, i) => h("button", {
        type: "button", class: i === 0 ? "chip best" : "chip", title: s.why, "data-code": s.code,
        onclick: () => { select.value = s.code; },
      }, `${s.name}（${s.code}）`)), h("div", { class: "why" }, suggestions[0].why));
      if (!select.value) select.value = suggestions[0].code; // the best one preselected; the operator confirms
    })
    .catch((e) => box.replaceChildren(`建议类别暂不可用：${e.message}`));
  return box;
}

// 分类 / 定位 / 不予受理 / 合并 of a held report (intake).
export async function heldActions(c, onDone) {
  const no = c.case_no;
  const select = await categorySelect();
  if (c.category) select.value = c.category;
  const classifyBtn = h("button", { type: "submit", class: "primary", "data-action": "classify" }, "确认分类");
  const classify = h("form", {
    onsubmit: (e) => {
      e.preventDefault();
      if (!select.value) return notify("请先选择类别", "error");
      busy(classifyBtn, async () => {
        const r = await post(`/api/v1/cases/${encodeURIComponent(no)}/classify`, { category: select.value });
        notify(`案件 ${no} 已分类为 ${select.value}：${r.state === "accepted" ? "已立案，将自动派遣" : "仍待定位"}`);
        onDone();
      });
    },
  }, select, classifyBtn);

  let picked = null;
  const pickedText = h("span", { class: "picked", "data-role": "picked" }, "尚未选择位置：在地图上点击问题所在处");
  const locateBtn = h("button", { type: "button", class: "primary", "data-action": "locate" }, "按所选位置定位");
  locateBtn.addEventListener("click", () => {
    if (!picked) return notify("请先在地图上点击位置", "error");
    busy(locateBtn, async () => {
      const r = await post(`/api/v1/cases/${encodeURIComponent(no)}/locate`, { location: picked });
      notify(`案件 ${no} 已定位到单元网格 ${r.unit_grid}：${r.state === "accepted" ? "已立案，将自动派遣" : "仍待分类"}`);
      onDone();
    });
  });
  const gridInput = h("input", { name: "unit_grid", placeholder: "单元网格编码，如 3704020010010201", list: "unit-grid-codes", size: 24 });
  const gridBtn = h("button", { type: "submit", "data-action": "locate-grid" }, "按网格定位");
  const byGrid = h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      busy(gridBtn, async () => {
        const r = await post(`/api/v1/cases/${encodeURIComponent(no)}/locate`, { unit_grid: gridInput.value.trim() });
        notify(`案件 ${no} 已定位到单元网格 ${r.unit_grid}`);
        onDone();
      });
    },
  }, gridInput, gridBtn);
  const mapBox = h("div", { class: "map", id: "locate-map" }, "地图加载中…");
  unitGrids().then((geo) => {
    if (!geo) {
      mapBox.textContent = "网格地图暂不可用（路由服务未提供 /api/v1/grids）：请按网格编码定位";
      return;
    }
    mapBox.textContent = "";
    document.getElementById("unit-grid-codes")?.replaceChildren(
      ...geo.features.map((f) => h("option", { value: f.properties.code }, f.properties.name)));
    const map = drawMap(mapBox, geo, (point) => {
      picked = point;
      pickedText.textContent = `所选位置：经度 ${point.lon}，纬度 ${point.lat}`;
    }, { marked: c.location, highlight: c.unit_grid });
    window.wanggeLocateMap = map; // the browser test clicks a known point as a person would
  });

  const reason = h("input", { name: "reason", placeholder: "不予受理的原因（将告知反映人）", size: 30 });
  const rejectBtn = h("button", { type: "submit", class: "danger", "data-action": "reject" }, "不予受理");
  const reject = h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      if (!reason.value.trim()) return notify("请填写不予受理的原因", "error");
      busy(rejectBtn, async () => {
        await post(`/api/v1/cases/${encodeURIComponent(no)}/reject`, { reason: reason.value.trim() });
        notify(`案件 ${no} 不予受理，已告知反映人`);
        onDone();
      });
    },
  }, reason, rejectBtn);
  const into = h("input", { name: "into", placeholder: "合并到的案件编号", size: 16 });
  const mergeBtn = h("button", { type: "submit", "data-action": "merge" }, "合并");
  const merge = h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      busy(mergeBtn, async () => {
        await post(`/api/v1/cases/${encodeURIComponent(no)}/merge`, { into: into.value.trim() });
        notify(`案件 ${no} 已合并到 ${into.value.trim()}`);
        onDone();
      });
    },
  }, into, mergeBtn);

  return h("div", { class: "actions" },
    section(c.category ? "分类（已有类别，可更正）" : "分类（缺类别）", await suggestionChips(c.description || "", select), classify),
    section(c.unit_grid ? "定位（已有网格，可更正）" : "定位（缺位置）", c.address ? h("p", {}, `反映地址：${c.address}`) : null,
      mapBox, h("div", { class: "row" }, pickedText, locateBtn), byGrid),
    section("不予受理 / 合并", reject, merge));
}

// 派遣 / 改派 by hand (routing): the current holder, if any, gets task.recalled.
export async function dispatchForm(c, onDone, { title = "派遣", defaultReason = "" } = {}) {
  const select = h("select", { name: "owner", "aria-label": "责任单位" }, h("option", { value: "" }, "— 选择责任单位 —"));
  const kinds = { command_center: "指挥中心", department: "职能部门", utility: "公用企业", community: "社区" };
  const groups = {};
  for (const o of await owners()) (groups[o.kind] ||= []).push(o);
  for (const [kind, list] of Object.entries(groups)) {
    select.append(h("optgroup", { label: kinds[kind] || kind }, list.map((o) => h("option", { value: o.code }, `${o.name}（${o.code}）`))));
  }
  const reason = h("input", { name: "reason", placeholder: "派遣说明（责任单位可见）", value: defaultReason, size: 30 });
  const btn = h("button", { type: "submit", class: "primary", "data-action": "dispatch" }, title);
  return section(title, c.return_reason ? h("p", { class: "warn" }, `回退原因（${c.owner_name || c.owner || "原责任单位"}）：${c.return_reason}`) : null,
    h("form", {
      class: "inline",
      onsubmit: (e) => {
        e.preventDefault();
        if (!select.value || !reason.value.trim()) return notify("请选择责任单位并填写派遣说明", "error");
        busy(btn, async () => {
          const r = await post(`/api/v1/cases/${encodeURIComponent(c.case_no)}/dispatch`, { owner: select.value, reason: reason.value.trim() });
          notify(`案件 ${c.case_no} 已派遣给 ${r.owner_name || r.owner}，期限 ${streetTime(r.due_at)}`);
          onDone();
        });
      },
    }, select, reason, btn));
}

// 延期审批 (supervision): approve (the date asked for, or another) or deny.
export function extensionForm(c, onDone) {
  const until = h("input", { type: "datetime-local", name: "until", "aria-label": "批准延期至" });
  if (c.extension_until) until.value = streetTime(c.extension_until).replace(" ", "T");
  const note = h("input", { name: "note", placeholder: "审批意见", size: 24 });
  const approve = h("button", { type: "button", class: "primary", "data-action": "approve" }, "批准延期");
  const deny = h("button", { type: "button", class: "danger", "data-action": "deny" }, "不予延期");
  const decide = (approved, btn) => busy(btn, async () => {
    const body = { approved, note: note.value.trim() || null };
    if (approved && until.value) body.until = streetIso(until.value);
    const r = await post(`/api/v1/cases/${encodeURIComponent(c.case_no)}/extension`, body);
    notify(approved ? `案件 ${c.case_no} 延期已批准，新期限 ${streetTime(r.due_at)}` : `案件 ${c.case_no} 延期未批准，原期限不变`);
    onDone();
  });
  approve.addEventListener("click", () => decide(true, approve));
  deny.addEventListener("click", () => decide(false, deny));
  return section("延期审批",
    h("p", {}, `申请延期至 ${streetTime(c.extension_until)}；理由：${c.extension_reason || "—"}；当前期限 ${streetTime(c.due_at)}`),
    h("div", { class: "row" }, "批准至", until, note, approve, deny));
}

// 核查 (supervision): pass → closed; fail → rework, with what the owner must still do.
export function checkForm(c, onDone) {
  const note = h("textarea", { name: "note", rows: 2, placeholder: "核查说明（不通过时必填：还需处理什么）" });
  const pass = h("button", { type: "button", class: "primary", "data-action": "pass" }, "核查通过，结案");
  const fail = h("button", { type: "button", class: "danger", "data-action": "fail" }, "核查不通过，返工");
  const check = (passed, btn) => busy(btn, async () => {
    if (!passed && !note.value.trim()) throw new Error("核查不通过时请写明需返工的内容");
    const r = await post(`/api/v1/cases/${encodeURIComponent(c.case_no)}/check`, { passed, note: note.value.trim() || null });
    notify(`案件 ${c.case_no} ${passed ? "已结案" : "已退回返工"}（${stateLabel(r.state)}）`);
    onDone();
  });
  pass.addEventListener("click", () => check(true, pass));
  fail.addEventListener("click", () => check(false, fail));
  const said = c.state === "explained" ? `解释说明：${c.explanation || "—"}` : `处置结果：${c.result || "—"}`;
  return section("现场核查", h("p", {}, said), note, h("div", { class: "row" }, pass, fail));
}

// 督办 by hand (supervision): the holder gets task.urged with the note; the timeline and the figures count it.
export function urgeForm(c, onDone) {
  const note = h("input", { name: "note", placeholder: "督办意见（如：群众反映强烈，请今日内处置）", size: 36, maxlength: 500 });
  const btn = h("button", { type: "submit", "data-action": "urge" }, "督办");
  return section("督办", h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      if (!note.value.trim()) return notify("请填写督办意见", "error");
      busy(btn, async () => {
        await post(`/api/v1/cases/${encodeURIComponent(c.case_no)}/urge`, { note: note.value.trim() });
        notify(`案件 ${c.case_no} 已督办，责任单位已收到督办意见`);
        onDone();
      });
    },
  }, note, btn));
}

// 挂起 / 恢复 (supervision): the clock stops with the time left kept.
export function suspendForm(c, onDone) {
  if (c.state === "suspended") {
    const btn = h("button", { type: "button", "data-action": "resume" }, "恢复办理");
    btn.addEventListener("click", () => busy(btn, async () => {
      await post(`/api/v1/cases/${encodeURIComponent(c.case_no)}/resume`);
      notify(`案件 ${c.case_no} 已恢复办理`);
      onDone();
    }));
    return section("挂起", h("p", {}, `挂起原因：${c.suspend_reason || "—"}`), btn);
  }
  const reason = h("input", { name: "reason", placeholder: "挂起原因（如等待居民、天气）", size: 30 });
  const btn = h("button", { type: "submit", "data-action": "suspend" }, "挂起");
  return section("挂起", h("form", {
    class: "inline",
    onsubmit: (e) => {
      e.preventDefault();
      if (!reason.value.trim()) return notify("请填写挂起原因", "error");
      busy(btn, async () => {
        await post(`/api/v1/cases/${encodeURIComponent(c.case_no)}/suspend`, { reason: reason.value.trim() });
        notify(`案件 ${c.case_no} 已挂起，计时暂停`);
        onDone();
      });
    },
  }, reason, btn));
}

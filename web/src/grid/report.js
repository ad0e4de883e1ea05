// The report form: where (the phone's position, or a tap on the map of the coordinator's grids), what (the
// description, the suggested category), photos from the camera; with 自行处置 also what was done and the photos
// after. Pressing 上报 keeps the report on the phone first (with its external_id, made now), then sends it.
import { newId } from "../common/phone.js";
import { photoPicker } from "../common/photos.js";
import { placePicker } from "../common/place.js";
import { suggestBox } from "../common/suggest.js";
import { clear, h, notify } from "../workbench/dom.js";
import { categories, unitGrids } from "../workbench/reference.js";
import { keep, waiting } from "./outbox.js";

// The street's local time with its offset (Asia/Shanghai, +08:00 all year): 2026-12-06T09:12:00+08:00.
function streetNow() {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-CA", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false,
  }).formatToParts(new Date()).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}T${p.hour === "24" ? "00" : p.hour}:${p.minute}:${p.second}+08:00`;
}

// The phone's own id, made once and kept (intake records the device the credential names; this one is in
// every external_id, so two phones of one coordinator never make the same id).
function phoneId() {
  let id = localStorage.getItem("wangge.phone");
  if (!id) {
    id = newId("p");
    localStorage.setItem("wangge.phone", id);
  }
  return id;
}

// Only the coordinator's own grids on the map (all the street's if the account names none).
async function myGrids(me) {
  const geo = await unitGrids();
  if (!geo) return null;
  const mine = new Set(me.unit_grids || []);
  const features = mine.size ? geo.features.filter((f) => mine.has(f.properties.code)) : geo.features;
  return { type: "FeatureCollection", features: features.length ? features : geo.features };
}

export async function renderReport(root, me, { fixed, send, changed }) {
  const description = h("textarea", { name: "description", rows: 3, required: true, maxlength: 2000, placeholder: fixed ? "发现的问题" : "问题描述：什么、在哪里、多严重" });
  const select = h("select", { name: "category", required: fixed, onchange: () => { select.dataset.touched = "1"; } },
    h("option", { value: "" }, fixed ? "类别（自行处置须选择）" : "类别（可留待指挥中心分类）"));
  categories().then((list) => select.append(...list.map((c) => h("option", { value: c.code }, `${c.name}（${c.code}）`)))).catch(() => {});
  const address = h("input", { name: "address", maxlength: 300, placeholder: "地址（可选，如：市社家宿舍1号楼）" });
  const place = placePicker({ mapId: "grid-map", mapHint: "也可在地图上点选位置（只显示您负责的网格）" });
  const suggestions = suggestBox(description, select);
  const before = photoPicker({ name: "photos", label: fixed ? "处置前照片" : "拍照 / 选择照片" });
  const after = photoPicker({ name: "after-photos", label: "处置后照片" });
  const result = h("textarea", { name: "result", rows: 2, maxlength: 2000, placeholder: "现场做了什么（处置结果）", required: fixed });
  const form = h("form", {
    class: "report", id: "report-form", "data-fixed": fixed ? "1" : "",
    onsubmit: async (e) => {
      e.preventDefault();
      if (!place.point && !address.value.trim()) return notify("请定位、在地图上点选位置，或填写地址", "error");
      if (fixed && !result.value.trim()) return notify("自行处置请写明做了什么", "error");
      // A problem fixed on the spot is closed at once, never classified by the command center: it needs its category.
      if (fixed && !select.value) return notify("自行处置请选择类别", "error");
      const externalId = `${me.worker_id || "grid"}-${phoneId()}-${newId()}`;  // made once, now
      const body = {
        source: "terminal", external_id: externalId, category: select.value || null,
        description: description.value.trim(), location: place.point, address: address.value.trim() || null,
        reporter: null, coordinator: null, observed_at: streetNow(),
      };
      if (fixed) body.resolved_on_the_spot = { result: result.value.trim() };
      await keep({
        external_id: externalId, worker: me.worker_id, made_at: new Date().toISOString(), body,
        photos: before.files().map((blob) => ({ blob, url: null })),
        after: fixed ? after.files().map((blob) => ({ blob, url: null })) : [],
      });
      form.reset();
      before.clear();
      after.clear();
      place.clear();
      delete select.dataset.touched;
      suggestions.replaceChildren();
      await changed();
      const sent = await send();
      const mine = sent.find((r) => r.external_id === externalId);
      const refused = mine ? null : (await waiting(me.worker_id)).find((i) => i.external_id === externalId && i.refused);
      if (mine) notify(`${fixed ? "自行处置已记录" : "已上报"}，案件编号 ${mine.case_no}`, "ok");
      else if (refused) notify(`未被接受：${refused.refused}（见“我的上报”）`, "error");
      else notify("暂时无法发送（无信号）：已保存在手机上，有信号时自动发送", "error");
    },
  },
  h("h3", {}, fixed ? "自行处置：现场已解决的问题" : "上报问题"),
  description, suggestions, select,
  ...place.elements, address,
  before.element,
  fixed ? h("div", { class: "fixed-box" }, h("b", {}, "处置情况"), result, after.element) : null,
  h("button", { type: "submit", class: "primary send", id: "send" }, fixed ? "记录自行处置" : "上报"));
  clear(root, form);
  myGrids(me).then((geo) => place.showMap(geo, "地图暂不可用：请用手机定位或填写地址")).catch(() => {});
}

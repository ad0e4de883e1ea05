// Where a report is: the phone's position (navigator.geolocation) or a tap on the street's map. One picker for
// every page a report is made from (the coordinator's /grid/, the resident's /my/).
//
//   const place = placePicker({ mapId: "grid-map" });
//   form.append(place.element, …);  place.showMap(geo);  … body.location = place.point;  place.clear();
import { h, notify } from "../workbench/dom.js";
import { drawMap } from "../workbench/map.js";

const NOT_YET = "尚未定位";

export function placePicker({ mapId, digits = 6, mapHint = "也可在地图上点选位置" }) {
  let point = null;
  let map = null;
  const where = h("span", { class: "point", id: "point" }, NOT_YET);
  const mapBox = h("div", { class: "map", id: mapId });
  const setPoint = (p, how) => {
    point = p;
    where.textContent = `${how}：${p.lon.toFixed(digits)}, ${p.lat.toFixed(digits)}`;
    where.dataset.lon = p.lon;
    where.dataset.lat = p.lat;
    if (map) map.mark(p);
  };
  const locate = () => {
    if (!navigator.geolocation) return notify("此浏览器不能定位：请在地图上点选位置", "error");
    where.textContent = "定位中…";
    navigator.geolocation.getCurrentPosition(
      (pos) => setPoint({ lon: Number(pos.coords.longitude.toFixed(6)), lat: Number(pos.coords.latitude.toFixed(6)) }, "手机定位"),
      (err) => { where.textContent = `未能定位（${err.message || err.code}）：请在地图上点选位置`; },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  };
  return {
    // The locate button and what was found, the map, and the hint under it.
    elements: [
      h("div", { class: "where" }, h("button", { type: "button", id: "locate", onclick: locate }, "使用手机定位"), where),
      mapBox, h("p", { class: "muted" }, mapHint),
    ],
    get point() { return point; },
    // The map of these grids (GeoJSON), a tap on it placing the report; without them, why there is none.
    showMap(geo, unavailable) {
      if (!geo) return mapBox.replaceChildren(h("p", { class: "muted" }, unavailable));
      map = drawMap(mapBox, geo, (p) => setPoint(p, "地图点选"), { marked: point });
      return map;
    },
    clear() {
      point = null;
      where.textContent = NOT_YET;
      delete where.dataset.lon;
      delete where.dataset.lat;
      if (map) map.mark(null);
    },
  };
}

// The street's map from its own unit-grid polygons (GET /api/v1/grids?level=unit, registered with ECharts):
// no outside tiles. Each unit grid is coloured by its cases: none, open, or with an overdue case.
import * as echarts from "echarts";

export const MAP_NAME = "wangge-unit-grids";
export const COMMUNITY_MAP = "wangge-communities";
const NONE = "#15233f";
const OPEN = ["#1e4f91", "#2f7fd8", "#52a8ff"];
const LATE = ["#b91c1c", "#ef4444", "#ff7a7a"];

function shade(scale, count) {
  return scale[Math.min(count, scale.length) - 1];
}

// The colour of one unit grid: red when any case there is overdue, blue by the number open, dark when none.
export function colourOf(row) {
  if (!row) return NONE;
  if (row.overdue > 0) return shade(LATE, row.overdue);
  if (row.open > 0) return shade(OPEN, row.open);
  return NONE;
}

// The unit grids (series 0, coloured) and, over them, the communities' outlines and names (series 1, see-through).
// Both maps cover the same street, so the same layout puts them on the same ground.
export function createMap(element, geojson, communities) {
  echarts.registerMap(MAP_NAME, geojson);
  echarts.registerMap(COMMUNITY_MAP, communities);
  // SVG: every unit grid is one <path> on the wall, which a test can count.
  const chart = echarts.init(element, null, { renderer: "svg" });
  const names = new Map(communities.features.map((f) => [f.properties.code, f.properties.name]));
  chart.setOption({
    animation: false,
    series: [{
      type: "map",
      map: MAP_NAME,
      nameProperty: "code",
      roam: false,
      selectedMode: false,
      layoutCenter: ["50%", "50%"],
      layoutSize: "98%",
      itemStyle: { borderColor: "#5b7fb8", borderWidth: 1, areaColor: NONE },
      emphasis: { disabled: true },
      label: { show: false },
      data: geojson.features.map((f) => ({ name: f.properties.code, value: 0, itemStyle: { areaColor: NONE } })),
    }, {
      type: "map",
      map: COMMUNITY_MAP,
      nameProperty: "code",
      roam: false,
      silent: true,
      selectedMode: false,
      layoutCenter: ["50%", "50%"],
      layoutSize: "98%",
      itemStyle: { areaColor: "rgba(0,0,0,0)", borderColor: "#9cc3ff", borderWidth: 2.5 },
      label: { show: true, color: "rgba(200,220,255,0.75)", fontSize: 17,
        formatter: (p) => names.get(p.name) || "" },
      emphasis: { disabled: true },
      data: communities.features.map((f) => ({ name: f.properties.code })),
    }],
  });
  return chart;
}

// Colour the map from the live figures' unit grids ({unit_grid, open, overdue}); a count on each grid with cases.
export function paintMap(chart, geojson, rows) {
  const byGrid = new Map(rows.map((r) => [r.unit_grid, r]));
  const data = geojson.features.map((f) => {
    const row = byGrid.get(f.properties.code) || { open: 0, overdue: 0 };
    return {
      name: f.properties.code,
      value: row.open,
      open: row.open,
      overdue: row.overdue,
      itemStyle: { areaColor: colourOf(row) },
      label: {
        show: row.open > 0,
        formatter: row.overdue > 0 ? `${row.open}/${row.overdue}` : `${row.open}`,
        color: "#ffffff", fontSize: 18, fontWeight: "bold",
      },
    };
  });
  chart.setOption({ series: [{ data }] });
  return data;
}

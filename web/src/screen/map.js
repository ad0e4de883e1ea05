// The street's map from its own unit-grid polygons (GET /api/v1/grids?level=unit, registered with ECharts):
// no outside tiles. Each unit grid is coloured by its cases: none, open, or with an overdue case.
import * as echarts from "echarts";

export const MAP_NAME = "wangge-unit-grids";
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

export function createMap(element, geojson) {
  echarts.registerMap(MAP_NAME, geojson);
  // SVG: every unit grid is one <path> on the wall, which a test can count.
  const chart = echarts.init(element, null, { renderer: "svg" });
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

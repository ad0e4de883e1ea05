// The public map: the street's unit grids (GET /api/v1/public/grids) with its recent cases as dots, coloured by
// state (open, resolved, closed). Drawn from the street's own polygons, like the work screen's map: no outside tiles.
import * as echarts from "echarts/core";
import { ScatterChart } from "echarts/charts";
import { GeoComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([ScatterChart, GeoComponent, TooltipComponent, CanvasRenderer]);

const MAP = "wangge-public-grids";
export const COLOURS = { open: "#d4380d", resolved: "#b7791f", closed: "#2e7d32" };
let registered = false;

export function casesMap(container, geojson, cases) {
  if (!registered) {
    echarts.registerMap(MAP, geojson);
    registered = true;
  }
  const chart = echarts.init(container, null, { renderer: "canvas" });
  chart.setOption({
    animation: false,
    tooltip: { trigger: "item", formatter: (p) => (p.data && p.data.label) || "" },
    geo: {
      map: MAP, roam: true, selectedMode: false,
      itemStyle: { areaColor: "#eef3f8", borderColor: "#6b84a3", borderWidth: 0.8 },
      emphasis: { disabled: true },
    },
    series: Object.keys(COLOURS).map((status) => ({
      type: "scatter", coordinateSystem: "geo", symbolSize: 11, itemStyle: { color: COLOURS[status] },
      data: cases.filter((c) => c.status === status).map((c) => ({
        value: [c.location.lon, c.location.lat], label: `${c.category}<br>${c.status_label}`,
      })),
    })),
  });
  container.dataset.ready = "1";
  return chart;
}

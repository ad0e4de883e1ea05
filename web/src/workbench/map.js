// The street's unit grids drawn from their own polygons (no outside tiles): a click gives the WGS84 point
// the operator means, marked on the map; the grid under it is highlighted.
import * as echarts from "echarts/core";
import { ScatterChart } from "echarts/charts";
import { GeoComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([ScatterChart, GeoComponent, TooltipComponent, CanvasRenderer]);

const MAP = "wangge-unit-grids";
let registered = false;

function register(geojson) {
  if (registered) return;
  // ECharts names a region by properties.name: the grid code, so a click names the grid; the label shows its name.
  const features = geojson.features.map((f) => ({
    ...f, properties: { ...f.properties, name: f.properties.code, title: f.properties.name },
  }));
  echarts.registerMap(MAP, { type: "FeatureCollection", features });
  registered = true;
}

// Draw the map into `container`; onPick({lon, lat}) on every click inside it. Returns { mark(point), toPixel }.
export function drawMap(container, geojson, onPick, { marked = null, highlight = null } = {}) {
  register(geojson);
  const titles = Object.fromEntries(geojson.features.map((f) => [f.properties.code, f.properties.name]));
  const chart = echarts.init(container, null, { renderer: "canvas" });
  const option = (point) => ({
    animation: false,
    tooltip: { trigger: "item", formatter: (p) => (p.componentType === "geo" ? `${titles[p.name] || p.name}<br>${p.name}` : "所选位置") },
    geo: {
      map: MAP, roam: true, selectedMode: false, silent: false,
      itemStyle: { areaColor: "#eef3f8", borderColor: "#6b84a3", borderWidth: 0.8 },
      emphasis: { itemStyle: { areaColor: "#ffe6a8" }, label: { show: false } },
      regions: highlight ? [{ name: highlight, itemStyle: { areaColor: "#cfe3ff" } }] : [],
    },
    series: [{
      type: "scatter", coordinateSystem: "geo", symbolSize: 16, itemStyle: { color: "#d4380d" },
      data: point ? [[point.lon, point.lat]] : [],
    }],
  });
  chart.setOption(option(marked));
  chart.getZr().on("click", (e) => {
    const at = chart.convertFromPixel({ geoIndex: 0 }, [e.offsetX, e.offsetY]);
    if (!at) return;
    const point = { lon: Number(at[0].toFixed(6)), lat: Number(at[1].toFixed(6)) };
    chart.setOption(option(point));
    onPick(point);
  });
  container.dataset.ready = "1";
  return {
    mark: (point) => chart.setOption(option(point)),
    // Where a point is drawn, in page pixels (the browser test clicks there, as a person would).
    toPixel: (lon, lat) => {
      const [x, y] = chart.convertToPixel({ geoIndex: 0 }, [lon, lat]);
      const box = container.getBoundingClientRect();
      return { x: box.left + x, y: box.top + y };
    },
    dispose: () => chart.dispose(),
  };
}

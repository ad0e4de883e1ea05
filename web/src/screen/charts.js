// The two charts of the wall: today's cases by category (supervision's statistics) and by hour (live figures).
import * as echarts from "echarts";

const AXIS = { color: "#c7d6f0", fontSize: 18 };
const GRID_LINE = { lineStyle: { color: "#1d3a6b" } };

export function createChart(element) {
  return echarts.init(element, null, { renderer: "canvas" });
}

// Rows of GET /api/v1/stats?by=category: the categories with the most cases received today, largest on top.
export function paintCategories(chart, rows) {
  const top = rows.filter((r) => r.received > 0).sort((a, b) => b.received - a.received).slice(0, 8).reverse();
  chart.setOption({
    animation: false,
    grid: { left: 8, right: 48, top: 4, bottom: 4, containLabel: true },
    xAxis: { type: "value", minInterval: 1, axisLabel: AXIS, splitLine: GRID_LINE },
    yAxis: { type: "category", data: top.map((r) => r.name || r.key || "未分类"), axisLabel: { ...AXIS, width: 190, overflow: "truncate" } },
    series: [{ type: "bar", data: top.map((r) => r.received), itemStyle: { color: "#38bdf8" }, barMaxWidth: 26,
      label: { show: true, position: "right", color: "#ffffff", fontSize: 18 } }],
    graphic: top.length ? [] : [{ type: "text", left: "center", top: "middle",
      style: { text: "今日暂无案件", fill: "#8fa6cc", fontSize: 22 } }],
  }, { replaceMerge: ["graphic"] });
}

// today.street of the live figures: cases accepted in each hour of today.
export function paintHours(chart, today) {
  chart.setOption({
    animation: false,
    grid: { left: 8, right: 8, top: 24, bottom: 4, containLabel: true },
    xAxis: { type: "category", data: today.hours.map((_, h) => `${h}时`), axisLabel: { ...AXIS, interval: 1 } },
    yAxis: { type: "value", minInterval: 1, splitNumber: 3, axisLabel: AXIS, splitLine: GRID_LINE },
    series: [{ type: "bar", data: today.street, itemStyle: { color: "#2f7fd8" }, barMaxWidth: 30,
      label: { show: true, position: "top", color: "#ffffff", fontSize: 16, formatter: (p) => (p.value ? p.value : "") } }],
  });
}

// The big screen (大屏) of the command center: the street's unit grids coloured by their cases, today's figures,
// what is late, the ranking, and every case event as it happens (pushed, no reload). One origin: nginx routes
// /api/v1/grids and /categories to routing, /api/v1/live/ to supervision's live process, the rest to supervision.
import * as echarts from "echarts";
import { api, ApiError, signIn, signOut, token } from "../common/api.js";
import { createChart, paintCategories, paintHours } from "./charts.js";
import { percent } from "./labels.js";
import { emptyFeed, paintCases, paintRanking, pushEvent } from "./lists.js";
import { createMap, MAP_NAME, paintMap } from "./map.js";
import { follow } from "./stream.js";

const $ = (id) => document.getElementById(id);
const ZONE = "Asia/Shanghai";
const DUE_SOON_HOURS = 4;
const RUNNING = new Set(["dispatched", "in_progress", "returned", "rework", "reopened"]);

// What the page has drawn, for whoever needs to check it (the browser test reads it).
const screen = { ready: false, geojson: null, map: null, figures: null, stats: null, events: [], refreshes: 0,
  mapFeatureCount: () => echarts.getMap(MAP_NAME)?.geoJSON?.features?.length ?? 0,
  mapData: () => (screen.map ? screen.map.getOption().series[0].data.map((d) => ({ code: d.name, open: d.open, overdue: d.overdue })) : []) };
window.wanggeScreen = screen;

function streetDay(date = new Date()) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: ZONE, year: "numeric", month: "2-digit", day: "2-digit" }).format(date);
}

function isoWithOffset(date) {
  // Street time with its +08:00 offset, as the services expect (DESIGN: ISO 8601 with offset).
  const shifted = new Date(date.getTime() + 8 * 3600000);
  return shifted.toISOString().replace(/\.\d{3}Z$/, "+08:00");
}

function setCounter(id, value, text) {
  const el = $(id);
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.textContent = text ?? (value === null || value === undefined ? "—" : String(value));
}

function tick() {
  const parts = new Intl.DateTimeFormat("zh-CN", { timeZone: ZONE, year: "numeric", month: "long", day: "numeric",
    weekday: "short", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }).format(new Date());
  $("clock").textContent = parts;
}

function showSignIn(message = "") {
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("token").focus();
}

// A refused credential sends the wall back to the sign-in box; anything else is only logged (the next refresh retries).
function failed(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    signOut();
    stop();
    showSignIn(err.status === 401 ? "凭证无效或已过期，请重新输入" : "该凭证无权查看大屏（需要大屏只读凭证、值班员或管理员凭证）");
  } else {
    console.warn("refresh failed", err);
  }
}

const names = { grids: new Map(), categories: new Map() };
let charts = null;
let timers = [];
let running = false;
let streaming = null; // the AbortController of the event stream being followed

async function refreshLive() {
  const figures = await api("/api/v1/live/figures");
  screen.figures = figures;
  setCounter("counter-overdue", figures.overdue_now);
  setCounter("counter-open", figures.open_now);
  screen.painted = paintMap(screen.map, screen.geojson, figures.unit_grids);
  paintHours(charts.hours, figures.today);
  const gridsWithCases = figures.unit_grids.filter((r) => r.open > 0).length;
  $("map-note").textContent = `${screen.geojson.features.length}个单元网格 · ${gridsWithCases}个有在办案件`;
  $("spikes").textContent = figures.spikes.length
    ? `⚠ 突发：${figures.spikes.map((s) => `${s.community_name}${s.category_name}${s.count}件`).join("；")}` : "";
  screen.refreshes += 1;
}

async function refreshStats() {
  const day = streetDay();
  const stats = await api("/api/v1/stats", { query: { from: day, to: day, by: "category" } });
  screen.stats = stats;
  const t = stats.total;
  setCounter("counter-received", t.received);
  setCounter("counter-closed", t.closed);
  setCounter("counter-on-time", t.on_time_rate, percent(t.on_time_rate));
  setCounter("counter-satisfaction", t.satisfaction_rate, percent(t.satisfaction_rate));
  paintCategories(charts.categories, stats.rows);
}

async function refreshLists() {
  const now = new Date();
  const [late, soon] = await Promise.all([
    api("/api/v1/cases", { query: { overdue: true, limit: 100 } }),
    api("/api/v1/cases", { query: { overdue: false, due_before: isoWithOffset(new Date(now.getTime() + DUE_SOON_HOURS * 3600000)), limit: 100 } }),
  ]);
  const byDue = (a, b) => new Date(a.due_at) - new Date(b.due_at);
  const overdue = late.cases.filter((c) => c.due_at).sort(byDue);
  const dueSoon = soon.cases.filter((c) => RUNNING.has(c.state) && c.due_at && new Date(c.due_at) > now).sort(byDue);
  $("overdue-count").textContent = `${overdue.length}件`;
  paintCases($("overdue-list"), overdue, names, "overdue");
  paintCases($("due-soon-list"), dueSoon, names, "soon");
}

async function refreshRanking() {
  const month = streetDay().slice(0, 7);
  const ranking = await api("/api/v1/reports/ranking", { query: { month } });
  $("ranking-month").textContent = month;
  paintRanking($("rank-communities"), ranking.communities);
  paintRanking($("rank-departments"), ranking.departments);
}

function guarded(refresh) {
  return () => refresh().catch(failed);
}

// Many events in a burst make one refresh, not one each.
function debounced(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

function stop() {
  running = false;
  streaming?.abort();
  streaming = null;
  timers.forEach(clearInterval);
  timers = [];
}

async function start() {
  $("sign-in").hidden = true;
  running = true;
  const [grids, communities, categories] = await Promise.all([api("/api/v1/grids", { query: { level: "unit" } }),
    api("/api/v1/grids", { query: { level: "community" } }), api("/api/v1/categories")]);
  screen.geojson = grids;
  for (const f of grids.features) names.grids.set(f.properties.code, f.properties.name);
  for (const c of categories) names.categories.set(c.code, c.name);
  screen.map ??= createMap($("map"), grids, communities);
  charts ??= { categories: createChart($("chart-category")), hours: createChart($("chart-hour")) };
  emptyFeed($("event-feed"));
  const live = guarded(refreshLive);
  const stats = guarded(refreshStats);
  const lists = guarded(refreshLists);
  const ranking = guarded(refreshRanking);
  await Promise.all([live(), stats(), lists(), ranking()]);
  timers.push(setInterval(live, 15000), setInterval(stats, 30000), setInterval(lists, 30000), setInterval(ranking, 300000));
  const soon = debounced(() => { live(); stats(); lists(); }, 400);
  streaming = new AbortController();
  follow((event) => {
    if (!running) return;
    screen.events.push(event);
    pushEvent($("event-feed"), event);
    soon();
  }, (state) => {
    const el = $("live-state");
    el.dataset.state = state;
    el.textContent = { open: "● 实时", closed: "● 重连中", unauthorized: "● 未授权" }[state] || state;
    if (state === "unauthorized") failed(new ApiError(401, "unauthorized"));
  }, streaming.signal);
  screen.ready = true;
}

$("sign-in-form").addEventListener("submit", (e) => {
  e.preventDefault();
  signIn($("token").value);
  start().catch(failed);
});
window.addEventListener("resize", () => [screen.map, charts?.categories, charts?.hours].forEach((c) => c?.resize()));
tick();
setInterval(tick, 1000);
// The LED wall has no person at it: it keeps a machine's operator token, pasted once into the tab. An operator
// already signed in on this browser (the work screen's session cookie) needs none.
async function operatorSignedIn() {
  try {
    return ["operator", "admin"].includes((await api("/api/v1/sessions")).role);
  } catch {
    return false;
  }
}
if (token()) start().catch(failed);
else operatorSignedIn().then((yes) => (yes ? start().catch(failed) : showSignIn()));

// The wall's lists: overdue and due-soon cases, the ranking, and the feed of events as they happen.
import { streetTime } from "../common/api.js";
import { eventLabel, eventTone, percent } from "./labels.js";

const FEED_LENGTH = 8;

function cell(text, cls) {
  const span = document.createElement("span");
  if (cls) span.className = cls;
  span.textContent = text;
  return span;
}

function hoursBetween(a, b) {
  const h = Math.abs(b - a) / 3600000;
  return h < 1 ? `${Math.max(1, Math.round(h * 60))}分钟` : `${h.toFixed(h < 10 ? 1 : 0)}小时`;
}

// Cases as rows: number, where and what, and how late (overdue) or how much time is left (due soon).
export function paintCases(list, cases, names, kind) {
  list.replaceChildren();
  if (!cases.length) {
    list.append(Object.assign(document.createElement("li"), { className: "empty", textContent: "暂无" }));
    return;
  }
  const now = Date.now();
  for (const c of cases.slice(0, 4)) {
    const li = document.createElement("li");
    li.dataset.caseNo = c.case_no || "";
    const due = c.due_at ? new Date(c.due_at).getTime() : null;
    const where = (names.grids.get(c.unit_grid) || c.unit_grid || "").replace(/单元网格$/, "");
    const what = names.categories.get(c.category) || c.category || "";
    const left = due === null ? "—" : kind === "overdue" ? `超${hoursBetween(due, now)}` : `剩${hoursBetween(now, due)}`;
    li.append(cell(c.case_no || "—", "no"), cell(left, "left-time"),
      cell([what, where, c.owner_name].filter(Boolean).join(" · "), "w"));
    list.append(li);
  }
}

// The communities' and departments' ranking of the month (on-time rate, then satisfaction).
export function paintRanking(body, rows) {
  body.replaceChildren();
  for (const r of rows.slice(0, 6)) {
    const tr = document.createElement("tr");
    tr.dataset.key = r.key;
    for (const text of [r.rank, r.name, percent(r.on_time_rate)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    body.append(tr);
  }
}

// One event at the top of the feed, highlighted for a moment; the oldest falls off the bottom.
export function pushEvent(feed, e) {
  feed.querySelector(".empty")?.remove();
  const li = document.createElement("li");
  li.className = "fresh";
  li.dataset.caseNo = e.case_no || "";
  li.dataset.type = e.type;
  const time = streetTime(e.occurred_at).slice(11);
  const where = (e.unit_grid_name || e.unit_grid || "").replace(/单元网格$/, "");
  const what = [e.category_name || e.category, where].filter(Boolean).join(" · ");
  li.append(cell(time, "t"), cell(eventLabel(e.type), `k ${eventTone(e.type)}`), cell(e.case_no || "", "no"),
    cell(what || "—", "w"));
  feed.prepend(li);
  while (feed.children.length > FEED_LENGTH) feed.lastElementChild.remove();
}

export function emptyFeed(feed) {
  feed.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "等待新的案件动态…" }));
}

// 周例会通报: one community's week for the Monday meeting — each unit grid, its coordinator, the cases reported,
// open and late — to read on screen, print (the browser's print) or download as supervision's PDF.
import { CSRF_HEADERS, api } from "../common/api.js";
import { signOutButton, signedIn } from "../common/session.js";

const app = document.getElementById("app");

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

// The ISO week (YYYY-Www) of a day: the Monday meeting looks back at last week by default.
export function isoWeek(day) {
  const d = new Date(Date.UTC(day.getFullYear(), day.getMonth(), day.getDate()));
  const weekday = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - weekday);
  const yearStart = new Date(Date.UTC(d.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((d - yearStart) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

function caseList(label, numbers, cls) {
  if (!numbers.length) return null;
  return h("div", { class: cls }, `${label}：`, numbers.map((no, i) => [i ? "、" : "", h("a", { href: `/#/case/${encodeURIComponent(no)}` }, no)]));
}

function report(data) {
  const period = `${data.week}（${data.from} 至 ${data.to}）`;
  return h("article", { class: "report", id: "report", "data-community": data.community },
    h("h1", {}, `${data.name} 周例会通报`),
    h("p", { class: "meta" }, `${period} · 社区代码 ${data.community} · 统计时间 ${String(data.as_of).slice(0, 16).replace("T", " ")}`),
    h("div", { class: "totals" }, h("div", {}, "本周上报 ", h("b", {}, data.total.reported), " 件"),
      h("div", {}, "目前在办 ", h("b", {}, data.total.open), " 件"), h("div", { class: "late" }, "超期 ", h("b", {}, data.total.late), " 件")),
    h("table", {}, h("thead", {}, h("tr", {}, ["单元网格", "网格员", "上报", "在办", "超期", "案件编号"].map((t) => h("th", {}, t)))),
      h("tbody", {}, data.rows.map((r) => h("tr", { class: r.late ? "has-late" : "" },
        h("td", {}, r.name, h("br"), h("small", {}, r.unit_grid)),
        h("td", {}, r.coordinator_name || "—", r.coordinator ? [h("br"), h("small", {}, r.coordinator)] : null),
        h("td", { class: "n" }, r.reported), h("td", { class: "n" }, r.open), h("td", { class: r.late ? "n late" : "n" }, r.late),
        h("td", { class: "nos" }, caseList("上报", r.reported_cases), caseList("在办", r.open_cases), caseList("超期", r.late_cases, "late"),
          !(r.reported_cases.length || r.open_cases.length || r.late_cases.length) ? "—" : null))))));
}

async function download(community, week, button) {
  button.disabled = true;
  try {
    // Fetched (the session cookie goes along), then handed to the browser as a file with a readable name.
    const res = await fetch(`/api/v1/reports/weekly.pdf?community=${encodeURIComponent(community)}&week=${encodeURIComponent(week)}`,
      { credentials: "same-origin", headers: CSRF_HEADERS });
    if (!res.ok) throw new Error((await res.json().catch(() => ({}))).detail || `HTTP ${res.status}`);
    const url = URL.createObjectURL(await res.blob());
    h("a", { href: url, download: `周例会通报-${community}-${week}.pdf` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
  } catch (err) {
    document.getElementById("status").textContent = `PDF 未能生成：${err.message}`;
  } finally {
    button.disabled = false;
  }
}

async function start() {
  const owners = await api("/api/v1/owners");
  const communities = owners.filter((o) => o.kind === "community");
  const params = new URLSearchParams(location.search);
  const community = h("select", { id: "community", "aria-label": "社区" },
    communities.map((c) => h("option", { value: c.code, selected: params.get("community") === c.code }, c.name)));
  const week = h("input", { type: "week", id: "week", value: params.get("week") || isoWeek(new Date(Date.now() - 7 * 86400000)) });
  const status = h("p", { id: "status", class: "status" });
  const body = h("div", { id: "body" });
  const show = async () => {
    status.textContent = "加载中…";
    history.replaceState(null, "", `?community=${community.value}&week=${week.value}`);
    try {
      body.replaceChildren(report(await api("/api/v1/reports/weekly", { query: { community: community.value, week: week.value } })));
      status.textContent = "";
    } catch (err) {
      body.replaceChildren();
      status.textContent = `无法生成通报：${err.message}`;
    }
  };
  const pdf = h("button", { type: "button", id: "pdf", onclick: () => download(community.value, week.value, pdf) }, "下载 PDF");
  app.replaceChildren(
    h("form", { class: "controls no-print", onsubmit: (e) => { e.preventDefault(); show(); } },
      h("a", { href: "/" }, "‹ 工作台"), community, week, h("button", { type: "submit", id: "show" }, "查看"),
      h("button", { type: "button", onclick: () => window.print() }, "打印"), pdf, signOutButton()),
    status, body);
  await show();
  document.body.dataset.ready = "1";
}

// The weekly report's API admits the command center (operator, admin).
signedIn({ roles: ["operator", "admin"], title: "周例会通报" }).then(start).catch((err) => {
  app.replaceChildren(h("p", { class: "error", id: "status" }, `无法加载：${err.message}`));
});

// The owner's task list: due first, a filter per kind of work, "加载更多" following the API's cursor to the
// last task, and the order turned round (期限最晚在前: the API reads the list backwards) so that the task due last
// of thousands is one tap away. Every 10 s the loaded part is read again: a new task or a new 督办 is announced
// on top.
import { api } from "../common/api.js";
import { countdown } from "../common/phone.js";
import { clear, h, notify } from "../workbench/dom.js";
import { stateLabel } from "../workbench/labels.js";

export const FILTERS = [
  ["", "全部"], ["new", "待签收"], ["in_progress", "办理中"], ["returned", "返工/重办"],
  ["extension", "延期待批"], ["overdue", "已超期"], ["checking", "待核查"],
];
const PAGE = 100;  // "加载更多" follows the cursor; a case number opens any task at once (the box on top)
const POLL_MS = 10000;
const REREAD = 500;  // the most one look reads again (the API's largest page)
const ORDERS = { due_first: "期限最早在前", due_last: "期限最晚在前" };

const state = { filter: "", order: "due_first", tasks: [], next: null, timer: null, newSeen: null, urgesSeen: new Map() };

// The list's order as the API keeps it (deadline, then case number; no deadline after every deadline), for
// telling whether a loaded task lies beyond what a look read again.
function key(t) {
  return [t.due_at ? Date.parse(t.due_at) : Infinity, t.case_no || ""];
}
function beyond(t, last) {
  const [a, b] = [key(t), key(last)];
  const cmp = a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
  return state.order === "due_last" ? cmp < 0 : cmp > 0;
}

// 超期 as supervision's one rule says (domain/overdue.py): the task's `overdue`, never worked out here.
function late(t) {
  return Boolean(t.overdue);
}

function card(t) {
  return h("li", { class: `task${late(t) ? " late" : ""}`, "data-case": t.case_no, "data-state": t.state },
    h("a", { href: `#/task/${encodeURIComponent(t.case_no)}` },
      h("div", { class: "line" }, h("b", { class: "no" }, t.case_no), h("span", { class: `badge state-${t.state}` }, stateLabel(t.state)),
        late(t) ? h("span", { class: "badge late" }, "超期") : null,
        t.rework_count || t.reopened_count ? h("span", { class: "badge warn" }, "返工") : null,
        t.extension_state === "pending" ? h("span", { class: "badge" }, "延期待批") : null),
      h("p", { class: "desc" }, t.description || ""),
      h("div", { class: "line muted" }, countdown(t.due_at)),
      t.urge_note ? h("p", { class: "urge", "data-role": "urge" }, `督办：${t.urge_note}`) : null));
}

function draw(root) {
  const list = root.querySelector("#tasks");
  if (!list) return;
  list.replaceChildren(...(state.tasks.length ? state.tasks.map(card) : [h("li", { class: "empty muted" }, "暂无任务")]));
  const more = root.querySelector("#more");
  more.hidden = !state.next;
  root.querySelector("#count").textContent = `已显示 ${state.tasks.length}${state.next ? "+" : ""} 件`;
}

async function load(root, { append = false } = {}) {
  const page = await api("/api/v1/tasks", { query: { filter: state.filter, order: state.order, limit: PAGE, cursor: append ? state.next : undefined } });
  state.tasks = append ? [...state.tasks, ...page.tasks] : page.tasks;
  state.next = page.next;
  draw(root);
}

// Read again what is on screen (as many tasks as loaded), and the new ones; announce what changed.
async function poll(root) {
  if (!document.getElementById("tasks")) return;
  try {
    const fresh = await api("/api/v1/tasks", { query: { filter: "new", limit: 100 } });
    const newNos = fresh.tasks.map((t) => t.case_no);
    const firstLook = !state.newSeen;  // the first look only learns what is there already
    const arrived = firstLook ? [] : newNos.filter((no) => !state.newSeen.has(no));
    state.newSeen = new Set([...(state.newSeen || []), ...newNos]);
    const again = await api("/api/v1/tasks", { query: { filter: state.filter, order: state.order, limit: Math.min(REREAD, Math.max(PAGE, state.tasks.length)) } });
    if (state.tasks.length <= REREAD || !again.next || !again.tasks.length) {
      state.tasks = again.tasks;
      state.next = again.next;
    } else {
      // More is loaded than one look reads: the head is read again, the tail loaded by "加载更多" is kept (with
      // its own cursor), so the person paging far down is not thrown back to the first 500.
      const fresh = new Set(again.tasks.map((t) => t.case_no));
      const last = again.tasks[again.tasks.length - 1];
      state.tasks = [...again.tasks, ...state.tasks.filter((t) => !fresh.has(t.case_no) && beyond(t, last))];
    }
    draw(root);
    const urged = [...new Map([...fresh.tasks, ...again.tasks].map((t) => [t.case_no, t])).values()].filter((t) => t.urged_at && state.urgesSeen.get(t.case_no) !== t.urged_at);
    for (const t of urged) state.urgesSeen.set(t.case_no, t.urged_at);
    if (firstLook) return;
    if (urged.length) notify(`督办：${urged.map((t) => `${t.case_no} ${t.urge_note}`).join("；")}`, "error");
    else if (arrived.length) notify(`新任务 ${arrived.length} 件：${arrived.join("、")}`, "ok");
  } catch {
    // A failed look (no signal) is tried again at the next tick; a session that ended brings the sign-in form
    // over the page (session.js), and the next tick after it goes on.
  }
}

export async function renderList(root) {
  const chips = h("nav", { class: "filters", id: "filters" }, FILTERS.map(([id, title]) => h("button", {
    type: "button", class: `chip${state.filter === id ? " active" : ""}`, "data-filter": id || "all",
    onclick: async () => { state.filter = id; await renderList(root); },
  }, title)));
  const jump = h("input", { type: "search", id: "jump", placeholder: "输入案件编号直接打开", inputmode: "text", maxlength: 50 });
  const finder = h("form", { class: "jump", onsubmit: (e) => {
    e.preventDefault();
    const no = jump.value.trim();
    if (/^[0-9A-Za-z-]+$/.test(no)) location.hash = `#/task/${encodeURIComponent(no)}`;
    else notify("案件编号只含数字、字母和连字符，如 20261206-0001", "error");
  } }, jump, h("button", { type: "submit" }, "打开"));
  const turn = h("button", {
    type: "button", id: "order", class: "order", "data-order": state.order, title: "倒转排列顺序",
    onclick: async () => { state.order = state.order === "due_first" ? "due_last" : "due_first"; await renderList(root); },
  }, `${ORDERS[state.order]} ⇅`);
  clear(root, finder, chips, h("div", { class: "list-head" }, h("span", { id: "count", class: "muted" }, "…"), turn),
    h("ul", { id: "tasks", class: "tasks" }),
    h("button", { type: "button", id: "more", class: "more", hidden: true, onclick: (e) => { e.target.disabled = true; load(root, { append: true }).finally(() => { e.target.disabled = false; }); } }, "加载更多"));
  await load(root);
  for (const t of state.tasks) if (t.urged_at) state.urgesSeen.set(t.case_no, t.urged_at);
  if (!state.timer) {
    state.timer = setInterval(() => poll(root), POLL_MS);
    poll(root);
  }
}

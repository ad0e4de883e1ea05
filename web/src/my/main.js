// 居民服务 (/my/): the street's recent cases on a map for anyone; 随手拍 (photos, the phone's position or a tap on
// the map, the suggested category, a description) once the phone is proven by a one-time SMS code (or, for one who
// reported with only an e-mail, the address by a code sent by e-mail); the resident's own cases with every state and
// reply, and a comment on an open one; the survey from the signed link of the survey SMS (/my/?s=…, no phone).
//
// The session is an HttpOnly cookie set by notify (POST /api/v1/resident/sessions) that intake, routing and notify
// accept for this resident; the page never sees it. The resident's own phone (GET /api/v1/resident/sessions) goes
// into their report, and intake checks it is the phone the code proved.
import { api, streetTime } from "../common/api.js";
import { upload } from "../common/media.js";
import { newId } from "../common/phone.js";
import { photoPicker } from "../common/photos.js";
import { placePicker } from "../common/place.js";
import { suggestBox } from "../common/suggest.js";
import { clear, h, notify } from "../workbench/dom.js";
import { COLOURS, casesMap } from "./map.js";

const app = document.getElementById("app");
const main = h("main", { id: "main" });
const notice = h("div", { id: "notice", class: "notice", role: "status" });
let me = null;
let grids = null;

const TABS = [["public", "街道案件"], ["report", "随手拍"], ["mine", "我的案件"]];
const VERDICTS = [["satisfied", "满意"], ["basically_satisfied", "基本满意"], ["unsatisfied", "不满意"]];

function publicGrids() {
  grids ||= api("/api/v1/public/grids").catch(() => null);
  return grids;
}

async function whoAmI() {
  try {
    me = await api("/api/v1/resident/sessions");
  } catch {
    me = null;
  }
  return me;
}

function bar() {
  const who = h("span", { class: "who", id: "who" }, me ? (me.phone_masked || me.email_masked) : "未验证");
  const out = me ? h("button", {
    type: "button", id: "my-sign-out",
    onclick: async () => {
      await api("/api/v1/resident/sessions", { method: "DELETE" }).catch(() => {});
      me = null;
      render();
    },
  }, "退出") : null;
  return h("header", { class: "bar" }, h("h1", {}, "居民服务"), who, out);
}

function tabs(current) {
  return h("nav", { class: "tabs three" }, TABS.map(([id, label]) => h("a", {
    href: `#${id}`, id: `tab-${id}`, class: id === current ? "active" : "",
  }, label)));
}

// ---- prove the phone (or, for one who reported with only an e-mail, the e-mail address) ------------------------

function proveForm(why) {
  let byEmail = false;
  const phone = h("input", { id: "my-phone", type: "tel", inputmode: "numeric", maxlength: 20, placeholder: "手机号码", autocomplete: "tel" });
  const email = h("input", { id: "my-email", type: "email", maxlength: 254, placeholder: "电子邮箱（如 zhang@example.cn）", autocomplete: "email", hidden: true });
  const code = h("input", { id: "my-code", inputmode: "numeric", maxlength: 6, placeholder: "6位验证码", autocomplete: "one-time-code" });
  const refusal = h("p", { class: "refusal", role: "alert", id: "prove-refusal" });
  const title = h("h3", {}, "验证手机号码");
  const privacy = h("p", { class: "muted" }, "您的手机号码仅用于答复您反映的问题，不会公开。");
  // The address the code goes to: the phone (SMS) or, switched, the e-mail (a code by e-mail).
  const address = () => (byEmail ? { email: email.value.trim() } : { phone: phone.value.trim() });
  const ask = h("button", {
    type: "button", id: "ask-code",
    onclick: async () => {
      refusal.textContent = "";
      ask.disabled = true;
      try {
        const sent = await api("/api/v1/resident/codes", { method: "POST", body: address() });
        const minutes = Math.round(sent.expires_in / 60);
        notify(sent.email ? `验证码已发送至邮箱 ${sent.email}，${minutes}分钟内有效` : `验证码已发送至 ${sent.phone}，${minutes}分钟内有效`, "ok");
        code.focus();
      } catch (e) {
        refusal.textContent = e.message;
      } finally {
        setTimeout(() => { ask.disabled = false; }, 3000);
      }
    },
  }, "获取验证码");
  const toggle = h("button", {
    type: "button", class: "link", id: "use-email",
    onclick: () => {
      byEmail = !byEmail;
      phone.hidden = byEmail;
      email.hidden = !byEmail;
      title.textContent = byEmail ? "验证电子邮箱" : "验证手机号码";
      toggle.textContent = byEmail ? "改用手机号码验证" : "没有留手机？用电子邮箱验证";
      privacy.textContent = byEmail ? "您的邮箱仅用于答复您反映的问题，不会公开。" : "您的手机号码仅用于答复您反映的问题，不会公开。";
      refusal.textContent = "";
      (byEmail ? email : phone).focus();
    },
  }, "没有留手机？用电子邮箱验证");
  const prove = h("button", {
    type: "submit", class: "primary", id: "prove",
  }, "验证并继续");
  return h("form", {
    class: "prove", id: "prove-form",
    onsubmit: async (e) => {
      e.preventDefault();
      refusal.textContent = "";
      prove.disabled = true;
      try {
        me = await api("/api/v1/resident/sessions", { method: "POST", body: { ...address(), code: code.value.trim() } });
        notify(byEmail ? "邮箱已验证" : "手机已验证", "ok");
        render();
      } catch (err) {
        refusal.textContent = err.message;
      } finally {
        prove.disabled = false;
      }
    },
  }, title, h("p", { class: "muted" }, why),
  h("div", { class: "row" }, phone, email, ask), code, prove, refusal, toggle, privacy);
}

// ---- the public map ----------------------------------------------------------------------------------------

async function renderPublic() {
  const box = h("div", { class: "map", id: "public-map" });
  const list = h("ul", { class: "public", id: "public-list" });
  clear(main, h("h3", {}, "街道近30天的问题"), h("div", { class: "legend" },
    h("span", {}, h("i", { style: `background:${COLOURS.open}` }), "处理中"),
    h("span", {}, h("i", { style: `background:${COLOURS.resolved}` }), "已处置"),
    h("span", {}, h("i", { style: `background:${COLOURS.closed}` }), "已办结")), box, list,
  h("p", {}, h("a", { href: "#report" }, "发现问题？随手拍上报 →")));
  const [geo, answer] = await Promise.all([publicGrids(), api("/api/v1/public/cases").catch(() => ({ cases: [] }))]);
  const cases = answer.cases || [];
  if (geo) casesMap(box, geo, cases);
  else box.replaceChildren(h("p", { class: "muted" }, "地图暂不可用"));
  list.replaceChildren(...(cases.length ? cases.slice(0, 50).map((c) => h("li", { "data-case-no": c.case_no },
    h("span", {}, c.category), h("span", { class: "muted" }, `${c.status_label} · ${streetTime(c.reported_at)}`)))
    : [h("li", { class: "muted" }, "近期没有案件")]));
  list.dataset.ready = "1";
}

// ---- 随手拍 ---------------------------------------------------------------------------------------------------

async function renderReport() {
  if (!me) return clear(main, proveForm("上报问题前请先验证手机号码：我们用短信告诉您办理进度。"));
  const description = h("textarea", { id: "my-description", rows: 3, required: true, maxlength: 2000, placeholder: "遇到了什么问题？在哪里？" });
  const select = h("select", { id: "my-category", onchange: () => { select.dataset.touched = "1"; } },
    h("option", { value: "" }, "问题类别（不确定可不选）"));
  api("/api/v1/categories").then((list) => select.append(...list.map((c) => h("option", { value: c.code }, c.name)))).catch(() => {});
  const suggestions = suggestBox(description, select, { id: "my-suggestions" });
  const place = placePicker({ mapId: "my-map", digits: 5, mapHint: "也可在地图上点选问题的位置" });
  const photos = photoPicker({ name: "photos", label: "拍照 / 选择照片" });
  const send = h("button", { type: "submit", class: "primary send", id: "my-send" }, "上报");
  const form = h("form", {
    class: "report", id: "my-report",
    onsubmit: async (e) => {
      e.preventDefault();
      if (!place.point) return notify("请使用手机定位，或在地图上点选问题的位置", "error");
      send.disabled = true;
      try {
        const media = [];
        for (const file of photos.files()) media.push((await upload(file)).url);
        const made = await api("/api/v1/reports", { method: "POST", body: {
          source: "web", external_id: newId("my-"), category: select.value || null,
          description: description.value.trim(), location: place.point, address: null,
          reporter: me.phone ? { phone: me.phone } : { email: me.email }, media, observed_at: new Date().toISOString(),
        } });
        notify(`已上报，案件编号 ${made.case_no}。办理进度会以${me.phone ? "短信" : "邮件"}告知，也可在“我的案件”查看。`, "ok");
        location.hash = "#mine";
      } catch (err) {
        notify(`上报未成功：${err.message}`, "error");
      } finally {
        send.disabled = false;
      }
    },
  }, h("h3", {}, "随手拍：反映身边的问题"), photos.element, description, suggestions, select,
  ...place.elements, send);
  clear(main, form);
  const geo = await publicGrids();
  place.showMap(geo, "地图暂不可用：请使用手机定位");
}

// ---- my cases ----------------------------------------------------------------------------------------------

function surveyButtons(answer) {
  return h("div", { class: "verdicts" }, VERDICTS.map(([verdict, label]) => h("button", {
    type: "button", "data-verdict": verdict, onclick: (e) => answer(verdict, e.target),
  }, label)));
}

function caseCard(c) {
  const replies = h("ol", { class: "replies" }, c.replies.map((r) => h("li", {},
    h("time", {}, streetTime(r.time)), r.text)));
  let survey = null;
  if (c.survey && !c.survey.answered && new Date(c.survey.closes_at) > Date.now()) {
    survey = h("div", { class: "survey", "data-role": "survey" }, h("b", {}, "请您评价办理结果"),
      surveyButtons(async (verdict) => {
        try {
          // The survey's own signed token (a resident who proved an e-mail has no phone to give).
          if (c.survey.token) await api(`/api/v1/resident/surveys/${c.survey.token}`, { method: "POST", body: { verdict } });
          else await api(`/api/v1/surveys/${encodeURIComponent(c.case_no)}`, { method: "POST", body: { phone: me.phone, verdict } });
          notify("感谢您的评价", "ok");
          renderMine();
        } catch (err) {
          notify(`评价未成功：${err.message}`, "error");
        }
      }));
  } else if (c.survey && c.survey.answered) {
    survey = h("p", { class: "muted" }, "已评价，感谢您的反馈");
  }
  const open = !FINISHED.has(c.status);
  return h("li", { class: `case ${c.status}`, "data-case-no": c.case_no },
    h("div", { class: "head" }, h("b", {}, c.case_no), h("span", { class: "status" }, c.status_label)),
    h("p", { class: "muted" }, `更新于 ${streetTime(c.changed_at)}`, c.followed_case_no ? `，已与 ${c.followed_case_no} 合并办理` : ""),
    replies, survey, open ? commentForm(c.case_no) : null);
}

// 补充说明: a comment or a photo on an open case reaches its holder as a note (intake's case.commented). The id is
// made once per comment, so a retry after a lost answer is the same comment.
const FINISHED = new Set(["closed", "rejected", "merged"]);
function commentForm(caseNo) {
  const text = h("textarea", { rows: 2, maxlength: 2000, name: "comment", placeholder: "补充说明（如：问题仍在、位置更正）" });
  const photos = photoPicker({ name: "comment-photos", label: "补充照片", max: 9 });
  const send = h("button", { type: "submit", "data-action": "comment" }, "发送补充说明");
  let clientId = newId("c-");
  return h("form", {
    class: "comment", "data-form": "comment",
    onsubmit: async (e) => {
      e.preventDefault();
      send.disabled = true;
      try {
        const media = [];
        for (const file of photos.files()) media.push((await upload(file)).url);
        await api(`/api/v1/resident/cases/${encodeURIComponent(caseNo)}/comments`, {
          method: "POST", body: { text: text.value.trim(), media, client_id: clientId },
        });
        notify("补充说明已送达办理单位", "ok");
        text.value = "";
        photos.clear();
        clientId = newId("c-");
      } catch (err) {
        notify(`补充说明未成功：${err.message}`, "error");
      } finally {
        send.disabled = false;
      }
    },
  }, h("details", {}, h("summary", {}, "补充说明或照片"), text, photos.element, send));
}

async function renderMine() {
  if (!me) return clear(main, proveForm("验证手机号码（或反映问题时留下的电子邮箱）后，可查看您反映的所有问题及办理进度。"));
  const list = h("ul", { class: "cases", id: "my-cases" });
  clear(main, h("h3", {}, "我的案件"), list);
  await refreshMine(list);
}

// The list follows the case on its own: a new reply or state shows without a reload (every 5 s while it is open).
let refresher = null;
async function refreshMine(list) {
  clearTimeout(refresher);
  const { cases } = await api("/api/v1/resident/cases");
  if (!list.isConnected) return;
  // Not under the resident's finger: a comment being written (an open form) or a focused field is left alone.
  if (!list.contains(document.activeElement) && !list.querySelector("details[open]")) {
    list.replaceChildren(...(cases.length ? cases.map(caseCard) : [h("li", { class: "muted" }, "您还没有反映过问题")]));
  }
  list.dataset.ready = "1";
  refresher = setTimeout(() => refreshMine(list).catch(() => {}), 5000);
}

// ---- the survey from the signed link -----------------------------------------------------------------------

async function renderLinkedSurvey(token) {
  const box = h("section", { class: "survey", id: "link-survey" });
  main.prepend(box);
  const show = (s) => {
    clear(box, h("b", {}, `回访评价：案件 ${s.case_no}`), h("span", {}, `办理情况：${s.status_label}`),
      s.answered ? h("p", { id: "link-answered" }, `已评价：${s.verdict_label}。感谢您的反馈！`)
        : [h("span", { class: "muted" }, `请在 ${streetTime(s.closes_at)} 前评价`), surveyButtons(async (verdict, button) => {
          button.disabled = true;
          try {
            show(await api(`/api/v1/resident/surveys/${token}`, { method: "POST", body: { verdict } }));
          } catch (err) {
            box.append(h("p", { class: "refusal" }, err.message));
          }
        })]);
    box.dataset.ready = "1";
  };
  try {
    show(await api(`/api/v1/resident/surveys/${token}`));
  } catch (err) {
    box.replaceChildren(h("p", { class: "refusal", id: "link-refused" }, err.message));
    box.dataset.ready = "1";
  }
}

// ---- the page ----------------------------------------------------------------------------------------------

async function render() {
  const tab = (location.hash || "#public").slice(1);
  const current = TABS.some(([id]) => id === tab) ? tab : "public";
  clear(app, bar(), tabs(current), notice, main);
  try {
    if (current === "report") await renderReport();
    else if (current === "mine") await renderMine();
    else await renderPublic();
  } catch (err) {
    notify(err.message, "error");
  }
  const token = new URLSearchParams(location.search).get("s");
  if (token) await renderLinkedSurvey(token);
  document.body.dataset.ready = "1";
}

window.addEventListener("hashchange", () => render());
whoAmI().then(render);

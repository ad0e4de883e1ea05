// The one way the pages talk to the services: same origin (nginx routes /api/v1/… to the owning service),
// people's session cookie (HttpOnly: set by POST /api/v1/sessions, never seen by page code; see session.js) with
// the X-Requested-With header every service demands of a cookie-authenticated change (CSRF), and the services'
// errors ({"detail": …}) turned into an Error whose message a person can read.
// A page with no person at it (the big screen on the LED wall) may instead keep a machine's bearer token in
// sessionStorage (signIn/token below); when one is there it is sent, and wins over the cookie.
const TOKEN_KEY = "wangge.token";
export const CSRF_HEADERS = { "X-Requested-With": "wangge" };

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function reason(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("；");
  if (detail && typeof detail === "object") return detail.reason || detail.message || JSON.stringify(detail);
  return `HTTP ${status}`;
}

export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json", ...CSRF_HEADERS };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (res.status === 401 && !t && url.pathname !== "/api/v1/sessions") {
    // The person's session ended (signed out elsewhere, expired, the account disabled): session.js shows the
    // sign-in form over the page, which keeps its state for when they are back.
    window.dispatchEvent(new CustomEvent("wangge:session-ended"));
  }
  if (!res.ok) throw new ApiError(res.status, reason(data, res.status));
  return data;
}

// ISO 8601 with offset → the street's local reading (Asia/Shanghai), e.g. 2026-11-27 09:30.
export function streetTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const parts = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", hour12: false,
  }).formatToParts(d);
  const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

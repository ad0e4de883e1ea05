// The coordinator's page opens without signal: this service worker (scope /grid/) keeps the page's shell — its
// HTML, bundle and styles, nothing else — and serves /grid/ from the network when there is one, from the shell
// otherwise. The API's answers and the photos under /media/ are never kept here (personal data, and who may see
// them is decided on every request): those requests are not touched at all. Reports made offline wait in the
// page's own outbox (IndexedDB, outbox.js), not here.
//
// build.mjs bundles this file with __SHELL__ (the shell's URLs) and __VERSION__ (a hash of their contents): a
// new build is a new worker with a new cache, which replaces the old one at once.
/* global __SHELL__, __VERSION__ */
const CACHE = `wangge-grid-shell-${__VERSION__}`;
const SHELL = __SHELL__;
const PAGE = "/grid/";

self.addEventListener("install", (event) => {
  // cache: "reload": the shell as the server has it now, not an older copy from the browser's HTTP cache.
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("wangge-grid-shell-") && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  // Never answered from (or kept in) the cache: the services decide each of these afresh.
  if (url.pathname.startsWith("/api/") || url.pathname.startsWith("/media/")) return;
  if (request.mode === "navigate" && (url.pathname === PAGE || url.pathname === "/grid" || url.pathname === "/grid/index.html")) {
    event.respondWith(networkFirst(request, PAGE));
  } else if (SHELL.includes(url.pathname)) {
    event.respondWith(networkFirst(request, url.pathname));
  }
});

// Network first (a new build's files as soon as they are there; the page kept fresh in the cache), the kept copy
// without signal. `key` is the shell URL the answer is kept under (/grid/ for any navigation to the page).
async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const answer = await fetch(request);
    if (answer.ok) await cache.put(key, answer.clone());
    return answer;
  } catch (err) {
    const kept = await cache.match(key);
    if (kept) return kept;
    throw err;
  }
}

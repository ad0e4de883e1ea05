// Reports made on the phone wait here (IndexedDB, photos as Blobs) until they are sent: every report goes
// through the outbox, with or without signal, so there is one way a report leaves the phone. Its external_id is
// made once, when the coordinator presses 上报; sending it again after a lost answer is the same report to
// intake (200, duplicate), so each report makes exactly one case however often the signal comes and goes.
import { ApiError, api } from "../common/api.js";
import { upload } from "../common/media.js";

const DB = "wangge-grid";
const STORE = "outbox";

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "external_id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, fn) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

export const keep = (item) => run("readwrite", (s) => s.put(item));
export const drop = (id) => run("readwrite", (s) => s.delete(id));
export async function waiting(worker) {
  const items = (await run("readonly", (s) => s.getAll())) || [];
  return items.filter((i) => i.worker === worker).sort((a, b) => a.made_at.localeCompare(b.made_at));
}

// A refusal that sending again cannot change (the report itself does not fit): kept, with its reason, for
// the coordinator to read and delete. Anything else (no signal, a server away, signed out) is tried again later.
function final(err) {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 && ![401, 403, 408, 425, 429].includes(err.status);
}

// Send what waits, oldest first; photos first (each stored URL is kept, so a photo is uploaded once).
async function sendAll(worker) {
  const sent = [];
  for (const item of await waiting(worker)) {
    if (item.refused) continue;
    try {
      for (const photo of [...item.photos, ...item.after]) {
        if (!photo.url) {
          photo.url = (await upload(photo.blob)).url;
          await keep(item);
        }
      }
      const body = { ...item.body, media: item.photos.map((p) => p.url) };
      if (body.resolved_on_the_spot) body.resolved_on_the_spot = { ...body.resolved_on_the_spot, media: item.after.map((p) => p.url) };
      const receipt = await api("/api/v1/reports", { method: "POST", body });
      await drop(item.external_id);
      sent.push({ ...receipt, external_id: item.external_id });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;  // signed out: the page asks to sign in
      if (!final(err)) break;  // no signal: the rest waits too, in order
      item.refused = err.message;
      await keep(item);
    }
  }
  return sent;
}

// One run at a time. A call while a run is under way queues one more run after it (which sees every report kept
// before the call: a report made during a run is not missed); calls before that run starts share it.
// Resolves with the receipts of what that run sent.
let chain = Promise.resolve();
let queued = null;
export function flush(worker) {
  if (queued) return queued;
  const next = chain.then(() => { queued = null; return sendAll(worker); });
  queued = next;
  chain = next.catch(() => {});
  return next;
}

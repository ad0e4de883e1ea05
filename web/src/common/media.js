// A photo to wangge's own store: POST /api/v1/media (multipart field `file`) → {id, url, thumbnail_url}.
// (Minimal version written by the pages' branch against the agreed interface; the media branch owns it.)
import { ApiError } from "./api.js";

export async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name || "photo.jpg");
  const res = await fetch("/api/v1/media", { method: "POST", body: form, headers: { "X-Requested-With": "wangge", Accept: "application/json" } });
  let data = null;
  try { data = await res.json(); } catch { data = null; }
  if (!res.ok) {
    const d = data && data.detail;
    throw new ApiError(res.status, typeof d === "string" ? d : (d && (d.reason || d.message)) || `HTTP ${res.status}`);
  }
  return data;
}

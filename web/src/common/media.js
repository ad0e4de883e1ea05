// Photos: upload(file) stores one through the front door (POST /api/v1/media, multipart field `file`) and
// resolves with {id, url, thumbnail_url}; put `url` in a report's, a note's, a resolution's or a check's
// `media`. The session cookie goes with it (same origin) and the X-Requested-With header the services ask
// of a cookie's unsafe requests (CSRF). A refusal (not an image, too large, too many pixels…) rejects
// with the api.js ApiError whose message is the service's reason, in Chinese and English.
//
// The stored photo is served at `url` (and `thumbnail_url`) to its uploader at once and, once a message
// carries it, to whoever may see that case; for a preview while a form is being filled in, the page may as
// well show the chosen file itself (URL.createObjectURL(file)).
import { ApiError } from "./api.js";

export const MAX_PHOTO_BYTES = 10 * 1024 * 1024;
export const MAX_PHOTOS_PER_MESSAGE = 9;
const TYPES = ["image/jpeg", "image/png", "image/webp", "image/heic", "image/heif"];

function reason(data, status) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  return `照片上传失败 (HTTP ${status})`;
}

export async function upload(file) {
  // Said here before a byte is sent, in the service's words; the service checks again (it decides).
  if (!file) throw new ApiError(422, "请选择照片 (no file chosen)");
  if (file.size > MAX_PHOTO_BYTES) {
    throw new ApiError(413, `照片不能超过10MB (the photo is larger than 10 MB)`);
  }
  if (file.type && !TYPES.includes(file.type)) {
    throw new ApiError(415, "仅支持JPEG、PNG、WebP、HEIC图片 (only JPEG, PNG, WebP or HEIC photos)");
  }
  const form = new FormData();
  form.append("file", file, file.name || "photo");
  let res;
  try {
    res = await fetch(new URL("/api/v1/media", location.origin), {
      method: "POST",
      body: form, // the browser writes the multipart Content-Type with its boundary
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-Requested-With": "wangge" },
    });
  } catch (e) {
    // No signal: the caller keeps the file and tries again later (the coordinator's page does).
    throw new ApiError(0, `网络不可用，照片未上传 (offline: ${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) throw new ApiError(res.status, reason(data, res.status));
  return { id: data.id, url: data.url, thumbnail_url: data.thumbnail_url };
}

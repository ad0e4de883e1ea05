"""web/src/common/media.js in a real Chromium behind the front door: upload(file) sends the file as multipart
(field `file`) with the same-origin cookie and X-Requested-With, resolves with {id, url, thumbnail_url}, and
turns refusals — its own (too large, not a photo) and the service's — into an ApiError with the reason.

Sign-in by cookie is engineer A's (shared/auth.py); until it is merged, the page's fetch is given the bearer
token here, in a wrapper that also records what upload() sent: what media.js does is the same either way."""
from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from tests.e2e.frontdoor import REPO, browser, front_door  # noqa: F401  (fixtures)
from tests.photos import phone_jpeg
from tests.support import grant

pytestmark = pytest.mark.e2e

OWNER = "mjs-owner"


def bundle() -> str:
    """media.js (and the api.js it imports) as one script defining window.wanggeMedia, built by the project's esbuild."""
    esbuild = REPO / "web" / "node_modules" / ".bin" / "esbuild"
    built = subprocess.run([str(esbuild), str(REPO / "web" / "src" / "common" / "media.js"), "--bundle",
                            "--format=iife", "--global-name=wanggeMedia", "--target=chrome110"],
                           check=True, capture_output=True, timeout=60)
    return built.stdout.decode()


CALL = """
const [name, type, b64, size, token] = Array.prototype.slice.call(arguments, 0, 5);
const done = arguments[arguments.length - 1];
window.__sent = [];
if (!window.__realFetch) window.__realFetch = window.fetch;
window.fetch = (url, options) => {
  const body = options.body;
  window.__sent.push({url: String(url), method: options.method, credentials: options.credentials,
                      xrw: options.headers["X-Requested-With"], file: body instanceof FormData && body.get("file") instanceof File,
                      contentType: options.headers["Content-Type"] || null});
  return window.__realFetch(url, {...options, headers: {...options.headers, Authorization: "Bearer " + token}});
};
let file;
if (b64) {
  file = new File([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], name, {type});
} else {
  file = new File([new Uint8Array(size)], name, {type});
}
window.wanggeMedia.upload(file).then(
  (stored) => done({ok: true, stored, sent: window.__sent}),
  (e) => done({ok: false, status: e.status, message: e.message, sent: window.__sent}));
"""


async def test_upload_sends_the_photo_and_reports_refusals_with_their_reason(street, front_door, browser):
    await grant(street.settings, street.intake, street.supervision, token=OWNER, name="环卫所", role="owner",
                owner_code="huanwei")
    await browser.get(front_door.url + "/")
    await browser.script(bundle() + "\nwindow.wanggeMedia = wanggeMedia; return true;")

    async def call(name: str, content_type: str, data: bytes | None = None, size: int = 0, token: str = OWNER) -> dict:
        encoded = base64.b64encode(data).decode() if data is not None else None
        return await browser.run(browser.driver.execute_async_script, CALL, name, content_type, encoded, size, token)

    stored = await call("bin.jpg", "image/jpeg", phone_jpeg(800, 600))
    assert stored["ok"], stored
    media_id = stored["stored"]["id"]
    assert stored["stored"] == {"id": media_id, "url": f"/media/{media_id}",
                                "thumbnail_url": f"/media/{media_id}/thumbnail"}
    [sent] = stored["sent"]
    assert sent["url"].endswith("/api/v1/media") and sent["method"] == "POST" and sent["file"]
    assert sent["credentials"] == "same-origin" and sent["xrw"] == "wangge"
    assert sent["contentType"] is None  # the browser writes multipart/form-data with its boundary
    assert (Path(street.settings.media_dir) / media_id[:2] / media_id).is_file()

    # Refused before a byte is sent: too large, not a photo.
    too_big = await call("huge.jpg", "image/jpeg", size=10 * 1024 * 1024 + 1)
    assert not too_big["ok"] and too_big["status"] == 413 and "10MB" in too_big["message"] and not too_big["sent"]
    text = await call("notes.txt", "text/plain", b"hello")
    assert not text["ok"] and text["status"] == 415 and "JPEG" in text["message"] and not text["sent"]

    # Refused by the service, its reason as the message: not an image; no valid credential.
    fake = await call("fake.jpg", "image/jpeg", b"<html><script>alert(1)</script></html>")
    assert not fake["ok"] and fake["status"] == 422 and "文件不是有效的图片" in fake["message"], fake
    anonymous = await call("bin.jpg", "image/jpeg", phone_jpeg(), token="no-such-token")
    assert not anonymous["ok"] and anonymous["status"] == 401 and "凭证" in anonymous["message"], anonymous

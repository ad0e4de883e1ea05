"""Attacks on the photo door (POST /api/v1/media, GET /media/<id>): each tries to get something stored or read
that must not be, and proves it is refused with a clear 4xx — and that nothing was stored."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from shared.media import FolderStore
from tests.integration.test_media import HOTLINE, OPERATOR, OWNER, TERMINAL, client, intake, upload  # noqa: F401
from tests.photos import HEIC, phone_jpeg, png_bomb, stored_files

pytestmark = pytest.mark.integration


async def nothing_stored(service, settings) -> None:
    assert stored_files(settings.media_dir) == []
    assert await service.runtime.pool.fetchval("SELECT count(*) FROM media") == 0
    assert await service.runtime.pool.fetchval("SELECT count(*) FROM media_uploads") == 0


async def test_what_is_not_a_photo_is_refused_and_nothing_is_stored(intake, isolated):
    truncated = phone_jpeg()[:600]
    html = b"<!DOCTYPE html><html><body><script>fetch('/api/v1/cases').then(r=>r.text()).then(alert)</script>"
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>'
    cases = {
        "text as jpeg": (b"just some words, not a picture", "image/jpeg", 422, "not a JPEG, PNG, WebP or HEIC"),
        "html as jpeg": (html, "image/jpeg", 422, "could not be decoded"),
        "html with a jpeg's first bytes": (b"\xff\xd8\xff\xe0" + html, "image/jpeg", 422, "图片"),
        "truncated jpeg": (truncated, "image/jpeg", 422, "图片"),
        "empty": (b"", "image/jpeg", 422, "empty"),
        "html as html": (html, "text/html", 415, "image/jpeg, image/png, image/webp or image/heic"),
        "svg": (svg, "image/svg+xml", 415, "仅支持JPEG、PNG、WebP"),
        "gif": (gif.getvalue(), "image/gif", 415, "not a photo wangge takes"),
        "gif as png": (gif.getvalue(), "image/png", 422, "not a JPEG, PNG, WebP or HEIC"),
        "jpeg as png": (phone_jpeg(), "image/png", 415, "not the image/png it was sent as"),
        "no type": (phone_jpeg(), "", 415, "(none)"),
        "a heic's header and nothing": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64,
                                        "image/heic", 422, "could not be decoded"),
        "heic as jpeg": (HEIC.read_bytes(), "image/jpeg", 415, "not the image/jpeg it was sent as"),
        "avif as heic": (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64, "image/heic",
                         415, "not a photo wangge takes"),
    }
    for why, (data, content_type, status, words) in cases.items():
        answer = await upload(intake, TERMINAL, data, content_type)
        assert answer.status_code == status, (why, answer.text)
        assert words in answer.json()["detail"], (why, answer.json())
    await nothing_stored(intake, isolated)


async def test_a_decompression_bomb_is_refused_before_it_is_decoded(intake, isolated):
    bomb = png_bomb(20_000)  # 400 megapixels in a few tens of KB: past Pillow's own bomb limit
    assert len(bomb) < 100_000
    answer = await upload(intake, OWNER, bomb, "image/png", "bomb.png")
    assert answer.status_code == 413 and "megapixels" in answer.json()["detail"], answer.text
    under_pillows_limit = png_bomb(7_000)  # 49 MP: Pillow would decode it; ours (40 MP) does not
    answer = await upload(intake, OWNER, under_pillows_limit, "image/png", "big.png")
    assert answer.status_code == 413 and "7000×7000" in answer.json()["detail"], answer.text
    await nothing_stored(intake, isolated)


async def test_too_large_is_refused_whether_declared_or_streamed(intake, isolated):
    limit = isolated.media_max_bytes
    padded = phone_jpeg() + b"\x00" * (limit + 1)  # a real JPEG with trailing bytes past the limit
    declared = await upload(intake, TERMINAL, padded + b"\x00" * 200_000)  # the body itself is over the limit
    assert declared.status_code == 413 and "10 MB" in declared.json()["detail"], declared.text
    just_over = await upload(intake, TERMINAL, phone_jpeg() + b"\x00" * (limit - len(phone_jpeg()) + 1))
    assert just_over.status_code == 413 and "10 MB" in just_over.json()["detail"], just_over.text

    async def chunks():
        boundary = b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n" \
                   b"Content-Type: image/jpeg\r\n\r\n"
        yield boundary
        for _ in range(12):
            yield b"\x00" * (1024 * 1024)
        yield b"\r\n--x--\r\n"

    async with client(intake, TERMINAL) as http:
        streamed = await http.post("/api/v1/media", content=chunks(),
                                   headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413 and "10 MB" in streamed.json()["detail"], streamed.text
    await nothing_stored(intake, isolated)


async def test_not_multipart_or_not_the_file_field_is_refused(intake, isolated):
    async with client(intake, TERMINAL) as http:
        as_json = await http.post("/api/v1/media", json={"file": "data:image/jpeg;base64,/9j/4AAQ"})
        raw = await http.post("/api/v1/media", content=phone_jpeg(), headers={"Content-Type": "image/jpeg"})
        other_field = await http.post("/api/v1/media", files={"photo": ("a.jpg", phone_jpeg(), "image/jpeg")})
        text_field = await http.post("/api/v1/media", data={"file": "not a file"},
                                     files={"other": ("a.txt", b"x", "text/plain")})
        two_files = await http.post("/api/v1/media", files=[("file", ("a.jpg", phone_jpeg(), "image/jpeg")),
                                                            ("file", ("b.jpg", phone_jpeg(), "image/jpeg"))])
        broken = await http.post("/api/v1/media", content=b"--x\r\nnonsense",
                                 headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["detail"]
    assert raw.status_code == 415
    assert other_field.status_code == 422 and "`file`" in other_field.json()["detail"]
    assert text_field.status_code == 422
    assert two_files.status_code in (400, 422) and "Maximum number of files is 1" in two_files.text, two_files.text
    assert broken.status_code in (400, 422), broken.text
    await nothing_stored(intake, isolated)


async def test_who_may_upload(intake, isolated):
    assert (await upload(intake, None, phone_jpeg())).status_code == 401
    assert (await upload(intake, "forged-token", phone_jpeg())).status_code == 401
    assert (await upload(intake, HOTLINE, phone_jpeg())).status_code == 403
    await nothing_stored(intake, isolated)
    for token in (TERMINAL, OWNER, OPERATOR):
        assert (await upload(intake, token, phone_jpeg())).status_code == 201


async def test_a_polyglot_is_stored_as_wangge_s_own_jpeg_without_its_payload(intake, isolated):
    """A real JPEG carrying HTML in a comment and after its end: taken (it is an image), stored without either."""
    image = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 120, 120)).save(image, "JPEG", comment=b"<script>alert('comment')</script>")
    polyglot = image.getvalue() + b"<html><script>alert('tail')</script></html>"
    answer = await upload(intake, OWNER, polyglot, "image/jpeg", "x.html")
    assert answer.status_code == 201, answer.text
    async with client(intake, OWNER) as http:
        served = await http.get(answer.json()["url"])
    assert served.headers["content-type"] == "image/jpeg" and served.headers["x-content-type-options"] == "nosniff"
    assert b"<script" not in served.content and b"alert" not in served.content
    assert all(b"<script" not in path.read_bytes() for path in stored_files(isolated.media_dir))


async def test_path_traversal_and_malformed_ids_find_nothing(intake, isolated, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not a photo")
    media_id = (await upload(intake, OPERATOR, phone_jpeg())).json()["id"]
    attempts = ["/media/..%2F..%2F..%2Fetc%2Fpasswd", "/media/%2e%2e/%2e%2e/etc/passwd", f"/media/{media_id.upper()}",
                f"/media/{media_id[:63]}", f"/media/{media_id}0", f"/media/{media_id}.thumbnail",
                f"/media/{media_id[:2]}", f"/media/{media_id}%00", f"/media/{media_id}/..%2F..%2Fsecret.txt",
                f"/media/{'g' * 64}", f"/media/{media_id}/thumbnail/../../x"]
    async with client(intake, OPERATOR) as http:
        for path in attempts:
            answer = await http.get(path)
            assert answer.status_code in (404, 422), (path, answer.status_code)
            assert b"not a photo" not in answer.content and b"root:" not in answer.content
        assert (await http.get(f"/media/{media_id}")).status_code == 200
    store = FolderStore(isolated.media_dir)
    for bad in ("../secret", "..", media_id.upper(), media_id + "/x", "/etc/passwd"):
        with pytest.raises(ValueError):
            store.get(bad, "image")

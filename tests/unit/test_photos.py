"""The photo as stored (services/intake/domain/photos.py), pure: sizes, determinism, what is kept."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from services.intake.domain.photos import LONGEST_SIDE, THUMBNAIL_SIDE, PhotoRefused, process
from tests.photos import HEIC, opened, phone_jpeg, png_bomb

pytestmark = pytest.mark.unit


def test_a_large_photo_is_kept_at_most_4096_on_its_longer_side_with_its_proportions():
    out = io.BytesIO()
    Image.new("RGB", (9000, 3000), (90, 90, 90)).save(out, "JPEG", quality=70)
    stored = process(out.getvalue(), "image/jpeg", max_pixels=40_000_000)
    assert (stored.width, stored.height) == (LONGEST_SIDE, round(LONGEST_SIDE / 3))
    assert opened(stored.image).size == (stored.width, stored.height)
    assert max(opened(stored.thumbnail).size) == THUMBNAIL_SIDE


def test_the_same_photo_gives_the_same_bytes_and_id_and_another_photo_another():
    first = process(phone_jpeg(), "image/jpeg", max_pixels=40_000_000)
    again = process(phone_jpeg(), "image/jpeg", max_pixels=40_000_000)
    other = process(phone_jpeg(colour=(0, 0, 0)), "image/jpeg", max_pixels=40_000_000)
    assert first.image == again.image and first.media_id == again.media_id
    assert other.media_id != first.media_id


def test_every_orientation_ends_upright_and_without_its_tag():
    for orientation, size in ((1, (400, 200)), (3, (400, 200)), (6, (200, 400)), (8, (200, 400))):
        stored = opened(process(phone_jpeg(orientation=orientation), "image/jpeg", max_pixels=40_000_000).image)
        assert stored.size == size and 0x0112 not in stored.getexif(), orientation


def test_the_pixel_limit_is_the_settings_one():
    with pytest.raises(PhotoRefused) as refused:
        process(png_bomb(1_000), "image/png", max_pixels=999_999)
    assert refused.value.status == 413 and "1000×1000" in refused.value.reason


def test_an_iphones_heic_is_taken_and_stored_as_jpeg_with_its_pixels():
    photo = process(HEIC.read_bytes(), "image/heic", max_pixels=40_000_000)
    assert photo.source_format == "HEIF" and (photo.width, photo.height) == (320, 240)
    stored = Image.open(io.BytesIO(photo.image))
    assert stored.format == "JPEG"
    red, blue = stored.convert("RGB").getpixel((10, 120)), stored.convert("RGB").getpixel((0, 120))
    # The red ground and a 1-px blue stripe (blurred by two lossy encodings, still there): pixels, not a blank.
    assert red[0] > 150 and red[2] < 100 and blue[2] > red[2] + 50
    assert process(HEIC.read_bytes(), "image/heif", max_pixels=40_000_000).media_id == photo.media_id


def test_a_heic_over_the_pixel_limit_is_refused_before_decoding():
    with pytest.raises(PhotoRefused) as refused:
        process(HEIC.read_bytes(), "image/heic", max_pixels=320 * 240 - 1)
    assert refused.value.status == 413

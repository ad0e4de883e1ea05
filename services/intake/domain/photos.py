"""A photo as wangge stores it: proved an image by decoding it, re-encoded without what it should not carry.

Pure (bytes in, bytes out; no I/O). Why each step:
- Only JPEG, PNG, WebP and HEIF (iPhones' HEIC, through pi-heif's libheif) decoders are ever tried (`formats=`),
  so none of Pillow's other parsers (TIFF, PSD, EPS, …) sees hostile bytes; the claimed content type must agree
  with what the bytes are. AVIF, which shares HEIF's container, is not a phone camera's format: refused.
- The pixel count is read from the header and refused before anything is decoded: a decompression bomb
  (a small file declaring a huge image) never gets its pixels allocated.
- Re-encoding to JPEG drops everything but pixels: EXIF (GPS, device serials), XMP, comments, and any
  script or HTML a polyglot hid in the file. The orientation is applied to the pixels (so nothing needs it
  after), the capture time (DateTimeOriginal, with its offset when the phone wrote one) is kept: it says
  when the problem was seen. Colours are converted to sRGB when the photo carries another profile.
- The stored bytes are deterministic for the same input, so the same photo sent twice has one id.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import pi_heif
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

pi_heif.register_heif_opener()  # Pillow's "HEIF" format; tried only where `formats=` names it

# Which container a claimed content type names, and which Pillow format that is.
ACCEPTED_TYPES = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/pjpeg": "JPEG", "image/png": "PNG",
                  "image/webp": "WEBP", "image/heic": "HEIF", "image/heif": "HEIF"}
DECODERS = ["JPEG", "PNG", "WEBP", "HEIF"]
LONGEST_SIDE = 4096  # stored photos: a phone's 12 MP photo stays whole, anything larger is scaled down
THUMBNAIL_SIDE = 320
QUALITY = 85
THUMBNAIL_QUALITY = 80

EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011


class PhotoRefused(Exception):
    """Not a photo wangge takes: the HTTP status and the reason (Chinese and English)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class StoredPhoto:
    media_id: str  # SHA-256 (hex) of `image`
    image: bytes  # JPEG
    thumbnail: bytes  # JPEG
    width: int
    height: int
    source_format: str  # what the upload was: JPEG, PNG, WEBP, HEIF


def _sniff_avif(data: bytes) -> bool:
    """An ISO base media file branded AVIF (HEIF's container, AV1 inside)."""
    return len(data) >= 12 and data[4:8] == b"ftyp" and data[8:12] in {b"avif", b"avis"}


def process(data: bytes, content_type: str | None, *, max_pixels: int) -> StoredPhoto:
    """The photo as stored, or PhotoRefused with why not."""
    claimed = (content_type or "").split(";")[0].strip().lower()
    expected = ACCEPTED_TYPES.get(claimed)
    if expected is None or _sniff_avif(data):
        raise PhotoRefused(415, f"content type {claimed or '(none)'!r} is not a photo wangge takes: image/jpeg, "
                                "image/png, image/webp or image/heic (仅支持JPEG、PNG、WebP、HEIC图片)")
    if not data:
        raise PhotoRefused(422, "the file is empty (文件为空)")
    with warnings.catch_warnings():
        # Pillow warns (then errors) past its own pixel limit; ours is lower and checked first, but a warning
        # must never pass silently: it is an error here.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=DECODERS)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, RuntimeError):
            raise PhotoRefused(422, "the file is not a JPEG, PNG, WebP or HEIC image: it could not be decoded "
                                    "(文件不是有效的图片)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(max_pixels) from None
        if image.format != expected:
            raise PhotoRefused(415, f"the file is {image.format}, not the {claimed} it was sent as "
                                    "(文件类型与声明不符)")
        width, height = image.size
        if width < 1 or height < 1 or width * height > max_pixels or getattr(image, "n_frames", 1) > 1:
            if getattr(image, "n_frames", 1) > 1:
                raise PhotoRefused(422, "an animated image is not a photo (不支持动图)")
            raise _too_many_pixels(max_pixels, width, height)
        try:
            if image.format == "JPEG":
                # Decode a large JPEG at 1/2, 1/4 or 1/8 of its size straight away (no larger than what is kept):
                # a quarter or less of the memory and time, for the same stored photo.
                image.draft("RGB", (LONGEST_SIDE, LONGEST_SIDE))
            image.load()
            exif = image.getexif()
            taken = _capture_time(exif)
            upright = ImageOps.exif_transpose(image)
            rgb = _srgb(upright)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(max_pixels) from None
        except (OSError, ValueError, SyntaxError, EOFError, RuntimeError):
            raise PhotoRefused(422, "the image is damaged or truncated: it could not be decoded whole "
                                    "(图片已损坏或不完整)") from None
    if max(rgb.size) > LONGEST_SIDE:
        rgb.thumbnail((LONGEST_SIDE, LONGEST_SIDE), Image.Resampling.LANCZOS)
    stored = _jpeg(rgb, QUALITY, taken)
    small = rgb.copy()
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    return StoredPhoto(hashlib.sha256(stored).hexdigest(), stored, _jpeg(small, THUMBNAIL_QUALITY, None),
                       rgb.width, rgb.height, expected)


def _too_many_pixels(max_pixels: int, width: int | None = None, height: int | None = None) -> PhotoRefused:
    size = f" ({width}×{height})" if width is not None else ""
    limit = f"{max_pixels / 1_000_000:g}"
    return PhotoRefused(413, f"the image is too large{size}: at most {limit} megapixels are taken "
                             f"(图片像素过多，最多{limit}百万像素)")


def _capture_time(exif: Image.Exif) -> dict[int, str]:
    """DateTimeOriginal (and its offset), when the photo has them as plain text."""
    kept = {}
    camera = exif.get_ifd(EXIF_IFD)
    for tag in (DATETIME_ORIGINAL, OFFSET_TIME_ORIGINAL):
        value = camera.get(tag)
        if isinstance(value, str) and 0 < len(value) <= 32 and value.isprintable():
            kept[tag] = value
    return kept


def _srgb(image: Image.Image) -> Image.Image:
    """RGB pixels in sRGB: a profile the photo carries is applied, transparency is put on white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.getchannel("A"))
        image = white
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "CMYK", "L"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: the pixels as they are
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int, taken: dict[int, str] | None) -> bytes:
    out = io.BytesIO()
    # Pillow writes what the image's `info` still holds (a JPEG comment, an ICC profile, …) unless told
    # otherwise: a polyglot's <script> in a comment would survive. Only the pixels and `taken` are written.
    image = image.copy()
    image.info = {}
    options: dict = {"format": "JPEG", "quality": quality, "optimize": True, "comment": b"", "icc_profile": None}
    if taken:
        exif = Image.Exif()
        exif.get_ifd(EXIF_IFD).update(taken)
        options["exif"] = exif.tobytes()
    image.save(out, **options)
    return out.getvalue()

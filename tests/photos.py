"""Photos for the tests, made with Pillow: a phone's JPEG with EXIF (GPS, orientation, capture time), PNG, WebP,
a decompression bomb; and what the media store holds."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

ORIENTATION = 0x0112
EXIF_IFD = 0x8769
GPS_IFD = 0x8825
DATETIME_ORIGINAL = 0x9003
MAKE, MODEL = 0x010F, 0x0110
# An iPhone's format: a 320×240 HEIC (blue stripes every 20 px on red), made once with libheif's heif-enc.
HEIC = Path(__file__).parent / "data" / "stripes.heic"


def phone_jpeg(width: int = 400, height: int = 200, colour=(200, 30, 30), orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: landscape pixels with orientation 6 (shown rotated 90° clockwise, so portrait),
    the capture time, the maker and model, and where it was taken (GPS)."""
    image = Image.new("RGB", (width, height), colour)
    image.paste((20, 20, 220), (0, 0, width // 4, height // 4))  # a mark in one corner: where it goes after rotating
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[MAKE], exif[MODEL] = "Apple", "iPhone 15"
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = "2026:12:01 09:12:00"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (34.0, 52.0, 18.6), 3: "E", 4: (117.0, 34.0, 30.6)})
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def png(width: int = 300, height: int = 300, alpha: bool = True) -> bytes:
    image = Image.new("RGBA" if alpha else "RGB", (width, height), (10, 160, 60, 128) if alpha else (10, 160, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def webp(width: int = 320, height: int = 240) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (240, 200, 10)).save(out, "WEBP", quality=80)
    return out.getvalue()


def png_bomb(side: int = 20_000) -> bytes:
    """A few tens of KB that declare side×side pixels (400 megapixels at the default): a decompression bomb."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG", optimize=True)
    return out.getvalue()


def stored_files(folder: Path) -> list[Path]:
    """Every photo file the folder store holds (temporary files included: nothing may be left half-written)."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else []


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image

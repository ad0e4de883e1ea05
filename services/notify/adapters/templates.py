"""Reading the reply templates from services/notify/templates/*.txt.j2 (kind = file name)."""
from __future__ import annotations

from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
SUFFIX = ".txt.j2"


def load_template_sources(folder: Path = TEMPLATES_DIR) -> dict[str, str]:
    """kind → Jinja2 source, e.g. {'acknowledgement': '【{{ signature }}】…'}."""
    return {path.name[: -len(SUFFIX)]: path.read_text(encoding="utf-8") for path in sorted(folder.glob(f"*{SUFFIX}"))}

"""deploy/local/web.sh build (./dev up and every front-door test ask for it) bundles the screens only when web/'s
sources changed since the last build, or web/dist is missing: a stamp of the sources' hashes, as .venv's stamp does
for pyproject.toml. Run on a copy of web/ (its packages linked from the checkout's), so the checkout's dist is not
touched."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from shared.settings import REPO_ROOT

WEB_SH = REPO_ROOT / "deploy" / "local" / "web.sh"


def build(copy: Path) -> str:
    done = subprocess.run([str(copy / "deploy" / "local" / "web.sh"), "build"], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_screens_are_built_again_only_when_their_sources_changed(tmp_path: Path):
    subprocess.run([str(WEB_SH), "install"], check=True, timeout=600, stdin=subprocess.DEVNULL)  # npm ci once
    (tmp_path / "deploy" / "local").mkdir(parents=True)
    shutil.copy2(WEB_SH, tmp_path / "deploy" / "local" / "web.sh")
    web = tmp_path / "web"
    shutil.copytree(REPO_ROOT / "web" / "src", web / "src")
    for name in ("build.mjs", "package.json", "package-lock.json"):
        shutil.copy2(REPO_ROOT / "web" / name, web / name)
    (web / "node_modules").symlink_to(REPO_ROOT / "web" / "node_modules")
    dist = web / "dist"

    assert "built the screens" in build(tmp_path) and (dist / "screen" / "index.html").is_file()
    kept = dist / "kept-by-this-test"  # a build starts from an empty dist: this file says whether one ran
    kept.write_text("")
    assert "up to date" in build(tmp_path) and kept.exists()

    style = web / "src" / "screen" / "style.css"
    style.write_text(style.read_text(encoding="utf-8") + "\n/* changed */\n", encoding="utf-8")
    assert "built the screens" in build(tmp_path) and not kept.exists()
    assert "/* changed */" in (dist / "screen" / "style.css").read_text(encoding="utf-8")

    kept.write_text("")
    (web / "src" / "screen" / "extra.txt").write_text("a file added")  # a new file is a change too
    assert "built the screens" in build(tmp_path) and not kept.exists()

    shutil.rmtree(dist)  # the sources unchanged, but nothing built to serve
    assert "built the screens" in build(tmp_path) and (dist / "screen" / "index.html").is_file()
    assert "up to date" in build(tmp_path)

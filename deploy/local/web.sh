#!/usr/bin/env bash
# The command center's screens (web/): installs their npm packages from the lock file and builds web/dist.
#
#   deploy/local/web.sh install   npm ci (only when web/package-lock.json changed or node_modules is missing)
#   deploy/local/web.sh build     install, then bundle the pages into web/dist (esbuild, well under a second)
#   deploy/local/web.sh where     the folder nginx serves (web/dist)
#
# Needs Node.js and npm (the machine has them; Debian: apt-get install nodejs npm). Everything the pages
# load comes from web/dist: no CDN, no outside map tiles.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WEB=$REPO/web
STAMP=$WEB/node_modules/.wangge-installed

say() { printf 'web: %s\n' "$*"; }
die() { printf 'web: ERROR: %s\n' "$*" >&2; exit 1; }

install() {
  command -v npm >/dev/null || die "npm not found (Debian: apt-get install -y nodejs npm)"
  local want
  want=$(sha256sum "$WEB/package-lock.json" | cut -d' ' -f1)
  if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]]; then
    return 0
  fi
  say "npm ci (web/package-lock.json new or changed)…"
  (cd "$WEB" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in web/ (see above)"
  echo "$want" > "$STAMP"
}

build() {
  install
  (cd "$WEB" && node build.mjs --log-level=warning >/dev/null) || die "building web/dist failed: cd web && node build.mjs"
  say "built the screens into $WEB/dist"
}

case ${1:-} in
  install) install ;;
  build) build ;;
  where) echo "$WEB/dist" ;;
  *) echo "usage: $0 install|build|where" >&2; exit 2 ;;
esac

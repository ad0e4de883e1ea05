#!/usr/bin/env bash
# The command center's screens (web/): installs their npm packages from the lock file and builds web/dist.
#
#   deploy/local/web.sh install   npm ci (only when web/package-lock.json changed or node_modules is missing)
#   deploy/local/web.sh build     install, then bundle the pages into web/dist (esbuild) — only when web/'s sources
#                                 changed since the last build, or web/dist is missing (a stamp of their hashes,
#                                 web/.dist-sources; delete it to force a build)
#   deploy/local/web.sh where     the folder nginx serves (web/dist)
#
# Needs Node.js and npm (the machine has them; Debian: apt-get install nodejs npm). Everything the pages
# load comes from web/dist: no CDN, no outside map tiles.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WEB=$REPO/web
STAMP=$WEB/node_modules/.wangge-installed
# The hash of the sources web/dist was last built from. Beside web/dist, not in it: nginx serves web/dist.
BUILT=$WEB/.dist-sources

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

# One hash of every file the build reads (the pages' sources, the build script, the packages' lock), names
# included: an added, removed or renamed file changes it too.
sources() {
  (cd "$WEB" && find src build.mjs package.json package-lock.json -type f -print0 | LC_ALL=C sort -z \
    | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

# The build takes well under a second alone, but minutes on a machine busy with several instances of everything:
# ./dev up and every front-door test ask for it, so it runs only when the sources changed.
build() {
  install
  local want
  want=$(sources)
  if [[ -d $WEB/dist && -f $BUILT && $(cat "$BUILT") == "$want" ]]; then
    say "the screens in $WEB/dist are up to date (web/ unchanged since their build)"
    return 0
  fi
  rm -f "$BUILT"  # a build that fails or is interrupted leaves no stamp: the next one builds again
  (cd "$WEB" && node build.mjs --log-level=warning >/dev/null) || die "building web/dist failed: cd web && node build.mjs"
  # The hash taken before the build: a source changed during it makes the next one build again.
  echo "$want" > "$BUILT"
  say "built the screens into $WEB/dist"
}

case ${1:-} in
  install) install ;;
  build) build ;;
  where) echo "$WEB/dist" ;;
  *) echo "usage: $0 install|build|where" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The real browser the page tests drive: Chromium and its WebDriver from Debian's packages, and a font with
# Chinese glyphs so that screenshots show the screens as a person sees them.
#
#   deploy/local/browser.sh install   apt-get install chromium chromium-driver fonts-wqy-zenhei if missing
#   deploy/local/browser.sh status    the versions, one line
set -euo pipefail

say() { printf 'browser: %s\n' "$*"; }
die() { printf 'browser: ERROR: %s\n' "$*" >&2; exit 1; }

APT=(apt-get -o DPkg::Lock::Timeout=600)

missing() {
  local m=()
  command -v chromium >/dev/null || m+=(chromium)
  command -v chromedriver >/dev/null || m+=(chromium-driver)
  # A font with Chinese glyphs: any of Debian's CJK font packages will do.
  # (captured first: under pipefail, dpkg-query's "not found" for the others would fail the pipe)
  local fonts
  fonts=$(dpkg-query -W -f='${Status}\n' fonts-wqy-zenhei fonts-noto-cjk fonts-wqy-microhei 2>/dev/null || true)
  [[ $fonts == *"install ok installed"* ]] || m+=(fonts-wqy-zenhei)
  echo "${m[@]}"
}

install() {
  local need
  need=$(missing)
  [[ -z $need ]] && return 0
  [[ $EUID -eq 0 ]] || die "missing: $need; run: sudo apt-get install -y $need"
  say "installing $need from Debian's packages (first run only, a minute or two)…"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086  # a list of package names
  "${APT[@]}" install -y -qq $need >/dev/null 2>&1 \
    || { "${APT[@]}" update -qq && "${APT[@]}" install -y -qq $need >/dev/null; } \
    || die "apt-get install $need failed"
  need=$(missing)
  [[ -z $need ]] || die "still missing after apt-get install: $need"
}

status() {
  if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "browser: $(chromium --version 2>/dev/null | head -1), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
  else
    echo "browser: not installed (deploy/local/browser.sh install)"
  fi
}

case ${1:-} in
  install) install ;;
  status) status ;;
  *) echo "usage: $0 install|status" >&2; exit 2 ;;
esac

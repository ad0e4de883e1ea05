#!/usr/bin/env bash
# What supervision needs to print the Monday report (周例会) as PDF: WeasyPrint's system libraries
# (pango, harfbuzz, fontconfig) and Chinese fonts, from Debian's packages. WeasyPrint itself is a
# pinned Python dependency (pyproject.toml), installed with the rest into .venv.
#
#   deploy/local/pdf.sh install   apt-get install the packages below when any is missing (root)
#   deploy/local/pdf.sh status    whether the libraries and a Chinese font are there
#   deploy/local/pdf.sh --help    this text
#
# Without a CJK font the PDF would show boxes instead of 社区 names: install refuses to finish quietly
# in that case.
set -euo pipefail

APT=(apt-get -o DPkg::Lock::Timeout=600)
PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libfontconfig1 fontconfig fonts-wqy-zenhei)

say() { printf 'pdf: %s\n' "$*"; }
die() { printf 'pdf: ERROR: %s\n' "$*" >&2; exit 1; }

missing() {
  local p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

has_cjk_font() {
  # (not `fc-list | grep -q .`: under pipefail, grep leaving early can fail the pipe with SIGPIPE)
  [[ -n $(fc-list :lang=zh family 2>/dev/null || true) ]]
}

install() {
  local need
  need=$(missing | tr '\n' ' ')
  if [[ -n ${need// /} ]]; then
    [[ $EUID -eq 0 ]] || die "missing Debian packages: $need— run: sudo apt-get install -y $need"
    command -v apt-get >/dev/null || die "no apt-get: install $need by hand"
    say "installing $need(Debian's packages, first run only)…"
    export DEBIAN_FRONTEND=noninteractive
    # The lock timeout: another install step (browser.sh, nginx.sh) may hold dpkg's lock for a while.
    "${APT[@]}" install -y -qq "${PACKAGES[@]}" >/dev/null 2>&1 \
      || { "${APT[@]}" update -qq >/dev/null && "${APT[@]}" install -y -qq "${PACKAGES[@]}" >/dev/null; } \
      || die "apt-get install ${PACKAGES[*]} failed"
    fc-cache -f >/dev/null 2>&1 || true
  fi
  has_cjk_font || die "no Chinese font known to fontconfig (fc-list :lang=zh is empty)"
}

status() {
  local need
  need=$(missing | tr '\n' ' ')
  if [[ -n ${need// /} ]]; then
    say "missing: $need(deploy/local/pdf.sh install)"
    return 1
  fi
  has_cjk_font || { say "no Chinese font (fc-list :lang=zh)"; return 1; }
  say "ready: pango and $(fc-list :lang=zh family | head -1)"
}

case ${1:-} in
  install) install ;;
  status) status ;;
  -h|--help|help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: $0 install|status|--help" >&2; exit 2 ;;
esac

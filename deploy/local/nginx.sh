#!/usr/bin/env bash
# The front door: nginx from Debian's packages on 127.0.0.1:8100, one origin for the browser. It serves the
# screens (web/dist: / the work screen, /screen the big screen) and routes /api/v1/… to the owning service.
#
#   deploy/local/nginx.sh install          apt-get install nginx if missing (its own service is not started)
#   deploy/local/nginx.sh start            render the config into $WANGGE_STATE_DIR/nginx, start, wait
#   deploy/local/nginx.sh stop             graceful stop
#   deploy/local/nginx.sh status           one line
#   deploy/local/nginx.sh render DIR       only write DIR/nginx.conf (the tests run their own nginx from it)
#
# Environment: WANGGE_FRONT_PORT (8100), WANGGE_INTAKE_PORT (8101), WANGGE_ROUTING_PORT (8102),
# WANGGE_SUPERVISION_PORT (8103), WANGGE_NOTIFY_PORT (8104), WANGGE_LIVE_PORT (8105), WANGGE_INSTANCES (1: each
# upstream lists instance i on its port + 1000·(i-1), as ./dev starts them) or WANGGE_<NAME>_PORTS (a comma list
# of one process's instances), WANGGE_WEB_ROOT (web/dist), WANGGE_STATE_DIR (<repo>/.local),
# WANGGE_SMS_GATEWAY_ADDRESSES (the only addresses /api/v1/sms/ is routed from; empty: none).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=deploy/local/proc-lib.sh
source "$HERE/proc-lib.sh"
STATE=${WANGGE_STATE_DIR:-$REPO/.local}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)
PREFIX=$STATE/nginx
FRONT_PORT=${WANGGE_FRONT_PORT:-8100}

say() { printf 'nginx: %s\n' "$*"; }
# shellcheck source=deploy/local/instances.sh
source "$HERE/instances.sh"
die() { printf 'nginx: ERROR: %s\n' "$*" >&2; exit 1; }

nginx_bin() { command -v nginx || { [[ -x /usr/sbin/nginx ]] && echo /usr/sbin/nginx; }; }

install() {
  nginx_bin >/dev/null && return 0
  [[ $EUID -eq 0 ]] || die "nginx is not installed; run: sudo apt-get install -y nginx"
  say "installing nginx from Debian's packages (first run only)…"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's package starts its own nginx on port 80 when it can; a policy-rc.d that says no keeps it from
  # doing so (we run our own, on our own port). Removed again if we put it there.
  local policy=/usr/sbin/policy-rc.d ours=""
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; ours=1; fi
  { apt-get -o DPkg::Lock::Timeout=600 install -y -qq nginx-light >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=600 install -y -qq nginx >/dev/null 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -qq && apt-get -o DPkg::Lock::Timeout=600 install -y -qq nginx >/dev/null; }; } || { [[ -n $ours ]] && rm -f "$policy"; die "apt-get install nginx failed"; }
  [[ -n $ours ]] && rm -f "$policy"
  nginx_bin >/dev/null || die "nginx installed but not found on PATH or in /usr/sbin"
}

# The SMS callback's allow-list: `allow <network>;` for each entry of WANGGE_SMS_GATEWAY_ADDRESSES (the list notify
# checks: shared/settings.py trusted_networks, parsed the same way), nothing when it is empty (the template's
# `deny all` then refuses everyone). A bad entry stops the render, named.
sms_gateway_allow() {
  python3 - "${WANGGE_SMS_GATEWAY_ADDRESSES:-}" <<'PY' || die "WANGGE_SMS_GATEWAY_ADDRESSES: see above"
import ipaddress, sys
print("# WANGGE_SMS_GATEWAY_ADDRESSES, rendered by deploy/local/nginx.sh (empty: the callback is routed from nowhere)")
for part in (p.strip() for p in sys.argv[1].split(",")):
    if not part:
        continue
    try:
        network = ipaddress.ip_network(part, strict=False)
    except ValueError:
        sys.exit(f"nginx: ERROR: WANGGE_SMS_GATEWAY_ADDRESSES: not an address or network: {part!r}")
    print(f"allow {network};")
PY
}

# upstream_servers NAME DEFAULT: one `server` line per instance of NAME. An instance that refuses a connection or
# fails a request is left out for 5 s (max_fails 1, fail_timeout 5s) and its requests go to the others (the
# template's proxy_next_upstream says which may be).
upstream_servers() {
  local ports port out=""
  ports=$(instance_ports "$1" "$2") || die "see above"
  [[ $ports == off ]] && ports=$2   # (WANGGE_LIVE_PORT=off is Prometheus's switch; the door keeps the default)
  local IFS=,
  for port in $ports; do out+="server 127.0.0.1:$port max_fails=1 fail_timeout=5s; "; done
  echo "${out% }"
}

# render DIR: DIR/nginx.conf (+ static-headers.conf, sms-gateway.conf, logs/, tmp/) for these ports.
render() {
  local dir=$1 web_root user_directive=""
  web_root=${WANGGE_WEB_ROOT:-$REPO/web/dist}
  mkdir -p "$dir/logs" "$dir/tmp"
  # As root, nginx's workers run as an unprivileged user: they need only read web/dist and write tmp/.
  if [[ $EUID -eq 0 ]]; then
    local u=www-data; id -u "$u" >/dev/null 2>&1 || u=nobody
    user_directive="user $u;"
    chown "$u" "$dir/tmp"
  fi
  cp "$REPO/deploy/nginx/static-headers.conf" "$dir/static-headers.conf"
  sms_gateway_allow > "$dir/sms-gateway.conf"
  local intake routing supervision notify live
  intake=$(upstream_servers intake 8101)
  routing=$(upstream_servers routing 8102)
  supervision=$(upstream_servers supervision 8103)
  notify=$(upstream_servers notify 8104)
  live=$(upstream_servers live 8105)
  sed -e "s|@PREFIX@|$dir|g" -e "s|@WEB_ROOT@|$web_root|g" -e "s|@USER_DIRECTIVE@|$user_directive|" \
      -e "s|@FRONT_PORT@|${WANGGE_FRONT_PORT:-8100}|g" \
      -e "s|@INTAKE_SERVERS@|$intake|" -e "s|@ROUTING_SERVERS@|$routing|" \
      -e "s|@SUPERVISION_SERVERS@|$supervision|" -e "s|@NOTIFY_SERVERS@|$notify|" -e "s|@LIVE_SERVERS@|$live|" \
      "$REPO/deploy/nginx/nginx.conf.tmpl" > "$dir/nginx.conf"
  "$(nginx_bin)" -t -q -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
    || die "the rendered config $dir/nginx.conf does not pass nginx -t"
}

running_pid() { alive "$PREFIX/nginx.pid" "nginx: master process"; }

answers() {
  python3 - "$FRONT_PORT" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

start() {
  install
  "$REPO/deploy/local/web.sh" build   # when web/ changed since the last build: the pages served are the checkout's
  local pid
  if pid=$(running_pid); then
    render "$PREFIX"
    "$(nginx_bin)" -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -s reload
    say "running (pid $pid) on http://127.0.0.1:$FRONT_PORT, config reloaded"
    return 0
  fi
  render "$PREFIX"
  "$(nginx_bin)" -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" \
    || die "nginx did not start (is port $FRONT_PORT taken? log: $PREFIX/logs/error.log)"
  local i
  for i in $(seq 1 50); do answers && break; sleep 0.1; done
  answers || die "nginx started but http://127.0.0.1:$FRONT_PORT/healthz does not answer (log: $PREFIX/logs/error.log)"
  say "front door on http://127.0.0.1:$FRONT_PORT (work screen /, big screen /screen)"
}

stop() {
  local pid
  pid=$(running_pid) || return 0
  # Its own graceful stop (the workers finish their requests); 5 s before pulling the plug.
  "$(nginx_bin)" -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/logs/error.log" -s quit 2>/dev/null || kill -TERM "$pid"
  await_or_kill 5 "$pid" >/dev/null
  say "stopped"
}

status() {
  local pid
  if pid=$(running_pid); then echo "nginx: running (pid $pid) on http://127.0.0.1:$FRONT_PORT"; else echo "nginx: stopped"; fi
}

case ${1:-} in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  render) [[ -n ${2:-} ]] || die "usage: $0 render DIR"; install; render "$2" ;;
  *) echo "usage: $0 install|start|stop|status|render DIR" >&2; exit 2 ;;
esac

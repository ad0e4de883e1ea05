# Sourced by nginx.sh and prometheus.sh: where every instance of a process listens, by ./dev's rule for
# WANGGE_INSTANCES=N (instance i on its process's port + 1000·(i-1)), so that the front door and Prometheus reach
# every instance ./dev starts. WANGGE_<NAME>_PORTS (a comma list) names them instead (the tests' free ports).

# instance_ports NAME DEFAULT: the ports of NAME's instances as a comma list ("off" when WANGGE_<NAME>_PORT is off);
# fails, saying why, on anything but port numbers.
instance_ports() {
  local name=$1 default=$2 list port count i out="" var
  var="WANGGE_${name^^}_PORTS"
  list=${!var:-}
  if [[ -z $list ]]; then
    var="WANGGE_${name^^}_PORT"
    port=${!var:-$default}
    [[ $port == off ]] && { echo off; return 0; }
    [[ $port =~ ^[0-9]+$ ]] || { echo "$var: port '$port' is not a number (or off)" >&2; return 1; }
    count=${WANGGE_INSTANCES:-1}
    [[ $count =~ ^[1-9]$ ]] || { echo "WANGGE_INSTANCES must be 1…9, not '$count'" >&2; return 1; }
    for (( i = 1; i <= count; i++ )); do out+="${out:+,}$((port + 1000 * (i - 1)))"; done
    list=$out
  fi
  local IFS=,
  for port in $list; do
    [[ $port =~ ^[0-9]+$ ]] || { echo "WANGGE_${name^^}_PORTS: port '$port' is not a number" >&2; return 1; }
  done
  echo "$list"
}

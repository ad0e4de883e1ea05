# Sourced by postgres.sh and patroni.sh: what both need to find Debian's PostgreSQL server.

# Newest installed server, e.g. /usr/lib/postgresql/15/bin.
newest_bindir() {
  local d best="" bestv=0 v
  for d in /usr/lib/postgresql/*/bin; do
    [[ -x $d/postgres ]] || continue
    v=$(basename "$(dirname "$d")")
    [[ $v =~ ^[0-9]+$ ]] || continue
    if (( v > bestv )); then bestv=$v; best=$d; fi
  done
  [[ -n $best ]] && echo "$best"
}

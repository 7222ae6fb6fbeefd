#!/usr/bin/env bash
# Start/stop Debian's opentracker for the BitTorrent baseline.
#
#   opentracker.sh start --listen IP:PORT --whitelist HASHFILE --dir D [--pidfile F]
#   opentracker.sh stop  --dir D [--pidfile F]
#
# Run it inside the namespace that should host the tracker, e.g.
#   ip netns exec edge0 bench/testbed/bt/opentracker.sh start --listen 10.0.0.2:6969 \
#       --whitelist /tmp/bt/hashes.txt --dir /tmp/bt/tracker
#
# Debian's build is whitelist-only (WANT_ACCESSLIST_WHITE): every info-hash to be
# served must be listed, one 40-hex-digit hash per line (lower or upper case).
# opentracker chroots into -d (as root) and then reads the whitelist *inside* the
# chroot, so the whitelist is copied into D and passed by its name relative to D.
# It also drops privileges to "nobody", so D and the copy must be readable by it.
# The tracker does not fork: the PID written to the pidfile is opentracker's own.
# "start" returns once the TCP port is listening (bounded: 5 s), else fails.
set -euo pipefail

usage() { sed -n '2,6p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
cmd=$1; shift
listen="" whitelist="" dir="" pidfile=""
while [ $# -gt 0 ]; do
  case $1 in
    --listen) listen=$2; shift 2;;
    --whitelist) whitelist=$2; shift 2;;
    --dir) dir=$2; shift 2;;
    --pidfile) pidfile=$2; shift 2;;
    *) usage;;
  esac
done
[ -n "$dir" ] || usage
pidfile=${pidfile:-$dir/opentracker.pid}

case $cmd in
start)
  [ -n "$listen" ] && [ -n "$whitelist" ] || usage
  ip=${listen%:*}; port=${listen##*:}
  mkdir -p "$dir"
  chmod 755 "$dir"
  # Normalise: keep only lines that are exactly a 40-hex info-hash (v1).
  { grep -Eo '^[[:space:]]*[0-9A-Fa-f]{40}([[:space:]]|$)' "$whitelist" || true; } \
    | tr -d '[:blank:]' | tr 'A-F' 'a-f' > "$dir/whitelist.txt"
  chmod 644 "$dir/whitelist.txt"
  if [ ! -s "$dir/whitelist.txt" ]; then
    echo "opentracker.sh: no 40-hex info-hash in $whitelist" >&2; exit 1
  fi
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    echo "opentracker.sh: already running (pid $(cat "$pidfile"))" >&2; exit 1
  fi
  # -i must precede -p: the port binds to the last -i given. TCP (HTTP) only.
  opentracker -i "$ip" -p "$port" -d "$dir" -w whitelist.txt \
    >"$dir/opentracker.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" > "$pidfile"
  for _ in $(seq 1 50); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "opentracker.sh: opentracker exited; log:" >&2; cat "$dir/opentracker.log" >&2
      rm -f "$pidfile"; exit 1
    fi
    if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
      echo "$pid"; exit 0
    fi
    sleep 0.1
  done
  echo "opentracker.sh: port $port not listening after 5 s" >&2
  kill "$pid" 2>/dev/null || true; rm -f "$pidfile"; exit 1
  ;;
stop)
  [ -f "$pidfile" ] || exit 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  ;;
*) usage;;
esac

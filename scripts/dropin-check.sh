#!/usr/bin/env bash
# The edge as a drop-in reverse-proxy cache in front of an origin: a 64 MiB
# file fetched through it with curl (cold, then a hit), with a Range, and
# with aria2 over 8 ranged connections; every body's SHA-256 must be the
# origin's. Loopback only; everything it starts is stopped on exit.
#
#   scripts/dropin-check.sh [--size 64MiB]
#
# Installs curl and aria2 from Debian when missing (needs root for that).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SIZE=64MiB
while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE=$2; shift ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
need=()
command -v curl >/dev/null || need+=(curl)
command -v aria2c >/dev/null || need+=(aria2)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
WORK=$(mktemp -d /tmp/dropin.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

(cd "$ROOT" && go build -o "$WORK/edgeswarm" ./cmd/edgeswarm)
mkdir -p "$WORK/www"
bytes=$(python3 -c "
import re,sys
m=re.fullmatch(r'(\d+)(KiB|MiB|GiB)?','$SIZE'); n=int(m.group(1)); u=m.group(2)
print(n*{None:1,'KiB':1<<10,'MiB':1<<20,'GiB':1<<30}[u])")
head -c "$bytes" /dev/urandom >"$WORK/www/file.bin"
want=$(sha256sum "$WORK/www/file.bin" | cut -d' ' -f1)
OP=$(free_port) EP=$(free_port)
"$WORK/edgeswarm" origin --dir "$WORK/www" --listen "127.0.0.1:$OP" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
"$WORK/edgeswarm" edge --origin "http://127.0.0.1:$OP" --listen "127.0.0.1:$EP" --cache-dir "$WORK/cache" --log-level warn >"$WORK/edge.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$EP/healthz" >/dev/null && break; sleep 0.1; done

fail=0
check() { # NAME FILE
  local got; got=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then echo "ok   $1"; else echo "FAIL $1: sha256 $got, want $want"; fail=1; fi
}
URL="http://127.0.0.1:$EP/file.bin"
curl -sf -D "$WORK/h1" -o "$WORK/c1" "$URL"; check "curl, cold ($(grep -i '^x-cache' "$WORK/h1" | tr -d '\r'))" "$WORK/c1"
curl -sf -D "$WORK/h2" -o "$WORK/c2" "$URL"; check "curl, again ($(grep -i '^x-cache' "$WORK/h2" | tr -d '\r'))" "$WORK/c2"
grep -qi '^x-cache: HIT' "$WORK/h2" || { echo "FAIL second curl was not a hit"; fail=1; }
curl -sf -r 1000-1999 -o "$WORK/r" "$URL"
if cmp -s "$WORK/r" <(tail -c +1001 "$WORK/www/file.bin" | head -c 1000); then echo "ok   curl -r 1000-1999"; else echo "FAIL range"; fail=1; fi
aria2c -q -x8 -s8 -k1M --allow-overwrite=true --auto-file-renaming=false -d "$WORK" -o a.bin "$URL"
check "aria2c -x8 -s8 (8 ranged connections)" "$WORK/a.bin"
rm -rf "$WORK/cache2"
# A cold object fetched by aria2 first: its ranged requests collapse onto one fill.
head -c "$bytes" /dev/urandom >"$WORK/www/cold.bin"; want=$(sha256sum "$WORK/www/cold.bin" | cut -d' ' -f1)
aria2c -q -x8 -s8 -k1M --allow-overwrite=true --auto-file-renaming=false -d "$WORK" -o cold.bin "http://127.0.0.1:$EP/cold.bin"
check "aria2c -x8 -s8 on a cold object" "$WORK/cold.bin"
fetches=$(curl -sf "http://127.0.0.1:$EP/metrics" | awk '/^edgeswarm_edge_origin_fetches_total/ {print $2}')
echo "origin fetches: $fetches (2 objects; ranged requests for a cold object are filled in 4 MiB slices)"
exit $fail

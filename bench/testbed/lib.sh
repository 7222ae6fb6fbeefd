# shellcheck shell=bash
# The netns testbed's building blocks, sourced by run.sh and systems/*.sh.
#
# Every namespace is named esb-<RUN_ID>-<role>; every process is started
# directly (so $! is its PID) and recorded with its start time in
# $STATE_DIR/pids; cleanup kills exactly those PIDs (and whatever runs inside
# the run's own namespaces), then deletes the namespaces and the work dir.

ESB_STATE_ROOT=${ESB_STATE_ROOT:-/run/esb-testbed}
ESB_WORK_ROOT=${ESB_WORK_ROOT:-$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp )}

log() { printf '[testbed %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

now_ns() { date +%s%N; }

# pid_starttime PID: field 22 of /proc/PID/stat (empty if gone).
pid_starttime() {
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  s=${s##*) }
  # after "comm) " the fields start at field 3; starttime is field 22
  set -- $s
  echo "${20}"
}

# pid_alive PID [STARTTIME]: running (not a zombie) and, if given, the same process.
pid_alive() {
  local s state
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $1 $s
  state=$2
  [ "$state" != Z ] && [ "$state" != X ] || return 1
  return 0
}

pid_matches() { # PID STARTTIME
  [ -n "$2" ] && [ "$(pid_starttime "$1")" = "$2" ] && pid_alive "$1"
}

record_pid() { # PID DESC
  echo "$1 $(pid_starttime "$1") $2" >>"$STATE_DIR/pids"
}

# stop_pids PID...: SIGTERM, up to 5 s grace, then SIGKILL; reaps our children.
stop_pids() {
  local p deadline left
  [ $# -gt 0 ] || return 0
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  deadline=$(( $(date +%s) + 5 ))
  while :; do
    left=0
    for p in "$@"; do pid_alive "$p" && left=1; done
    [ $left = 0 ] && break
    [ "$(date +%s)" -ge $deadline ] && break
    sleep 0.1
  done
  for p in "$@"; do
    if pid_alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# cleanup_state DIR: everything one run left behind.
cleanup_state() {
  local dir=$1 id pid st desc ns pids work
  id=$(basename "$dir")
  if [ -f "$dir/pids" ]; then
    local live=()
    while read -r pid st desc; do
      [ -n "$pid" ] || continue
      if pid_matches "$pid" "$st"; then live+=("$pid"); fi
    done <"$dir/pids"
    if [ ${#live[@]} -gt 0 ]; then
      for pid in "${live[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
      sleep 0.5
      for pid in "${live[@]}"; do pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
      for pid in "${live[@]}"; do wait "$pid" 2>/dev/null || true; done
    fi
  fi
  cleanup_netns_of "$id"
  if [ -f "$dir/work" ]; then
    work=$(cat "$dir/work")
    case "$work" in */esb-"$id") rm -rf -- "$work" ;; esac
  fi
  rm -rf -- "$dir"
}

# cleanup_netns_of ID: kill what runs inside esb-ID-* namespaces, delete them.
cleanup_netns_of() {
  local id=$1 ns pids p
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^esb-$id-" || true); do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    fi
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^esb-$id-" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
}

# owner_alive DIR: the run.sh that owns the state dir is still running.
owner_alive() {
  local pid st
  [ -f "$1/owner" ] || return 1
  read -r pid st <"$1/owner" || return 1
  pid_matches "$pid" "$st"
}

# cleanup_stale [--force]: leftovers of earlier runs whose run.sh is gone
# (with --force also live ones), and esb-* namespaces that belong to no live run.
cleanup_stale() {
  local force=${1:-} dir ns id
  mkdir -p "$ESB_STATE_ROOT"
  for dir in "$ESB_STATE_ROOT"/*/; do
    [ -d "$dir" ] || continue
    dir=${dir%/}
    [ "$(basename "$dir")" != "${RUN_ID:-}" ] || continue
    if [ "$force" != --force ] && owner_alive "$dir"; then
      log "cleanup: run $(basename "$dir") is still running (pid $(cut -d' ' -f1 "$dir/owner")); left alone"
      continue
    fi
    log "cleanup: removing leftovers of run $(basename "$dir")"
    cleanup_state "$dir"
  done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^esb-' || true); do
    id=${ns#esb-}; id=${id%%-*}
    [ "$id" != "${RUN_ID:-}" ] || continue
    if [ -d "$ESB_STATE_ROOT/$id" ] && [ "$force" != --force ] && owner_alive "$ESB_STATE_ROOT/$id"; then
      continue
    fi
    log "cleanup: removing namespace $ns"
    cleanup_netns_of "$id"
  done
}

# ---------------------------------------------------------------- topology

ns_name() { echo "esb-$RUN_ID-$1"; }
NSX() { local n; n=$(ns_name "$1"); shift; ip netns exec "$n" "$@"; }

ns_add() { # ROLE [router]
  local n; n=$(ns_name "$1")
  ip netns add "$n"
  echo "$n" >>"$STATE_DIR/netns"
  ip -n "$n" link set lo up
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 2>/dev/null || true
  if [ "${2:-}" = router ]; then
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
  fi
  [ -z "${TCP_CC:-}" ] || ip netns exec "$n" sysctl -qw net.ipv4.tcp_congestion_control="$TCP_CC"
  [ -z "${TSO_SEGS:-}" ] || ip netns exec "$n" sysctl -qw net.ipv4.tcp_min_tso_segs="$TSO_SEGS"
}

# link ROLE_A IF_A ADDR_A/30 ROLE_B IF_B ADDR_B/30: a veth pair between two namespaces.
link() {
  local a b
  a=$(ns_name "$1"); b=$(ns_name "$4")
  ip link add "$2" netns "$a" type veth peer name "$5" netns "$b"
  ip -n "$a" addr add "$3" dev "$2"
  ip -n "$b" addr add "$6" dev "$5"
  ip -n "$a" link set "$2" mtu "$MTU" up
  ip -n "$b" link set "$5" mtu "$MTU" up
}

# Addresses (all inside 10.77.0.0/16, only inside the run's namespaces).
CORE_ORG=10.77.0.1;  ORIGIN_IP=10.77.0.2
CORE_EDG=10.77.0.5;  EDGE_IP=10.77.0.6
ISPA_NET=10.77.16.0/20
ISPB_NET=10.77.32.0/20

peer_isp() { if [ $(($1 % 2)) = 0 ]; then echo a; else echo b; fi; }
# peer_addr K router|peer: the /30 of peer K's access link, in its ISP's block.
peer_addr() {
  local k=$1 j base off third fourth
  j=$((k / 2))
  if [ "$(peer_isp "$k")" = a ]; then base=16; else base=32; fi
  off=$((4 * j))
  third=$((base + off / 256)); fourth=$((off % 256))
  if [ "$2" = router ]; then echo "10.77.$third.$((fourth + 1))"; else echo "10.77.$third.$((fourth + 2))"; fi
}
peer_ip() { peer_addr "$1" peer; }
peer_if() { echo "p$1"; } # the router's interface toward peer K

# Managed caches (--managed): cache J in ISP J mod 2, on a /30 at the top of
# its ISP's block, above the peers' /30s (at most 1000 per ISP).
cache_isp() { if [ $(($1 % 2)) = 0 ]; then echo a; else echo b; fi; }
cache_addr() { # J router|cache
  local j=$1 base off
  if [ "$(cache_isp "$j")" = a ]; then base=16; else base=32; fi
  off=$((4096 - 4 * (j / 2 + 1)))
  if [ "$2" = router ]; then echo "10.77.$((base + off / 256)).$((off % 256 + 1))"; else echo "10.77.$((base + off / 256)).$((off % 256 + 2))"; fi
}
cache_ip() { cache_addr "$1" cache; }
cache_if() { echo "m$1"; } # the router's interface toward cache J

# tbf NS DEV MBIT: shape DEV's egress. burst: max(16 KiB, 2 ms at the rate,
# 2 MTU); queue: QUEUE_MS of the rate (tbf latency).
tbf() {
  local ns=$1 dev=$2 mbit=$3 burst
  burst=$(awk -v r="$mbit" -v m="$MTU" -v t="${TSO_SEGS:-2}" 'BEGIN { b = r * 1e6 / 8 * 0.002; if (b < 16384) b = 16384
    g = (t > 2 ? t : 2) * (m + 14); if (g > 65536 + 14) g = 65536 + 14; if (b < g + m) b = g + m; printf "%d", b }')
  ip netns exec "$(ns_name "$ns")" tc qdisc replace dev "$dev" root tbf rate "${mbit}mbit" burst "$burst" latency "${QUEUE_MS}ms"
}

ipt() { local ns=$1; shift; ip netns exec "$(ns_name "$ns")" iptables -w 5 "$@"; }

# topo_up: one router namespace (core) with a routed point-to-point veth to
# the origin, the edge and every peer. Peers are split between two ISP
# address blocks; the router counts the bytes between the blocks. (Separate
# ISP router namespaces would add two forwarding hops and a delay-line pass to
# most packets and cost CPU that the 2-core machine does not have; they
# change nothing the applications can see, as the core is not a bottleneck.)
topo_up() {
  local k ra pa
  log "topology: core router, origin, edge and $PEERS peers (run $RUN_ID)"
  ns_add core router
  ns_add origin; ns_add edge
  link core org $CORE_ORG/30 origin eth0 $ORIGIN_IP/30
  link core edg $CORE_EDG/30 edge eth0 $EDGE_IP/30
  ip -n "$(ns_name origin)" route add default via $CORE_ORG
  ip -n "$(ns_name edge)" route add default via $CORE_EDG
  for ((k = 0; k < PEERS; k++)); do
    ra=$(peer_addr $k router); pa=$(peer_addr $k peer)
    ns_add "p$k"
    link core "$(peer_if $k)" "$ra/30" "p$k" eth0 "$pa/30"
    ip -n "$(ns_name "p$k")" route add default via "$ra"
  done
  for ((k = 0; k < ${MANAGED:-0}; k++)); do
    ra=$(cache_addr $k router); pa=$(cache_addr $k cache)
    ns_add "m$k"
    link core "$(cache_if $k)" "$ra/30" "m$k" eth0 "$pa/30"
    ip -n "$(ns_name "m$k")" route add default via "$ra"
  done

  # Shaping: peer upload on the peer's egress, peer download on the router's
  # egress toward the peer, edge upload on the edge's egress. Origin unshaped.
  tbf edge eth0 "$EDGE_UP"
  for ((k = 0; k < PEERS; k++)); do
    tbf "p$k" eth0 "$PEER_UP"
    tbf core "$(peer_if $k)" "$PEER_DOWN"
  done
  # Managed caches: --managed-up both ways.
  for ((k = 0; k < ${MANAGED:-0}; k++)); do
    tbf "m$k" eth0 "$MANAGED_UP"
    tbf core "$(cache_if $k)" "$MANAGED_UP"
  done

  # Counters (non-terminating rules first), then the delay line's queues.
  ipt core -A FORWARD -s $ISPA_NET -d $ISPB_NET -m comment --comment esb-cross
  ipt core -A FORWARD -s $ISPB_NET -d $ISPA_NET -m comment --comment esb-cross
  ipt core -A FORWARD -s $ISPA_NET -d $ISPA_NET -m comment --comment esb-same
  ipt core -A FORWARD -s $ISPB_NET -d $ISPB_NET -m comment --comment esb-same
  ipt core -A FORWARD -i edg -m comment --comment esb-edge-up
  ipt core -A FORWARD -i 'p+' -m comment --comment esb-peer-up
  ipt core -A FORWARD -i 'm+' -m comment --comment esb-cache-up
  # Latency: every packet forwarded onto the edge's, a peer's or a managed
  # cache's access link
  # waits RTT/2 in the delay line, once; so every path between two of them
  # (peer-edge, peer-peer on one ISP or across) has RTT 4d = the set RTT
  # (d per access link and direction). Edge-origin: RTT/2.
  DELAYLINE_PIDS=()
  if [ "$DELAY_US" -gt 0 ]; then
    local nq q qargs=()
    nq=$(nproc); [ "$nq" -ge 1 ] || nq=1; [ "$nq" -le 4 ] || nq=4
    for ((q = 0; q < nq; q++)); do qargs+=(--queue "$q=$((2 * DELAY_US))us"); done
    local target=(-j NFQUEUE --queue-num 0 --queue-bypass)
    [ "$nq" -gt 1 ] && target=(-j NFQUEUE --queue-balance "0:$((nq - 1))" --queue-bypass)
    ipt core -A FORWARD -o edg "${target[@]}"
    ipt core -A FORWARD -o 'p+' "${target[@]}"
    ipt core -A FORWARD -o 'm+' "${target[@]}"
    # Above the applications' priority (SCHED_FIFO if allowed): the emulated
    # network keeps its timing when the machine is busy; the kernel's
    # forwarding of a released packet runs in the delay line's verdict call,
    # so it gets that priority too. Lateness is reported per run.
    case "${ESB_DELAYLINE_SCHED:-rt}" in
      rt) DELAYLINE_SCHED=(chrt -f 20); chrt -f 20 true 2>/dev/null || DELAYLINE_SCHED=(nice -n -10) ;;
      nice) DELAYLINE_SCHED=(nice -n -10) ;;
      *) DELAYLINE_SCHED=(nice -n 0) ;;
    esac
    ip netns exec "$(ns_name core)" "${DELAYLINE_SCHED[@]}" "$BIN/delayline" "${qargs[@]}" \
      --stats "$STATE_DIR/delayline-core.stats" --ready "$STATE_DIR/delayline-core.ready" \
      </dev/null >/dev/null 2>"$LOG_DIR/delayline-core.log" &
    DELAYLINE_PIDS+=($!)
    record_pid $! "delayline-core"
    wait_for 5 test -f "$STATE_DIR/delayline-core.ready" || die "delay line did not start: $(cat "$LOG_DIR/delayline-core.log")"
  fi
}

# delayline_snapshot FILE: the delay lines' current stats, one JSON line each.
delayline_snapshot() {
  local r
  : >"$1"
  for r in core; do
    [ -f "$STATE_DIR/delayline-$r.stats" ] && cat "$STATE_DIR/delayline-$r.stats" >>"$1"
  done
  return 0
}

# wait_for SECONDS CMD...: poll CMD every 0.1 s.
wait_for() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s%N)" -ge $deadline ] && return 1
    sleep 0.1
  done
}

# zero_counters / read_counters FILE: the iptables byte counters as JSON.
zero_counters() {
  ipt core -Z FORWARD
}
sum_counter() { # ROLE COMMENT
  ipt "$1" -nvxL FORWARD | awk -v c="/* $2 */" 'index($0, c) { s += $2 } END { printf "%d", s }'
}
read_counters() {
  local cross same edge peer cache
  cross=$(sum_counter core esb-cross)
  same=$(sum_counter core esb-same)
  edge=$(sum_counter core esb-edge-up)
  peer=$(sum_counter core esb-peer-up)
  cache=$(sum_counter core esb-cache-up)
  printf '{"cross_isp_bytes":%d,"same_isp_bytes":%d,"edge_wire_bytes":%d,"peer_wire_up_bytes":%d,"cache_wire_up_bytes":%d}\n' \
    "$cross" "$same" "$edge" "$peer" "$cache" >"$1"
}

# crowd_mark DIR: the moment a system run's figures start from: counters
# zeroed, machine and delay-line CPU and the delay lines' stats recorded
# (DIR/cpu-before.json, DIR/delayline-before.jsonl). run_system calls it
# before the system starts; a system with work before its crowd (managed
# caches' pre-positioning) calls it again once that is done.
crowd_mark() {
  zero_counters
  "$BIN/tbtool" cpusnap --pids "$DL_PIDS" >"$1/cpu-before.json"
  sleep 1.1 # the delay lines write their stats every second
  delayline_snapshot "$1/delayline-before.jsonl"
}

# ---------------------------------------------------------------- processes

# spawn ROLE NAME [--at UNIXNS] -- CMD...: start CMD in ROLE's namespace under
# `tbtool run` (stats, first-line time, CPU), files $PROC_DIR/NAME.*; sets SPAWN_PID.
# Its stats file is listed in $SPAWN_PROCS if set (default $PROC_DIR/procs).
spawn() {
  local role=$1 name=$2 at=0; shift 2
  if [ "${1:-}" = --at ]; then at=$2; shift 2; fi
  [ "${1:-}" = -- ] && shift
  local base="$PROC_DIR/$name"
  ip netns exec "$(ns_name "$role")" "$BIN/tbtool" run --at "$at" --stats "$base.stats" \
    --stdout "$base.out" --stderr "$base.err" -- "$@" </dev/null >/dev/null 2>"$base.wrap" &
  SPAWN_PID=$!
  record_pid "$SPAWN_PID" "$name"
  echo "$base.stats" >>"${SPAWN_PROCS:-$PROC_DIR/procs}" # whose CPU the run line sums
}

# common_start N: a wall-clock moment far enough ahead to spawn N processes.
common_start() { echo $(( $(now_ns) + 800000000 + $1 * 40000000 )); }

json_num() { # FILE JQ-EXPR [DEFAULT]
  local v
  v=$(jq -r "$2 // empty" "$1" 2>/dev/null | head -1)
  echo "${v:-${3:-0}}"
}

# file_sha_ok FILE: its sha256 is the origin file's.
file_sha_ok() {
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$FILE_SHA" ]
}

# keep_run DIR KEEP: keep a system run's small files (DIR's JSON, the
# processes' stats and output, the tails of their logs) in KEEP, and drop
# DIR with the downloaded copies.
keep_run() {
  local dir=$1 keep=$2 f
  mkdir -p "$keep/proc"
  cp "$dir"/*.json* "$keep/" 2>/dev/null || true
  for f in "$PROC_DIR"/*; do
    case "$f" in *.stats|*.out|*procs) cp "$f" "$keep/proc/" ;; *) tail -c 200000 "$f" >"$keep/proc/$(basename "$f")" ;; esac
  done
  rm -rf -- "$dir"
}

# ---------------------------------------------------------------- origin and edge

ORIGIN_PORT=9000
EDGE_PORT=8080
FILE_PATH=/file.bin

origin_start() {
  ip netns exec "$(ns_name origin)" "$BIN/edgeswarm" origin --dir "$WORK/origin" --listen "$ORIGIN_IP:$ORIGIN_PORT" \
    </dev/null >"$LOG_DIR/origin.log" 2>&1 &
  ORIGIN_PID=$!
  record_pid $ORIGIN_PID origin
  wait_for 10 NSX origin curl -sf -o /dev/null "http://$ORIGIN_IP:$ORIGIN_PORT$FILE_PATH" -r 0-0 ||
    die "origin did not start: $(tail -5 "$LOG_DIR/origin.log")"
}

# The edge's admin listener (usage, pre-positioning orders), reachable only
# inside the edge namespace.
EDGE_ADMIN=127.0.0.1:8081

# edge_files: what every edge of this testbed run reads: the admin and
# managed-cache tokens and, for --pids 2, the network map (ISP-A's block
# one PID, ISP-B's the other, cost 10 between them).
edge_files() {
  EDGE_ADMIN_TOKEN_FILE=$WORK/admin.token
  EDGE_MANAGED_TOKEN_FILE=$WORK/managed.token
  EDGE_NETMAP=$WORK/netmap.yaml
  [ -f "$EDGE_ADMIN_TOKEN_FILE" ] && return 0
  (
    umask 077
    printf 'esb-admin-%s-%s%s\n' "$RUN_ID" "$RANDOM" "$RANDOM" >"$EDGE_ADMIN_TOKEN_FILE"
    printf 'esb-managed-%s-%s%s\n' "$RUN_ID" "$RANDOM" "$RANDOM" >"$EDGE_MANAGED_TOKEN_FILE"
  )
  cat >"$EDGE_NETMAP" <<NETMAP
# ISP-A: even peers and managed caches; ISP-B: odd ones
pids:
  isp-a: [$ISPA_NET]
  isp-b: [$ISPB_NET]
costs:
  isp-a: {isp-b: 10}
  isp-b: {isp-a: 10}
NETMAP
}

# edge_admin METHOD PATH [JSON]: a request to the edge's admin listener.
edge_admin() {
  local args=(-sS -f --max-time 10 -H "Authorization: Bearer $(cat "$EDGE_ADMIN_TOKEN_FILE")" -X "$1")
  [ $# -lt 3 ] || args+=(-H 'Content-Type: application/json' --data "$3")
  NSX edge curl "${args[@]}" "http://$EDGE_ADMIN$2"
}

# edge_start: a fresh edge (empty cache) whose cache and manifest are warmed
# from inside the edge namespace (over lo: no shaped link is used); sets
# EDGE_PID and EDGE_KEY. It has an admin listener (GET /usage, POST
# /prefetch); with --pids 2 the network map and --cross-pid; with --managed
# the managed-cache token and a config file for the one setting no flag
# gives, orders_poll_interval: caches poll for orders every 500 ms instead
# of 30 s, so pre-positioning is timed by its transfer, not by the poll.
edge_start() {
  local cache="$WORK/edge-cache-$RANDOM$RANDOM" extra=()
  mkdir -p "$cache"
  edge_files
  if [ "${PIDS:-1}" -gt 1 ]; then
    extra+=(--network-map "$EDGE_NETMAP" --cross-pid "$CROSS_PID")
  fi
  [ -z "${CHUNK_SIZE:-}" ] || extra+=(--chunk-size "$CHUNK_SIZE")
  if [ "${MANAGED:-0}" -gt 0 ]; then
    # origin and cache_dir are required in the file; the flags below win
    printf 'origin: http://%s:%s\ncache_dir: %s\norders_poll_interval: 500ms\n' "$ORIGIN_IP" "$ORIGIN_PORT" "$cache" >"$cache.yaml"
    extra+=(--config "$cache.yaml" --managed-token-file "$EDGE_MANAGED_TOKEN_FILE")
  fi
  spawn edge edge -- "$BIN/edgeswarm" edge --origin "http://$ORIGIN_IP:$ORIGIN_PORT" --listen "$EDGE_IP:$EDGE_PORT" \
    --cache-dir "$cache" --cache-size "$((FILE_BYTES * 4 + (64 << 20)))" \
    --admin-listen "$EDGE_ADMIN" --admin-token-file "$EDGE_ADMIN_TOKEN_FILE" "${extra[@]}"
  EDGE_PID=$SPAWN_PID
  EDGE_CACHE=$cache
  wait_for 10 NSX edge curl -sf -o /dev/null "http://$EDGE_IP:$EDGE_PORT/swarm/v1/key" ||
    die "edge did not start: $(tail -5 "$PROC_DIR/edge.err")"
  EDGE_KEY=$(grep -o 'public_key=[0-9a-f]*' "$PROC_DIR/edge.err" | head -1 | cut -d= -f2)
  [ -n "$EDGE_KEY" ] || die "edge logged no public_key"
  NSX edge curl -sf -o /dev/null "http://$EDGE_IP:$EDGE_PORT$FILE_PATH" || die "edge warm-up failed"
  NSX edge curl -sf -o /dev/null "http://$EDGE_IP:$EDGE_PORT/swarm/v1/manifest?url=$FILE_PATH" || die "edge manifest warm-up failed"
  wait_for 5 edge_admin GET /usage || die "edge admin listener: GET /usage failed"
}

_edge_died() { proc_done edge; }

edge_stop() {
  stop_pids "$EDGE_PID"
  rm -rf -- "$EDGE_CACHE" "$EDGE_CACHE.yaml"
}

# ---------------------------------------------------------------- system runs

# wait_peers TIMEOUT_S DONE_FN [ABORT_FN]: until DONE_FN K succeeds for every
# peer, or the timeout, or ABORT_FN succeeds (e.g. the edge or the seed died);
# returns 1 on timeout or abort.
wait_peers() {
  local timeout=$1 fn=$2 abort=${3:-} deadline k left
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    if [ -n "$abort" ] && "$abort"; then
      log "aborted: $abort"
      return 1
    fi
    left=0
    for ((k = 0; k < PEERS; k++)); do
      "$fn" "$k" || { left=$((left + 1)); }
    done
    [ $left = 0 ] && return 0
    if [ "$(date +%s)" -ge $deadline ]; then
      log "timeout: $left of $PEERS peers not done after ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
}

# proc_done NAME: the process under `tbtool run` has exited.
proc_done() { [ -f "$PROC_DIR/$1.stats" ] && [ "$(jq -r .running "$PROC_DIR/$1.stats" 2>/dev/null)" = false ]; }

# proc_exit_desc NAME: how the process under `tbtool run` ended.
proc_exit_desc() {
  jq -r 'if .running then "still running"
         elif (.signaled // "") != "" then "killed by signal: \(.signaled)"
         else "exit code \(.exit_code)" end' "$PROC_DIR/$1.stats" 2>/dev/null || echo "no stats"
}

# peer_record K DONE COMPLETION_S EDGE_BYTES PEER_BYTES SHA_OK [ERROR] [MANAGED_BYTES]
peer_record() {
  jq -cn --argjson peer "$1" --arg isp "$(peer_isp "$1")" --argjson done "$2" --argjson c "$3" \
    --argjson eb "$4" --argjson pb "$5" --argjson ok "$6" --arg err "${7:-}" --argjson mb "${8:-0}" \
    '{peer:$peer, isp:$isp, done:$done, completion_s:$c, edge_bytes:$eb, peer_bytes:$pb, managed_bytes:$mb, sha256_ok:$ok}
     + (if $err == "" then {} else {error:$err} end)'
}

# churn_start DIR AT: with --churn, start the killer of this run's plan
# ($CHURN_PLAN): each victim's process (pK, under `tbtool run`) gets SIGKILL
# at its moment after AT; its log is DIR/churn.jsonl. Sets CHURN_PID
# (empty without churn).
churn_start() {
  CHURN_PID=
  [ -n "${CHURN_PLAN:-}" ] || return 0
  "$BIN/tbtool" churn --plan "$CHURN_PLAN" --at "$2" --stats-dir "$PROC_DIR" --out "$1/churn.jsonl" \
    --deadline-s "$(system_timeout)" </dev/null >/dev/null 2>"$PROC_DIR/churn.err" &
  CHURN_PID=$!
  record_pid "$CHURN_PID" churn
}

# churn_stop: stop the killer once every peer is done or dead (a victim
# whose moment has not come had finished before it).
churn_stop() {
  [ -z "${CHURN_PID:-}" ] || stop_pids "$CHURN_PID"
  CHURN_PID=
}

# start_offset_s NAME AT: seconds from the common start AT to the process's exec.
start_offset_s() {
  local s
  s=$(json_num "$PROC_DIR/$1.stats" .start_unix_ns 0)
  awk -v s="$s" -v a="$2" 'BEGIN { printf "%.6f", (s - a) / 1e9 }'
}

# system_timeout: seconds one system run may take: generous against the
# slower of the fluid bound and CDN-only delivery.
system_timeout() {
  if [ -n "${TIMEOUT_S:-}" ]; then echo "$TIMEOUT_S"; return; fi
  awk -v n="$PEERS" -v f="$FILE_BYTES" -v ue="$EDGE_UP" -v up="$PEER_UP" -v d="$PEER_DOWN" 'BEGIN {
    F = f * 8; b = F / (ue * 1e6); if (F / (d * 1e6) > b) b = F / (d * 1e6)
    c = n * F / (ue * 1e6 + n * up * 1e6); if (c > b) b = c
    cdn = n * F / (ue * 1e6); if (cdn > b) b = cdn
    printf "%d", 60 + 6 * b }'
}

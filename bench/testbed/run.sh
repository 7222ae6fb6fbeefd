#!/usr/bin/env bash
# The netns testbed: a small emulated internet on one machine, and the
# flash-crowd and stream scenarios run side by side for several systems.
#
#   bench/testbed/run.sh flashcrowd [--peers N] [--size BYTES] [--edge-up MBIT]
#       [--peer-up MBIT] [--peer-down MBIT] [--rtt MS] [--runs K]
#       [--systems edgeswarm,cdn,libtorrent,transmission (scenarios: edgeswarm,cdn)] [--out DIR]
#       [--queue-ms MS] [--verify-seconds S] [--timeout S] [--mtu BYTES]
#       [--cc cubic|bbr|...] [--tso-segs N]
#       [--pids 1|2] [--cross-pid allow|deny|managed-only]
#       [--managed M] [--managed-up MBIT] [--churn F] [--seed S]
#   bench/testbed/run.sh stream [--peers 16] [--bitrate MBIT] [--join-every S]
#       [--play-seconds S] [--fast-start on|off|auto] [--size BYTES] [--edge-up 24]
#       [--peer-up MBIT] [--peer-down MBIT] [--rtt MS] [--runs K] [--systems edgeswarm,cdn]
#       [--chunk-size BYTES]   (both scenarios: the edge's manifest chunk size; default per object)
#   bench/testbed/run.sh cleanup [--force]   # leftovers of earlier runs
#
# Scenarios, as `edgeswarm demo` has them (edgeswarm and cdn only; they
# compose): --pids 2 gives the edge a network map (ISP-A one location,
# ISP-B the other) and --cross-pid; --managed M adds M managed caches
# (cache j in ISP j mod 2, links of --managed-up Mbit/s, default 200)
# that the edge orders to fetch the file before edgeswarm's crowd;
# --churn F SIGKILLs floor(F*N) seeded peers (seed S+k-1 in run k) at
# moments in [5 %, 80 %] of the fluid bound, the same for every system.
#
# Root only. Install the tools first: bench/testbed/install.sh [--bt].
# JSON lines on stdout (one "testbed" line, one "run" line per system and run,
# one "median" line per system, one "summary" line), a human summary on
# stderr, and everything plus SVG plots in --out (default bench/out/<time>).
# Topology, shaping and latency: see bench/testbed/README.md.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
# shellcheck source=stream.sh
source "$HERE/stream.sh"
for f in "$HERE"/systems/*.sh; do
  # shellcheck disable=SC1090
  source "$f"
done

usage() { sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
cmd=$1; shift
[ "$(id -u)" = 0 ] || die "the testbed needs root (network namespaces, tc, iptables)"

case "$cmd" in
  cleanup)
    cleanup_stale "${1:-}"
    left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^esb-' || true)
    [ -z "$left" ] || log "namespaces of live runs left alone: $(echo $left)"
    exit 0 ;;
  flashcrowd|stream) ;;
  -h|--help|help) usage ;;
  *) usage ;;
esac

PEERS=20 SIZE=64MiB EDGE_UP=100 PEER_UP=20 PEER_DOWN=100 RTT_MS=20 RUNS=1
SYSTEMS="" OUT="" QUEUE_MS=50 VERIFY_S=4 TIMEOUT_S="" MTU=1500 TCP_CC="" TSO_SEGS=""
PIDS=1 CROSS_PID=allow MANAGED=0 MANAGED_UP=200 CHURN=0 SEED=1
BITRATE=4 JOIN_EVERY=2 PLAY_S=30 FAST_START=on CHUNK_SIZE=""
if [ "$cmd" = stream ]; then PEERS=16 SIZE=32MiB EDGE_UP=24; fi
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { log "flag $1 needs a value"; usage; }
  case "$1" in
    --peers) PEERS=$2 ;;
    --size) SIZE=$2 ;;
    --edge-up) EDGE_UP=$2 ;;
    --peer-up) PEER_UP=$2 ;;
    --peer-down) PEER_DOWN=$2 ;;
    --rtt) RTT_MS=$2 ;;
    --runs) RUNS=$2 ;;
    --systems) SYSTEMS=$2 ;;
    --out) OUT=$2 ;;
    --queue-ms) QUEUE_MS=$2 ;;
    --verify-seconds) VERIFY_S=$2 ;;
    --timeout) TIMEOUT_S=$2 ;;
    --mtu) MTU=$2 ;;
    --cc) TCP_CC=$2 ;;
    --tso-segs) TSO_SEGS=$2 ;;
    --pids) PIDS=$2 ;;
    --cross-pid) CROSS_PID=$2 ;;
    --managed) MANAGED=$2 ;;
    --managed-up) MANAGED_UP=$2 ;;
    --churn) CHURN=$2 ;;
    --seed) SEED=$2 ;;
    --bitrate) BITRATE=$2 ;;
    --join-every) JOIN_EVERY=$2 ;;
    --play-seconds) PLAY_S=$2 ;;
    --fast-start) FAST_START=$2 ;;
    --chunk-size) CHUNK_SIZE=$2 ;;
    *) log "unknown flag $1"; usage ;;
  esac
  shift 2 || usage
done
[[ $PEERS =~ ^[0-9]+$ ]] && [ "$PEERS" -ge 2 ] && [ "$PEERS" -le 2000 ] || die "--peers 2..2000"
[[ $RUNS =~ ^[0-9]+$ ]] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 50 ] || die "--runs 1..50"
[ -z "$TSO_SEGS" ] || [[ $TSO_SEGS =~ ^[0-9]+$ ]] || die "--tso-segs N"
[ -z "$TCP_CC" ] || grep -qw "$TCP_CC" /proc/sys/net/ipv4/tcp_available_congestion_control || die "--cc $TCP_CC: not available (have: $(cat /proc/sys/net/ipv4/tcp_available_congestion_control))"
[[ $MTU =~ ^[0-9]+$ ]] && [ "$MTU" -ge 576 ] && [ "$MTU" -le 65000 ] || die "--mtu 576..65000"
case "$FAST_START" in on|off|auto) ;; *) die "--fast-start on|off|auto" ;; esac
[ -z "$CHUNK_SIZE" ] || [[ $CHUNK_SIZE =~ ^[0-9]+([KM]iB)?$ ]] || die "--chunk-size $CHUNK_SIZE: bytes, e.g. 262144 or 256KiB"
for v in "$EDGE_UP" "$PEER_UP" "$PEER_DOWN" "$RTT_MS" "$QUEUE_MS" "$VERIFY_S" "$BITRATE" "$JOIN_EVERY" "$PLAY_S"; do
  [[ $v =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad number $v"
done
# the scenarios (edgeswarm demo's --pids, --cross-pid, --managed, --churn)
[[ $PIDS =~ ^[12]$ ]] || die "--pids $PIDS: 1 (no network map) or 2 (ISP-A and ISP-B, one location each)"
case "$CROSS_PID" in allow|deny|managed-only) ;; *) die "--cross-pid $CROSS_PID: allow, deny or managed-only" ;; esac
[ "$CROSS_PID" = allow ] || [ "$PIDS" = 2 ] || die "--cross-pid $CROSS_PID needs --pids 2 (with one location there is nothing across)"
[[ $MANAGED =~ ^[0-9]+$ ]] && [ "$MANAGED" -le 16 ] || die "--managed $MANAGED: 0..16 managed caches"
[[ $MANAGED_UP =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v r="$MANAGED_UP" 'BEGIN { exit !(r > 0) }' || die "--managed-up $MANAGED_UP: a rate in Mbit/s above 0"
[[ $CHURN =~ ^(0|0?\.[0-9]+)$ ]] || die "--churn $CHURN: a fraction of the peers in [0, 1) (one must survive), e.g. 0.5"
[[ $SEED =~ ^[0-9]+$ ]] && [ ${#SEED} -le 18 ] || die "--seed $SEED: a non-negative integer"
if awk -v c="$CHURN" 'BEGIN { exit !(c > 0) }'; then
  CHURN_KILLS=$(awk -v c="$CHURN" -v n="$PEERS" 'BEGIN { k = int(c * n); if (k > n - 1) k = n - 1; print k }')
  [ "$CHURN_KILLS" -ge 1 ] || die "--churn $CHURN with $PEERS peers kills nobody (floor($CHURN x $PEERS) = 0)"
  CHURN=$(awk -v c="$CHURN" 'BEGIN { printf "%g", c }') # JSON-safe: .5 -> 0.5
else
  CHURN=0 CHURN_KILLS=0
fi
SCENARIO=0
[ "$PIDS" = 1 ] && [ "$MANAGED" = 0 ] && [ "$CHURN" = 0 ] || SCENARIO=1
if [ "$cmd" = stream ]; then
  [ "$SCENARIO" = 0 ] || die "stream: --pids, --managed and --churn are flash-crowd scenarios"
  SYSTEMS=${SYSTEMS:-edgeswarm,cdn}
  for s in ${SYSTEMS//,/ }; do
    case "$s" in edgeswarm|cdn) ;; *) die "stream: only the systems edgeswarm and cdn, not $s" ;; esac
  done
fi
if [ -z "$SYSTEMS" ]; then
  SYSTEMS=edgeswarm,cdn,libtorrent,transmission
  [ "$SCENARIO" = 0 ] || SYSTEMS=edgeswarm,cdn
elif [ "$SCENARIO" = 1 ]; then
  for s in ${SYSTEMS//,/ }; do
    case "$s" in edgeswarm|cdn) ;; *) die "--pids/--managed/--churn: only the systems edgeswarm and cdn run these scenarios, not $s" ;; esac
  done
fi
for c in ip tc iptables curl jq sysctl sha256sum awk go; do
  command -v $c >/dev/null 2>&1 || die "$c missing: run bench/testbed/install.sh"
done
IFS=, read -r -a SYSTEM_LIST <<<"$SYSTEMS"
for s in "${SYSTEM_LIST[@]}"; do
  declare -F "sys_${s}_run" >/dev/null || die "unknown system $s (have: $(ls "$HERE/systems" | sed 's/\.sh//' | tr '\n' ' '))"
done

# --- this run's state; everything is undone on exit
RUN_ID=$(printf '%x%04x' $$ $((RANDOM)))
STATE_DIR=$ESB_STATE_ROOT/$RUN_ID
WORK=$ESB_WORK_ROOT/esb-$RUN_ID
mkdir -p "$STATE_DIR" "$WORK"
echo "$$ $(pid_starttime $$)" >"$STATE_DIR/owner"
echo "$WORK" >"$STATE_DIR/work"
: >"$STATE_DIR/pids"; : >"$STATE_DIR/netns"
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  log "cleanup: stopping processes, deleting namespaces of run $RUN_ID"
  cleanup_state "$STATE_DIR"
  if ip netns list 2>/dev/null | grep -q "^esb-$RUN_ID-"; then
    log "cleanup: namespaces left: $(ip netns list | grep "^esb-$RUN_ID-" | tr '\n' ' ')"
    rc=1
  fi
  exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cleanup_stale # leftovers of dead earlier runs (live ones are left alone)

[ -n "$OUT" ] || OUT="$ROOT/bench/out/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$OUT/runs"
OUT=$(cd "$OUT" && pwd)
LOG_DIR=$OUT/logs
mkdir -p "$LOG_DIR"
RESULTS=$OUT/results.jsonl
: >"$RESULTS"

BIN=$WORK/bin
mkdir -p "$BIN"
log "building edgeswarm and the testbed helpers"
(cd "$ROOT" && go build -o "$BIN/edgeswarm" ./cmd/edgeswarm && go build -o "$BIN/tbtool" ./bench/testbed/tbtool &&
  go build -o "$BIN/delayline" ./bench/testbed/delayline && go build -o "$BIN/plot" ./bench/testbed/plot) ||
  die "build failed"

FILE_BYTES=$("$BIN/tbtool" size "$SIZE")
DELAY_US=$(awk -v r="$RTT_MS" 'BEGIN { printf "%d", r * 1000 / 4 }')
mkdir -p "$WORK/origin"
FILE_SHA=$("$BIN/tbtool" mkfile --size "$FILE_BYTES" --out "$WORK/origin/file.bin")
log "run $RUN_ID: $PEERS peers, file $FILE_BYTES bytes, edge up ${EDGE_UP} Mbit/s, peers ${PEER_UP}/${PEER_DOWN} Mbit/s up/down, RTT ${RTT_MS} ms (one-way delay $((2 * DELAY_US)) us), MTU $MTU, systems ${SYSTEMS}, ${RUNS} run(s)"
[ "$SCENARIO" = 0 ] || log "scenario: $PIDS location(s)$([ "$PIDS" = 1 ] || echo ", cross-pid $CROSS_PID"), $MANAGED managed cache(s)$([ "$MANAGED" = 0 ] || echo " at ${MANAGED_UP} Mbit/s"), churn $CHURN$([ "$CHURN" = 0 ] || echo " ($CHURN_KILLS of $PEERS peers killed, seed $SEED + run - 1)")"

topo_up
origin_start

# --- measure what the topology emulates: RTT (TCP connect) and shaping
PROC_DIR=$WORK/verify
mkdir -p "$PROC_DIR"
SINK_PORT=9999
vpids=()
spawn edge sink-edge -- "$BIN/tbtool" sink --listen "$EDGE_IP:$SINK_PORT" --timeout 300s; vpids+=("$SPAWN_PID")
spawn p1 sink-p1 -- "$BIN/tbtool" sink --listen "$(peer_ip 1):$SINK_PORT" --timeout 300s; vpids+=("$SPAWN_PID")
if [ "$PEERS" -ge 3 ]; then
  spawn p2 sink-p2 -- "$BIN/tbtool" sink --listen "$(peer_ip 2):$SINK_PORT" --timeout 300s; vpids+=("$SPAWN_PID")
fi
wait_for 5 NSX p0 "$BIN/tbtool" rtt --to "$EDGE_IP:$SINK_PORT" --count 1 || die "sink in edge unreachable from p0"
wait_for 5 NSX p0 "$BIN/tbtool" rtt --to "$(peer_ip 1):$SINK_PORT" --count 1 || die "sink in p1 unreachable from p0"
rtt_edge=$(NSX p0 "$BIN/tbtool" rtt --to "$EDGE_IP:$SINK_PORT" --count 30)
rtt_cross=$(NSX p0 "$BIN/tbtool" rtt --to "$(peer_ip 1):$SINK_PORT" --count 30)
rtt_same=null
if [ "$PEERS" -ge 3 ]; then
  wait_for 5 NSX p0 "$BIN/tbtool" rtt --to "$(peer_ip 2):$SINK_PORT" --count 1 || die "sink in p2 unreachable from p0"
  rtt_same=$(NSX p0 "$BIN/tbtool" rtt --to "$(peer_ip 2):$SINK_PORT" --count 30)
fi
RTT_MEASURED=$(jq -r .median_ms <<<"$rtt_edge")
down_set=$(awk -v a="$EDGE_UP" -v b="$PEER_DOWN" 'BEGIN { print (a < b ? a : b) }')
up_set=$(awk -v a="$PEER_UP" -v b="$PEER_DOWN" 'BEGIN { print (a < b ? a : b) }')
down_bytes=$(awk -v r="$down_set" -v s="$VERIFY_S" 'BEGIN { printf "%d", r * 1e6 / 8 * s }')
up_bytes=$(awk -v r="$up_set" -v s="$VERIFY_S" 'BEGIN { printf "%d", r * 1e6 / 8 * s }')
x_down=$(NSX p0 "$BIN/tbtool" xfer --to "$EDGE_IP:$SINK_PORT" --dir down --bytes "$down_bytes") || die "shaping check (download) failed"
x_up=$(NSX p0 "$BIN/tbtool" xfer --to "$(peer_ip 1):$SINK_PORT" --dir up --bytes "$up_bytes") || die "shaping check (upload) failed"
stop_pids "${vpids[@]}"
shaping_json() { # SET_MBIT XFER_JSON PATH
  jq -c --argjson set "$1" --arg path "$3" '{path:$path, set_mbit:$set, expected_goodput_mbit:($set*0.95),
      measured_mbit:(.mbit*1000|round/1000), bytes:.bytes, seconds:(.seconds*1000|round/1000)}
    | .error = ((.measured_mbit - .expected_goodput_mbit) / .expected_goodput_mbit * 1000 | round / 1000)
    | .ok = ((.error | fabs) <= 0.10)' <<<"$2"
}
sh_down=$(shaping_json "$down_set" "$x_down" "edge -> p0 (edge up, router -> p0 down)")
sh_up=$(shaping_json "$up_set" "$x_up" "p0 -> p1 (p0 up, router -> p1 down), cross-ISP")
testbed_line=$(jq -cn --arg id "$RUN_ID" --argjson peers "$PEERS" --argjson fb "$FILE_BYTES" \
  --argjson rtt_set "$RTT_MS" --argjson d_us "$DELAY_US" --argjson re "$rtt_edge" --argjson rc "$rtt_cross" \
  --argjson rs "$rtt_same" --argjson mtu "$MTU" --arg dsched "${DELAYLINE_SCHED[*]:-none}" --argjson down "$sh_down" --argjson up "$sh_up" --argjson q "$QUEUE_MS" \
  --arg cc "$(NSX p0 sysctl -n net.ipv4.tcp_congestion_control)" --argjson tso "$(NSX p0 sysctl -n net.ipv4.tcp_min_tso_segs)" --arg kernel "$(uname -r)" --argjson cores "$(nproc)" \
  --argjson pids "$PIDS" --arg crosspid "$CROSS_PID" --argjson managed "$MANAGED" --argjson mup "$MANAGED_UP" --argjson churn "$CHURN" --argjson seed "$SEED" \
  '{type:"testbed", run_id:$id, peers:$peers, file_bytes:$fb, rtt_set_ms:$rtt_set, one_way_delay_us:(2*$d_us), topology:"one core router; origin, edge, each peer and each managed cache on its own routed veth; peers and caches alternate between ISP-A 10.77.16.0/20 and ISP-B 10.77.32.0/20", delay_model:"one delay-line pass per packet: the router adds RTT/2 to every packet it forwards onto the edge, a peer or a managed cache access link", mtu:$mtu,
    rtt_ms:{peer_edge:$re, peer_peer_cross_isp:$rc, peer_peer_same_isp:$rs},
    shaping:{download:$down, upload:$up, ok:($down.ok and $up.ok), judged_against:"0.95 x set rate, +-10 %"},
    tbf_queue_ms:$q, delayline_sched:$dsched, tcp_congestion_control:$cc, tcp_min_tso_segs:$tso, kernel:$kernel, cores:$cores,
    scenario:{pids:$pids, cross_pid:$crosspid, managed:$managed, managed_up_mbit:$mup, churn:$churn, seed:$seed}}')
echo "$testbed_line" | tee -a "$RESULTS"
log "RTT (TCP connect, median): peer-edge $(jq -r .median_ms <<<"$rtt_edge") ms, peer-peer cross-ISP $(jq -r .median_ms <<<"$rtt_cross") ms$( [ "$rtt_same" = null ] || echo ", same ISP $(jq -r .median_ms <<<"$rtt_same") ms") (set ${RTT_MS} ms)"
log "shaping: download $(jq -r '"\(.measured_mbit) Mbit/s vs \(.expected_goodput_mbit) expected (\(.error*100|round)%)"' <<<"$sh_down"), upload $(jq -r '"\(.measured_mbit) Mbit/s vs \(.expected_goodput_mbit) expected (\(.error*100|round)%)"' <<<"$sh_up")"
if [ "$(jq -r .shaping.ok <<<"$testbed_line")" != true ]; then
  log "WARNING: shaping check off by more than 10 % (machine busy?); results below are suspect"
fi

if [ "$cmd" = stream ]; then
  stream_main
  exit 0
fi

# --- the systems
DL_PIDS=$(IFS=,; echo "${DELAYLINE_PIDS[*]:-}")
declare -A SKIPPED=()
run_system() { # SYSTEM RUN
  local sys=$1 run=$2 why dir keep
  [ -z "${SKIPPED[$sys]:-}" ] || return 0
  if ! why=$("sys_${sys}_available" 2>&1); then
    SKIPPED[$sys]=1
    log "$sys: $why; skipped"
    jq -cn --arg s "$sys" --arg r "$why" '{type:"skipped", system:$s, reason:$r}' | tee -a "$RESULTS"
    return 0
  fi
  dir=$WORK/runs/$sys-$run
  PROC_DIR=$dir/proc
  mkdir -p "$PROC_DIR"
  : >"$PROC_DIR/procs"
  crowd_mark "$dir"
  log "$sys run $run: start"
  if ! "sys_${sys}_run" "$dir"; then
    log "$sys run $run: the system reported a failure (see $OUT/runs/$sys-$run)"
  fi
  "$BIN/tbtool" cpusnap --pids "$DL_PIDS" >"$dir/cpu-after.json"
  delayline_snapshot "$dir/delayline-after.jsonl"
  read_counters "$dir/counters.json"
  [ -f "$dir/peers.jsonl" ] || : >"$dir/peers.jsonl"
  local line
  line=$("$BIN/tbtool" summarize --system "$sys" --run "$run" --peers "$PEERS" --file-bytes "$FILE_BYTES" \
    --edge-up "$EDGE_UP" --peer-up "$PEER_UP" --peer-down "$PEER_DOWN" --rtt-ms "$RTT_MEASURED" --rtt-set-ms "$RTT_MS" \
    --peers-file "$dir/peers.jsonl" --procs-file "$PROC_DIR/procs" --counters "$dir/counters.json" \
    --cpu-before "$dir/cpu-before.json" --cpu-after "$dir/cpu-after.json" \
    --delayline-before "$dir/delayline-before.jsonl" --delayline-after "$dir/delayline-after.jsonl" \
    $( [ -f "$dir/settings.json" ] && echo --settings "$dir/settings.json" ) \
    $( [ -f "$dir/totals.json" ] && echo --totals "$dir/totals.json" ) \
    --pids "$PIDS" --cross-pid "$CROSS_PID" --managed "$MANAGED" --managed-up "$MANAGED_UP" --churn "$CHURN" --seed "$RUN_SEED" \
    $( [ -n "${CHURN_PLAN:-}" ] && echo --churn-plan "$CHURN_PLAN" ) \
    $( [ -f "$dir/churn.jsonl" ] && echo --churn-log "$dir/churn.jsonl" ) \
    $( [ -f "$dir/usage-before.json" ] && echo --usage-before "$dir/usage-before.json" ) \
    $( [ -f "$dir/usage-after.json" ] && echo --usage-after "$dir/usage-after.json" --usage-url "$FILE_PATH" ) \
    $( [ -f "$dir/preposition.json" ] && echo --preposition "$dir/preposition.json" ) \
    $( [ -f "$PROC_DIR/procs-caches" ] && echo --cache-procs-file "$PROC_DIR/procs-caches" ))
  echo "$line" | tee -a "$RESULTS"
  log "$sys run $run: $(jq -r '"completion min/median/max \(.completion_s.min)/\(.completion_s.median)/\(.completion_s.max) s, bound \(.fluid_bound_s) s, ratio \(.ratio_to_bound), offload \(.offload) (limit \(.offload_limit)), cpu \(.cpu_s) s, delay line cpu \(.delayline_cpu_s) s late \(.delayline_late_ms) ms, machine busy \(.machine_cpu.busy_frac), ok \(.ok)"' <<<"$line")"
  [ "$SCENARIO" = 0 ] || log "$sys run $run: $(jq -r "$SCENARIO_JQ" <<<"$line")"
  keep_run "$dir" "$OUT/runs/$sys-$run"
}

# the scenario's figures of a run or median line, for the log and the summary
SCENARIO_JQ='def mb: . / 1e6 | round; [
  (if .pids > 1 then "cross-ISP \(.cross_isp_bytes | mb) MB, same-ISP \(.same_isp_bytes | mb) MB (wire)"
     + (if .edge_usage then ", edge usage: cross-PID \(.edge_usage.cross_pid_bytes | mb) MB" else "" end)
     + (if .same_pid_peer_share then ", same-PID share of peer bytes \(.same_pid_peer_share)" else "" end) else empty end),
  (if .managed > 0 then "edge \(.edge_bytes | mb) MB, from managed caches \(.bytes_from_managed | mb) MB"
     + (if .preposition_s then ", pre-positioning \(.preposition_s) s" else " (no caches)" end) else empty end),
  (if .churn > 0 then "killed \(.killed) (\(.killed_after_completing) after completing), survivors \(.survivors), completed \(.completed)" else empty end)
] | join("; ")'

CHURN_PLAN=
for ((run = 1; run <= RUNS; run++)); do
  RUN_SEED=$((SEED + run - 1))
  if [ "$CHURN" != 0 ]; then
    CHURN_PLAN=$WORK/churn-plan-$run.jsonl
    "$BIN/tbtool" churnplan --peers "$PEERS" --frac "$CHURN" --file-bytes "$FILE_BYTES" --edge-up "$EDGE_UP" \
      --peer-up "$PEER_UP" --peer-down "$PEER_DOWN" --seed "$RUN_SEED" >"$CHURN_PLAN" || die "churn plan failed"
    cp "$CHURN_PLAN" "$OUT/runs/churn-plan-$run.jsonl"
    log "run $run: churn plan (seed $RUN_SEED): $(jq -r '"p\(.peer)@\(.at_s)s"' "$CHURN_PLAN" | tr '\n' ' ')"
  fi
  for sys in "${SYSTEM_LIST[@]}"; do
    run_system "$sys" "$run"
  done
done

# --- medians, summary, plots
"$BIN/tbtool" aggregate "$RESULTS" | tee -a "$RESULTS.tmp"
cat "$RESULTS.tmp" >>"$RESULTS"; rm -f "$RESULTS.tmp"
for r in core; do
  [ -f "$STATE_DIR/delayline-$r.stats" ] && cp "$STATE_DIR/delayline-$r.stats" "$LOG_DIR/delayline-$r.stats.json"
done
"$BIN/plot" --in "$RESULTS" --out "$OUT" >&2 || log "plot failed"

{
  echo
  echo "flashcrowd: $PEERS peers, $FILE_BYTES bytes, edge ${EDGE_UP} / peers ${PEER_UP} up ${PEER_DOWN} down Mbit/s, RTT set ${RTT_MS} ms measured ${RTT_MEASURED} ms"
  printf '%-13s %5s %9s %9s %9s %8s %7s %8s %8s %7s %4s\n' system runs min_s median_s max_s bound_s ratio offload limit cpu_s ok
  jq -r 'select(.type=="median") | [.system, .runs, .completion_s.min, .completion_s.median, .completion_s.max,
      .fluid_bound_s, .ratio_to_bound, .offload, .offload_limit, .cpu_s, .ok] | @tsv' "$RESULTS" |
    while IFS=$'\t' read -r s n a b c d e f g h i; do
      printf '%-13s %5s %9s %9s %9s %8s %7s %8s %8s %7s %4s\n' "$s" "$n" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$h" "$i"
    done
  if [ "$SCENARIO" = 1 ]; then
    echo "scenario: $PIDS location(s)$([ "$PIDS" = 1 ] || echo ", --cross-pid $CROSS_PID"), $MANAGED managed cache(s)$([ "$MANAGED" = 0 ] || echo " at ${MANAGED_UP} Mbit/s"), churn $CHURN (medians):"
    jq -r "select(.type==\"median\") | \"  \(.system): \" + ($SCENARIO_JQ)" "$RESULTS"
    jq -r 'select(.type=="summary") | .notes[]? | "note: \(.)"' "$RESULTS"
    if [ "$PIDS" = 2 ]; then
      jq -r --arg mode "$CROSS_PID" 'select(.type=="median" and .system=="edgeswarm") |
        if $mode == "deny" then "check (deny): cross-ISP bytes on the wire \(.cross_isp_bytes) (\(.cross_isp_bytes / ((.peer_wire_up_bytes + .cache_wire_up_bytes) | if . > 0 then . else 1 end) * 1000 | round / 10) % of what peers and caches sent): only control traffic may cross"
        elif $mode == "allow" then "check (allow): same-PID share of peer bytes \(.same_pid_peer_share // "n/a") (want >= 0.8)"
        else empty end' "$RESULTS"
    fi
  fi
  jq -r 'select(.type=="median" and .cpu_bound) | "WARNING: \(.system): the machine was \(.machine_cpu.busy_frac*100|round) % busy during the runs (CPU-bound: the figures measure CPU, not only the network)"' "$RESULTS"
  jq -r 'select(.type=="summary") | "edgeswarm_vs_bittorrent: \(.edgeswarm_vs_bittorrent // "n/a (needs edgeswarm and libtorrent)")"' "$RESULTS"
  jq -r 'select(.type=="skipped") | "skipped \(.system): \(.reason)"' "$RESULTS" | sort -u
  echo "results and plots: $OUT"
} >&2

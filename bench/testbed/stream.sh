# shellcheck shell=bash
# Scenario "stream": PEERS viewers of a stream of BITRATE Mbit/s; viewer k
# presses play JOIN_EVERY × k seconds after a common start and plays
# PLAY_S seconds of it (or the whole object if shorter) with the player
# emulator of `edgeswarm play`. Side by side in the same topology:
#   edgeswarm: edgeswarm play http://EDGE/file.bin --bitrate B --listen PEER:7000 --seed
#              (a stream-mode agent per viewer, serving the others until every viewer is done)
#   cdn:       edgeswarm play --direct http://EDGE/file.bin --bitrate B
#              (the same player reading straight from the edge over HTTP)
# One "stream_run" line per system and run, one "stream_median" line per
# system, one "stream_summary" line (ratios edgeswarm / cdn).

ST_PEER_PORT=7000


# stream_run_system SYSTEM RUN: one run of SYSTEM; appends its line to RESULTS.
stream_run_system() {
  local sys=$1 run=$2 dir k at rc=0 pids=() tmo url
  dir=$WORK/runs/$sys-$run
  PROC_DIR=$dir/proc
  mkdir -p "$PROC_DIR"
  : >"$PROC_DIR/procs"
  zero_counters
  edge_start || return 1
  url="http://$EDGE_IP:$EDGE_PORT$FILE_PATH"
  at=$(common_start "$PEERS")
  # Each viewer's time to play, bounded: CDN-only viewers on a saturated
  # edge play at the edge's share, stalling most of the time.
  tmo=$(awk -v p="$PLAY_S" -v j="$JOIN_EVERY" -v n="$PEERS" -v b="$BITRATE" -v e="$EDGE_UP" 'BEGIN {
    share = e / n; if (share > b) share = b; printf "%d", 60 + j * n + 2 * p * b / share }')
  log "$sys run $run: $PEERS viewers, one every ${JOIN_EVERY}s, ${PLAY_S}s of play each (timeout ${tmo}s)"
  for ((k = 0; k < PEERS; k++)); do
    local vat
    vat=$(awk -v a="$at" -v k="$k" -v j="$JOIN_EVERY" 'BEGIN { printf "%.0f", a + k * j * 1e9 }')
    if [ "$sys" = edgeswarm ]; then
      spawn "p$k" "v$k" --at "$vat" -- "$BIN/edgeswarm" play "$url" --bitrate "${BITRATE}Mbit" --duration "${PLAY_S}s" \
        --json --listen "$(peer_ip "$k"):$ST_PEER_PORT" --seed --trust-key "$EDGE_KEY" --fast-start "$FAST_START" \
        --data-dir "$dir/v$k"
    else
      spawn "p$k" "v$k" --at "$vat" -- "$BIN/edgeswarm" play --direct "$url" --bitrate "${BITRATE}Mbit" --duration "${PLAY_S}s" --json
    fi
    pids+=("$SPAWN_PID")
  done
  # A viewer is done once its player printed its line; seeding viewers run on.
  _st_played() { grep -q '"rebuffer_ratio"' "$PROC_DIR/v$1.out" 2>/dev/null || proc_done "v$1"; }
  wait_peers "$tmo" _st_played _edge_died || rc=1
  stop_pids "${pids[@]}"
  edge_stop
  read_counters "$dir/counters.json"
  : >"$dir/viewers.jsonl"
  for ((k = 0; k < PEERS; k++)); do
    if jq -e .rebuffer_ratio "$PROC_DIR/v$k.out" >/dev/null 2>&1; then
      jq -c --argjson k "$k" --arg isp "$(peer_isp "$k")" '. + {viewer:$k, isp:$isp, ok:true}' "$PROC_DIR/v$k.out" >>"$dir/viewers.jsonl"
    else
      jq -cn --argjson k "$k" --arg err "no result ($(proc_exit_desc "v$k")): $(tail -c 300 "$PROC_DIR/v$k.err" 2>/dev/null | tr '\n' ' ')" \
        '{viewer:$k, ok:false, error:$err}' >>"$dir/viewers.jsonl"
    fi
  done
  jq -cs --arg sys "$sys" --argjson run "$run" --argjson n "$PEERS" --argjson br "$BITRATE" --argjson j "$JOIN_EVERY" \
    --argjson play "$PLAY_S" --argjson fb "$FILE_BYTES" --argjson eu "$EDGE_UP" --argjson pu "$PEER_UP" --argjson pd "$PEER_DOWN" \
    --argjson rtt "$RTT_MEASURED" --arg fs "$FAST_START" --slurpfile c "$dir/counters.json" '
    def q(p): sort | if length == 0 then null else .[((length * p) | ceil) - 1 | if . < 0 then 0 else . end] end;
    def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    [.[] | select(.ok)] as $v |
    ($v | map(if .source == "direct" then .bytes else .bytes_from_edge end) | add // 0) as $eb |
    ($v | map((.bytes_from_peers // 0) + (.bytes_from_managed // 0)) | add // 0) as $pb |
    ($v | map(.stall_s) | add // 0) as $stall | ($v | map(.played_s) | add // 0) as $played |
    {type:"stream_run", system:$sys, run:$run, viewers:$n, completed:($v | length), bitrate_mbit:$br, join_every_s:$j,
     play_s:$play, file_bytes:$fb, chunk_size:($v | map(.chunk_size // empty) | first), edge_up_mbit:$eu, peer_up_mbit:$pu, peer_down_mbit:$pd, rtt_ms:$rtt,
     fast_start:(if $sys == "edgeswarm" then $fs else null end),
     ttfb_s:{median:($v | map(.ttfb_s) | med), p95:($v | map(.ttfb_s) | q(0.95))},
     startup_s:{median:($v | map(.startup_s) | med), p95:($v | map(.startup_s) | q(0.95))},
     rebuffer_ratio:(if $stall + $played > 0 then $stall / ($stall + $played) else null end),
     stalls:($v | map(.stalls) | add // 0), edge_rescues:($v | map(.edge_rescues // 0) | add),
     edge_bytes:$eb, peer_bytes:$pb, offload:(if $eb + $pb > 0 then $pb / ($eb + $pb) else 0 end),
     edge_wire_bytes:$c[0].edge_wire_bytes, cross_isp_bytes:$c[0].cross_isp_bytes,
     ok:(($v | length) == $n)}' "$dir/viewers.jsonl" | tee -a "$RESULTS"
  log "$sys run $run: $(jq -r 'select(.type=="stream_run") | "ttfb median \(.ttfb_s.median) s p95 \(.ttfb_s.p95) s, start-up median \(.startup_s.median) s, rebuffer ratio \(.rebuffer_ratio), offload \(.offload), \(.completed)/\(.viewers) viewers"' <(tail -1 "$RESULTS"))"
  keep_run "$dir" "$OUT/runs/$sys-$run"
  return $rc
}

# stream_main: every run of every system, medians, summary.
stream_main() {
  local run sys
  for ((run = 1; run <= RUNS; run++)); do
    for sys in "${SYSTEM_LIST[@]}"; do
      case "$sys" in edgeswarm|cdn) ;; *) log "stream: system $sys not supported (edgeswarm, cdn); skipped"; continue ;; esac
      stream_run_system "$sys" "$run" || log "$sys run $run: the system reported a failure (see $OUT/runs/$sys-$run)"
    done
  done
  jq -cs '
    def med: map(select(. != null)) | sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    [.[] | select(.type == "stream_run")] | group_by(.system)[] |
    {type:"stream_median", system:.[0].system, runs:length, viewers:.[0].viewers, bitrate_mbit:.[0].bitrate_mbit,
     join_every_s:.[0].join_every_s, play_s:.[0].play_s, chunk_size:.[0].chunk_size, edge_up_mbit:.[0].edge_up_mbit, rtt_ms:(map(.rtt_ms) | med),
     fast_start:.[0].fast_start,
     ttfb_s:{median:(map(.ttfb_s.median) | med), p95:(map(.ttfb_s.p95) | med)},
     startup_s:{median:(map(.startup_s.median) | med), p95:(map(.startup_s.p95) | med)},
     rebuffer_ratio:(map(.rebuffer_ratio) | med), stalls:(map(.stalls) | med), edge_rescues:(map(.edge_rescues) | med),
     edge_bytes:(map(.edge_bytes) | med), peer_bytes:(map(.peer_bytes) | med), offload:(map(.offload) | med),
     edge_wire_bytes:(map(.edge_wire_bytes) | med), ok:(map(.ok) | all)}' "$RESULTS" >"$RESULTS.tmp"
  jq -cs '(map(select(.system == "edgeswarm")) | .[0]) as $e | (map(select(.system == "cdn")) | .[0]) as $c |
    {type:"stream_summary",
     ttfb_ratio_to_cdn:(if $e and $c and ($c.ttfb_s.median // 0) > 0 then $e.ttfb_s.median / $c.ttfb_s.median else null end),
     startup_ratio_to_cdn:(if $e and $c and ($c.startup_s.median // 0) > 0 then $e.startup_s.median / $c.startup_s.median else null end),
     rebuffer_edgeswarm:($e.rebuffer_ratio // null), rebuffer_cdn:($c.rebuffer_ratio // null), offload_edgeswarm:($e.offload // null)}' \
    "$RESULTS.tmp" >>"$RESULTS.tmp"
  tee -a "$RESULTS" <"$RESULTS.tmp"
  rm -f "$RESULTS.tmp"
  {
    echo
    echo "stream: $PEERS viewers of ${BITRATE} Mbit/s, one every ${JOIN_EVERY}s, ${PLAY_S}s each; edge up ${EDGE_UP}, peers ${PEER_UP} up ${PEER_DOWN} down Mbit/s, RTT set ${RTT_MS} ms measured ${RTT_MEASURED} ms"
    printf '%-10s %4s %10s %8s %10s %9s %8s %8s %4s\n' system runs ttfb_med ttfb_p95 startup_med rebuffer stalls offload ok
    jq -r 'select(.type=="stream_median") | [.system, .runs, .ttfb_s.median, .ttfb_s.p95, .startup_s.median, .rebuffer_ratio, .stalls, .offload, .ok] | @tsv' "$RESULTS" |
      while IFS=$'\t' read -r s n a b c d e f g; do
        printf '%-10s %4s %10.4f %8.4f %10.4f %9.4f %8s %8.4f %4s\n' "$s" "$n" "$a" "$b" "$c" "$d" "$e" "$f" "$g"
      done
    jq -r 'select(.type=="stream_summary") | "edgeswarm/cdn: ttfb \(.ttfb_ratio_to_cdn), start-up \(.startup_ratio_to_cdn)"' "$RESULTS"
    echo "results: $OUT"
  } >&2
}

# shellcheck shell=bash
# System "edgeswarm": `edgeswarm edge` in the edge namespace, and in every
# peer namespace, at one common moment,
#   edgeswarm get http://EDGE/file.bin -o OUT --json --listen PEERIP:7000 --seed --trust-key KEY
# which prints its JSON when the file is complete and keeps seeding until
# SIGTERM; all peers are stopped once every one is done.
# With --managed M, first M managed caches (`edgeswarm peer --managed`, cache
# j in namespace mj, ISP j mod 2) are ordered by the edge (admin POST
# /prefetch) to fetch the file; the crowd starts once every cache reports
# the order done (DIR/preposition.json). The edge's usage account (admin GET
# /usage) is read at the crowd's start and after every peer has left
# (DIR/usage-before.json, DIR/usage-after.json).
# Contract (every system file): sys_NAME_available [prints why not],
# sys_NAME_run DIR -> DIR/peers.jsonl (one peer_record a line), DIR/settings.json;
# processes started with `spawn` (their CPU is summed), all stopped on return;
# with --churn, churn_start right after the peers are spawned and churn_stop
# once wait_peers returns.

ES_PEER_PORT=7000

sys_edgeswarm_available() { [ -x "$BIN/edgeswarm" ] || { echo "edgeswarm binary missing"; return 1; }; }

_es_done() { grep -q '"sha256"' "$PROC_DIR/p$1.out" 2>/dev/null || proc_done "p$1"; }

# _es_caches_done ORDER_ID: every managed cache has reported the order done.
_es_caches_done() {
  local n
  n=$(edge_admin GET /prefetch | jq --arg id "$1" '[.orders[] | select(.id == $id) | .done_by[]?] | length') || return 1
  [ "${n:-0}" -ge "$MANAGED" ]
}
_es_caches_died() {
  local j
  for ((j = 0; j < MANAGED; j++)); do proc_done "m$j" && return 0; done
  return 1
}

# es_preposition DIR: start the managed caches (their CPU listed in
# $PROC_DIR/procs-caches) and have them fetch the file before the crowd;
# writes DIR/preposition.json {preposition_s, order} (preposition_s null if
# they did not finish in time). Sets ES_CACHE_PIDS.
es_preposition() {
  local dir=$1 j order id t0 t1 tmo ok=0
  ES_CACHE_PIDS=()
  for ((j = 0; j < MANAGED; j++)); do
    mkdir -p "$dir/m$j"
    SPAWN_PROCS=$PROC_DIR/procs-caches spawn "m$j" "m$j" -- "$BIN/edgeswarm" peer --managed \
      --managed-token-file "$EDGE_MANAGED_TOKEN_FILE" --edge "http://$EDGE_IP:$EDGE_PORT" \
      --listen "$(cache_ip "$j"):$ES_PEER_PORT" --data-dir "$dir/m$j/data" --trust-key "$EDGE_KEY" \
      --player-listen "" --status-every 0
    ES_CACHE_PIDS+=("$SPAWN_PID")
  done
  # every cache's session first, so the order's clock starts at the order
  for ((j = 0; j < MANAGED; j++)); do
    wait_for 20 grep -q 'peer serving' "$PROC_DIR/m$j.err" || { log "managed cache m$j did not start: $(tail -c 300 "$PROC_DIR/m$j.err")"; break; }
  done
  # bounded: generous against every cache fetching the whole file from the edge
  tmo=$(awk -v m="$MANAGED" -v f="$FILE_BYTES" -v ue="$EDGE_UP" 'BEGIN { printf "%d", 60 + 6 * m * f * 8 / (ue * 1e6) }')
  t0=$(now_ns)
  if order=$(edge_admin POST /prefetch "{\"urls\":[\"$FILE_PATH\"]}") && id=$(jq -er .id <<<"$order") && [ -n "$id" ]; then
    if wait_for "$tmo" _es_caches_done "$id"; then
      ok=1
    else
      log "pre-positioning: not every cache carried out order $id within ${tmo}s$(_es_caches_died && echo ' (a cache died)')"
    fi
  else
    log "pre-positioning: POST /prefetch failed: ${order:-}"
  fi
  t1=$(now_ns)
  edge_admin GET /prefetch >"$dir/prefetch-orders.json" 2>/dev/null || true
  jq -cn --argjson ok "$ok" --argjson s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')" \
    --argjson m "$MANAGED" --arg id "${id:-}" \
    '{preposition_s:(if $ok == 1 then $s else null end), waited_s:$s, managed:$m, order:$id}' >"$dir/preposition.json"
  [ "$ok" = 1 ]
}

sys_edgeswarm_run() {
  local dir=$1 k at rc=0 pids=()
  ES_CACHE_PIDS=()
  edge_start || return 1
  if [ "${MANAGED:-0}" -gt 0 ]; then
    es_preposition "$dir" || rc=1
    crowd_mark "$dir" # the crowd's figures exclude the pre-positioning
  fi
  edge_admin GET /usage >"$dir/usage-before.json" || rm -f "$dir/usage-before.json"
  at=$(common_start "$PEERS")
  for ((k = 0; k < PEERS; k++)); do
    mkdir -p "$dir/p$k"
    spawn "p$k" "p$k" --at "$at" -- "$BIN/edgeswarm" get "http://$EDGE_IP:$EDGE_PORT$FILE_PATH" \
      -o "$dir/p$k/file.bin" --json --listen "$(peer_ip "$k"):$ES_PEER_PORT" --seed \
      --trust-key "$EDGE_KEY" --data-dir "$dir/p$k/data"
    pids+=("$SPAWN_PID")
  done
  churn_start "$dir" "$at"
  wait_peers "$(system_timeout)" _es_done _edge_died || rc=1
  churn_stop
  stop_pids "${pids[@]}" # each leaves: the edge gets the rest of its usage report
  edge_admin GET /usage >"$dir/usage-after.json" || { log "edgeswarm: GET /usage failed"; rm -f "$dir/usage-after.json"; }
  [ ${#ES_CACHE_PIDS[@]} = 0 ] || stop_pids "${ES_CACHE_PIDS[@]}"
  edge_stop
  : >"$dir/peers.jsonl"
  for ((k = 0; k < PEERS; k++)); do
    local out="$PROC_DIR/p$k.out" secs eb pb mb sha ok=false c
    # (jq 1.6 -e succeeds on an empty file: a killed peer printed nothing)
    if [ -s "$out" ] && jq -e .sha256 "$out" >/dev/null 2>&1; then
      secs=$(json_num "$out" .seconds); eb=$(json_num "$out" .bytes_from_edge); pb=$(json_num "$out" .bytes_from_peers)
      mb=$(json_num "$out" .bytes_from_managed)
      sha=$(jq -r .sha256 "$out")
      if [ "$sha" = "$FILE_SHA" ] && file_sha_ok "$dir/p$k/file.bin"; then ok=true; fi
      c=$(awk -v o="$(start_offset_s "p$k" "$at")" -v s="$secs" 'BEGIN { printf "%.6f", o + s }')
      peer_record "$k" true "$c" "$eb" "$pb" "$ok" "$([ $ok = true ] || echo 'sha256 mismatch')" "$mb" >>"$dir/peers.jsonl"
    else
      peer_record "$k" false 0 0 0 false "no result ($(proc_exit_desc "p$k")): $(tail -c 300 "$PROC_DIR/p$k.err" 2>/dev/null | tr '\n' ' ')" >>"$dir/peers.jsonl"
    fi
  done
  jq -cn --argjson port "$ES_PEER_PORT" --argjson pids "${PIDS:-1}" --arg cross "${CROSS_PID:-allow}" --argjson m "${MANAGED:-0}" \
    '{edge:"edgeswarm edge (default chunk size), admin listener for GET /usage and POST /prefetch", peers:"edgeswarm get --listen PEER:\($port) --seed", rate_limits:"none (tbf shapes the links)", cache:"warmed, manifest built before the start"}
     + (if $pids > 1 then {network_map:"isp-a: ISP-A block, isp-b: ISP-B block, cost 10 between them", cross_pid:$cross} else {} end)
     + (if $m > 0 then {managed_caches:"edgeswarm peer --managed --player-listen \"\" (cache j in ISP j mod 2), ordered by POST /prefetch before the crowd; edge orders_poll_interval 500ms"} else {} end)' \
    >"$dir/settings.json"
  return $rc
}

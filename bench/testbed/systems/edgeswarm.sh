# shellcheck shell=bash
# System "edgeswarm": `edgeswarm edge` in the edge namespace, and in every
# peer namespace, at one common moment,
#   edgeswarm get http://EDGE/file.bin -o OUT --json --listen PEERIP:7000 --seed --trust-key KEY
# which prints its JSON when the file is complete and keeps seeding until
# SIGTERM; all peers are stopped once every one is done.
# Contract (every system file): sys_NAME_available [prints why not],
# sys_NAME_run DIR -> DIR/peers.jsonl (one peer_record a line), DIR/settings.json;
# processes started with `spawn` (their CPU is summed), all stopped on return.

ES_PEER_PORT=7000

sys_edgeswarm_available() { [ -x "$BIN/edgeswarm" ] || { echo "edgeswarm binary missing"; return 1; }; }

_es_done() { grep -q '"sha256"' "$PROC_DIR/p$1.out" 2>/dev/null || proc_done "p$1"; }

sys_edgeswarm_run() {
  local dir=$1 k at rc=0 pids=()
  edge_start || return 1
  at=$(common_start "$PEERS")
  for ((k = 0; k < PEERS; k++)); do
    mkdir -p "$dir/p$k"
    spawn "p$k" "p$k" --at "$at" -- "$BIN/edgeswarm" get "http://$EDGE_IP:$EDGE_PORT$FILE_PATH" \
      -o "$dir/p$k/file.bin" --json --listen "$(peer_ip "$k"):$ES_PEER_PORT" --seed \
      --trust-key "$EDGE_KEY" --data-dir "$dir/p$k/data"
    pids+=("$SPAWN_PID")
  done
  wait_peers "$(system_timeout)" _es_done _edge_died || rc=1
  stop_pids "${pids[@]}"
  edge_stop
  : >"$dir/peers.jsonl"
  for ((k = 0; k < PEERS; k++)); do
    local out="$PROC_DIR/p$k.out" secs eb pb sha ok=false c
    if jq -e .sha256 "$out" >/dev/null 2>&1; then
      secs=$(json_num "$out" .seconds); eb=$(json_num "$out" .bytes_from_edge); pb=$(json_num "$out" .bytes_from_peers)
      sha=$(jq -r .sha256 "$out")
      if [ "$sha" = "$FILE_SHA" ] && file_sha_ok "$dir/p$k/file.bin"; then ok=true; fi
      c=$(awk -v o="$(start_offset_s "p$k" "$at")" -v s="$secs" 'BEGIN { printf "%.6f", o + s }')
      peer_record "$k" true "$c" "$eb" "$pb" "$ok" "$([ $ok = true ] || echo 'sha256 mismatch')" >>"$dir/peers.jsonl"
    else
      peer_record "$k" false 0 0 0 false "no result ($(proc_exit_desc "p$k")): $(tail -c 300 "$PROC_DIR/p$k.err" 2>/dev/null | tr '\n' ' ')" >>"$dir/peers.jsonl"
    fi
  done
  jq -cn --argjson port "$ES_PEER_PORT" \
    '{edge:"edgeswarm edge (default chunk size)", peers:"edgeswarm get --listen PEER:\($port) --seed", rate_limits:"none (tbf shapes the links)", cache:"warmed, manifest built before the start"}' \
    >"$dir/settings.json"
  return $rc
}

# shellcheck shell=bash
# System "cdn": CDN only. The same edge; every peer runs, at one common
# moment, `curl -o OUT http://EDGE/file.bin`. Edge bytes = all bytes.
# With --pids/--managed the edge is configured as edgeswarm's is, but there
# are no managed caches: CDN-only is what they are compared with.
# Contract: see systems/edgeswarm.sh.

sys_cdn_available() { command -v curl >/dev/null || { echo "curl missing"; return 1; }; }

_cdn_done() { proc_done "p$1"; }

sys_cdn_run() {
  local dir=$1 k at rc=0 pids=() tmo
  tmo=$(system_timeout)
  edge_start || return 1
  at=$(common_start "$PEERS")
  for ((k = 0; k < PEERS; k++)); do
    mkdir -p "$dir/p$k"
    spawn "p$k" "p$k" --at "$at" -- curl -sS --max-time "$tmo" -o "$dir/p$k/file.bin" \
      -w '{"size_download":%{size_download},"time_total":%{time_total},"http_code":%{http_code}}\n' \
      "http://$EDGE_IP:$EDGE_PORT$FILE_PATH"
    pids+=("$SPAWN_PID")
  done
  churn_start "$dir" "$at" # --churn: the same victims at the same moments as edgeswarm's
  wait_peers "$tmo" _cdn_done _edge_died || rc=1
  churn_stop
  stop_pids "${pids[@]}"
  edge_stop
  : >"$dir/peers.jsonl"
  for ((k = 0; k < PEERS; k++)); do
    local out="$PROC_DIR/p$k.out" secs size code ok=false c
    code=$(json_num "$out" .http_code 0)
    if [ "$code" = 200 ] && [ "$(json_num "$PROC_DIR/p$k.stats" .exit_code 1)" = 0 ]; then
      secs=$(json_num "$out" .time_total); size=$(json_num "$out" .size_download)
      file_sha_ok "$dir/p$k/file.bin" && ok=true
      c=$(awk -v o="$(start_offset_s "p$k" "$at")" -v s="$secs" 'BEGIN { printf "%.6f", o + s }')
      peer_record "$k" true "$c" "$size" 0 "$ok" "$([ $ok = true ] || echo 'sha256 mismatch')" >>"$dir/peers.jsonl"
    else
      peer_record "$k" false 0 "$(json_num "$out" .size_download 0)" 0 false \
        "curl failed (http $code, $(proc_exit_desc "p$k")): $(tail -c 300 "$PROC_DIR/p$k.err" 2>/dev/null | tr '\n' ' ')" >>"$dir/peers.jsonl"
    fi
  done
  echo '{"client":"curl (HTTP/1.1, one connection per peer)","edge":"edgeswarm edge, cache warmed before the start"}' >"$dir/settings.json"
  return $rc
}

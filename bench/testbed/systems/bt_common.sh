# shellcheck shell=bash
# Shared by systems/libtorrent.sh and systems/transmission.sh: the BitTorrent
# baselines, driven exactly as bench/testbed/bt/README.md describes. Per run:
# a fresh opentracker in the edge namespace (whitelisting the torrent), the
# initial seed in the edge namespace (the file the origin serves), and one
# client per peer namespace, all started at one common moment. Completion of
# a peer = its "complete" line's t_done minus that moment (one clock for all
# namespaces; Python start and `import libtorrent` count, as the edgeswarm
# process's start does). Bytes: edge = the seed's final payload_up, peers =
# the leechers' final payload_up (README: exact); per peer, its own
# payload_down (and from_seed_bytes where the client reports it).

BT_DIR=$HERE/bt
BT_PY=/usr/bin/python3
BT_TRACKER_PORT=6969

# bt_available CLIENT_SCRIPT CMD...: prints why not.
bt_available() {
  local script=$1; shift
  [ -f "$BT_DIR/README.md" ] && [ -f "$BT_DIR/$script" ] || { echo "not available: bench/testbed/bt missing"; return 1; }
  [ -x "$BT_PY" ] && "$BT_PY" -c 'import libtorrent' 2>/dev/null ||
    { echo "not available: python3-libtorrent missing (bench/testbed/install.sh --bt)"; return 1; }
  local c
  for c in opentracker ss "$@"; do
    command -v "$c" >/dev/null || { echo "not available: $c missing (bench/testbed/install.sh --bt)"; return 1; }
  done
}

# bt_torrent: the torrent of the origin's file (64 KiB pieces, BT_PIECE to
# override), made once per testbed run; sets BT_TORRENT, BT_WHITELIST.
bt_torrent() {
  BT_TORRENT=$WORK/bt/file.torrent BT_WHITELIST=$WORK/bt/whitelist.txt
  [ -f "$BT_TORRENT" ] && return 0
  mkdir -p "$WORK/bt"
  "$BT_PY" "$BT_DIR/make_torrent.py" "$WORK/origin/file.bin" --piece-size "${BT_PIECE:-65536}" \
    --tracker "http://$EDGE_IP:$BT_TRACKER_PORT/announce" -o "$BT_TORRENT" >"$BT_WHITELIST" 2>"$LOG_DIR/make_torrent.log" ||
    { log "make_torrent.py failed: $(tail -3 "$LOG_DIR/make_torrent.log")"; return 1; }
}

_bt_seed_died() { proc_done seed; }
_bt_done() { grep -q '"event": *"complete"' "$PROC_DIR/p$1.out" 2>/dev/null || proc_done "p$1"; }

# bt_run SYSTEM DIR CLIENT_SCRIPT SEED_ARGS -- PEER_ARGS_FN
#   SEED_ARGS: extra arguments for the seed; PEER_ARGS_FN K prints the extra
#   arguments of peer K (one per line).
bt_run() {
  local sys=$1 dir=$2 script=$3 seed_extra=$4 peer_fn=$5 k at rc=0 pids=() tpid
  bt_torrent || return 1
  mkdir -p "$dir/tracker"
  # tracker: fresh per run (a killed client would linger in its list)
  if ! tpid=$(NSX edge "$BT_DIR/opentracker.sh" start --listen "$EDGE_IP:$BT_TRACKER_PORT" \
      --whitelist "$BT_WHITELIST" --dir "$dir/tracker" 2>"$dir/tracker.err"); then
    log "$sys: tracker did not start: $(tail -3 "$dir/tracker.err")"; return 1
  fi
  record_pid "$tpid" "opentracker-$sys"
  # the initial seed, in the edge namespace
  # shellcheck disable=SC2086
  spawn edge seed -- "$BT_PY" "$BT_DIR/$script" --torrent "$BT_TORRENT" --save-dir "$WORK/origin" --seed \
    --peers-expected "$PEERS" --label edge --json-out "$dir/seed.json" $seed_extra
  local seed_pid=$SPAWN_PID
  if ! wait_for 120 grep -q '"event": *"seeding"' "$PROC_DIR/seed.out"; then
    log "$sys: the seed is not seeding: $(tail -c 400 "$PROC_DIR/seed.err" | tr '\n' ' ')"
    stop_pids "$seed_pid"; NSX edge "$BT_DIR/opentracker.sh" stop --dir "$dir/tracker" || true
    return 1
  fi
  at=$(common_start "$PEERS")
  for ((k = 0; k < PEERS; k++)); do
    local extra=()
    mapfile -t extra < <("$peer_fn" "$k")
    spawn "p$k" "p$k" --at "$at" -- "$BT_PY" "$BT_DIR/$script" --torrent "$BT_TORRENT" --save-dir "$dir/p$k" \
      --peers-expected "$PEERS" --label "p$k" --json-out "$dir/p$k.json" "${extra[@]}"
    pids+=("$SPAWN_PID")
  done
  wait_peers "$(system_timeout)" _bt_done _bt_seed_died || rc=1
  stop_pids "${pids[@]}" "$seed_pid"
  NSX edge "$BT_DIR/opentracker.sh" stop --dir "$dir/tracker" || true

  : >"$dir/peers.jsonl"
  local peer_up=0 fname
  fname=$(basename "$WORK/origin/file.bin")
  for ((k = 0; k < PEERS; k++)); do
    local out="$PROC_DIR/p$k.out" tdone down fromseed up ok=false c
    up=$(jq -r 'select(.event=="final") | .payload_up // 0' "$out" 2>/dev/null | tail -1)
    peer_up=$((peer_up + ${up:-0}))
    tdone=$(jq -r 'select(.event=="complete") | .t_done' "$out" 2>/dev/null | head -1)
    if [ -n "$tdone" ] && [ "$tdone" != null ]; then
      down=$(jq -r 'select(.event=="complete") | .payload_down // 0' "$out" | head -1)
      fromseed=$(jq -r 'select(.event=="final") | .from_seed_bytes' "$out" | tail -1)
      file_sha_ok "$dir/p$k/$fname" && ok=true
      c=$(awk -v t="$tdone" -v a="$at" 'BEGIN { printf "%.6f", t - a / 1e9 }')
      # transmission reports no per-peer split (from_seed_bytes null): 0/0
      # here; the run's totals (totals.json) are exact either way.
      if ! [[ $fromseed =~ ^[0-9]+$ ]]; then fromseed=0 down=0; fi
      peer_record "$k" true "$c" "$fromseed" $((down > fromseed ? down - fromseed : 0)) "$ok" \
        "$([ $ok = true ] || echo 'sha256 mismatch')" >>"$dir/peers.jsonl"
    else
      peer_record "$k" false 0 0 0 false "not complete ($(proc_exit_desc "p$k")): $(tail -c 300 "$PROC_DIR/p$k.err" 2>/dev/null | tr '\n' ' ')" >>"$dir/peers.jsonl"
    fi
  done
  local seed_up
  seed_up=$(jq -r 'select(.event=="final") | .payload_up // 0' "$PROC_DIR/seed.out" 2>/dev/null | tail -1)
  printf '{"edge_bytes":%d,"peer_bytes":%d,"source":"seed final payload_up; sum of leechers final payload_up"}\n' \
    "${seed_up:-0}" "$peer_up" >"$dir/totals.json"
  return $rc
}

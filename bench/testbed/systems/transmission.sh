# shellcheck shell=bash
# System "transmission": opentracker + transmission-daemon 3.00 (driven by
# bench/testbed/bt/tr_peer.py) in every namespace, the edge namespace as the
# initial seed. The weaker BitTorrent baseline (10 s rechoke period).
# Contract: see systems/edgeswarm.sh.

sys_transmission_available() { bt_available tr_peer.py transmission-daemon transmission-remote; }

_tr_peer_args() {
  printf '%s\n' --listen "$(peer_ip "$1"):51413" --rpc-port 9091 --config-dir "$TR_DIR/c$1"
}

sys_transmission_run() {
  local dir=$1
  TR_DIR=$dir/tr
  mkdir -p "$TR_DIR"
  bt_run transmission "$dir" tr_peer.py "--listen $EDGE_IP:51413 --rpc-port 9091 --config-dir $TR_DIR/edge" _tr_peer_args || return 1
  jq -cn --argjson piece "${BT_PIECE:-65536}" '{client:"transmission-daemon 3.00 via bench/testbed/bt/tr_peer.py",
    piece_bytes:$piece, settings:"no DHT/LPD/PEX/uTP, no limits, upload slots >= N+2, see bench/testbed/bt/README.md",
    tracker:"opentracker in the edge namespace, fresh per run", seed:"edge namespace"}' >"$dir/settings.json"
}

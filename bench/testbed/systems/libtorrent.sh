# shellcheck shell=bash
# System "libtorrent": opentracker + libtorrent 2.0 (python3-libtorrent, the
# engine of qBittorrent and Deluge) in every namespace, the edge namespace as
# the initial seed, flash-crowd settings of bench/testbed/bt/bt_client.py
# (unchoke slots unlimited, TCP only, no DHT/LSD/UPnP/PEX, no rate limits,
# 64 KiB pieces; the full list is in bench/testbed/bt/README.md).
# Contract: see systems/edgeswarm.sh.

sys_libtorrent_available() { bt_available bt_client.py; }

_lt_peer_args() { printf '%s\n' --listen "$(peer_ip "$1"):6881"; }

sys_libtorrent_run() {
  local dir=$1
  bt_run libtorrent "$dir" bt_client.py "--listen $EDGE_IP:6881" _lt_peer_args || return 1
  jq -cn --argjson piece "${BT_PIECE:-65536}" '{client:"libtorrent (python3-libtorrent) via bench/testbed/bt/bt_client.py",
    piece_bytes:$piece, settings:"high_performance_seed + flash-crowd overrides, see bench/testbed/bt/README.md",
    tracker:"opentracker in the edge namespace, fresh per run", seed:"edge namespace, seed_mode"}' >"$dir/settings.json"
}

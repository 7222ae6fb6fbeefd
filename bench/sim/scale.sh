#!/usr/bin/env bash
# Runs `edgeswarm sim --json` for a flash crowd of N = 100, 1k, 10k and 100k
# peers on a 256 MiB object and prints one JSON line per run on stdout, with
# the run's elapsed time (elapsed_s) and max RSS (max_rss_kb) added when
# /usr/bin/time is installed, then a table of them on stderr. Extra
# arguments go to every run; TIMEOUT (seconds, default 3600) bounds each.
#
#   bench/sim/scale.sh                                 # the defaults
#   bench/sim/scale.sh --chunk-budget -1               # the edge's chunk size whatever the cost
#   PEERS="100 1000" bench/sim/scale.sh --seed 2
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=${PEERS:-100 1000 10000 100000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/edgeswarm" ./cmd/edgeswarm
go build -o "$out/table" ./bench/sim/table
for n in $peers; do
  run=(timeout "${TIMEOUT:-3600}" "$out/edgeswarm" sim --json --size 256MiB --peers "$n" "$@")
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%e %M' -o "$out/time" "${run[@]}" > "$out/run.json"
    read -r elapsed rss < <(tail -n 1 "$out/time")
    sed "s/}\$/,\"elapsed_s\":$elapsed,\"max_rss_kb\":$rss}/" "$out/run.json"
  else
    "${run[@]}"
  fi | tee -a "$out/runs.jsonl"
done
"$out/table" < "$out/runs.jsonl" >&2

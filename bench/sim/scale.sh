#!/usr/bin/env bash
# Runs `edgeswarm sim --json` for a flash crowd of N = 100, 1k, 10k and 100k
# peers on a 256 MiB object and prints one JSON line per run on stdout (with
# the run's max RSS added as max_rss_kb when /usr/bin/time is installed),
# then a table of them on stderr. Extra arguments go to every run.
#
#   bench/sim/scale.sh                                # the system as shipped
#   bench/sim/scale.sh --edge-max-uploads 64          # a what-if
#   PEERS="100 1000" bench/sim/scale.sh --seed 2
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=${PEERS:-100 1000 10000 100000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/edgeswarm" ./cmd/edgeswarm
go build -o "$out/table" ./bench/sim/table
for n in $peers; do
  run=("$out/edgeswarm" sim --json --size 256MiB --peers "$n" "$@")
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o "$out/rss" "${run[@]}" > "$out/run.json"
    sed "s/}\$/,\"max_rss_kb\":$(tail -n 1 "$out/rss")}/" "$out/run.json"
  else
    "${run[@]}"
  fi | tee -a "$out/runs.jsonl"
done
"$out/table" < "$out/runs.jsonl" >&2

#!/usr/bin/env bash
# Runs `edgeswarm demo --json` K times with the given flags and prints each
# run's JSON line, then one summary line with medians, min and max of every field
# (bench/summarize), and a human summary on stderr.
#
#   bench/demo/run.sh [--runs K] [demo flags...]
#   bench/demo/run.sh --runs 5 --peers 20 --size 64MiB
#   bench/demo/run.sh --runs 5 --peers 20 --size 64MiB --bad-peers 2
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=5
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/edgeswarm" ./cmd/edgeswarm
for i in $(seq 1 "$runs"); do
  "$out/edgeswarm" demo --json --seed "$i" "${args[@]}" | tee -a "$out/runs.jsonl"
done
go run ./bench/summarize < "$out/runs.jsonl"

#!/usr/bin/env bash
# Compares the edge cache's eviction policies (internal/cachepolicy) on
# synthetic Zipf traces: static popularity at alpha 0.7, 0.9 and 1.1 and a
# drifting one at 0.9; Pareto(4 KiB, 1.2) object sizes; caches of 1, 5 and
# 10 % of the working set; 3 seeds each. Prints one JSON line per run on
# stdout and a markdown table of the means on stderr. Extra arguments go
# to the command (see `go run ./bench/cachepolicy -h`).
#
#   bench/cachepolicy/run.sh > runs.jsonl
#   bench/cachepolicy/run.sh -objects 20000 -requests 400000 -seeds 1   # quick
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/cachepolicy" ./bench/cachepolicy
"$out/cachepolicy" "$@"

#!/usr/bin/env bash
# The project's test command: static checks, then every test. It installs
# nothing today; when a test needs a system package, the install goes here.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== go build"
go build -o /dev/null ./cmd/edgeswarm
echo "== go test"
go test -race -count=1 -timeout 15m ./... "$@"

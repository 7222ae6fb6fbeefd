#!/usr/bin/env bash
# Installs what the netns testbed needs from Debian, only what is missing
# (idempotent). Run as root.
#
#   bench/testbed/install.sh          # edgeswarm and CDN-only systems
#   bench/testbed/install.sh --bt     # also the BitTorrent baselines (bench/testbed/bt/install.sh)
#
# Go (to build edgeswarm and the testbed's helpers) must already be there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bt=0
[ "${1:-}" = "--bt" ] && bt=1

# command -> Debian package
declare -A need=(
  [ip]=iproute2 [tc]=iproute2 [iptables]=iptables [curl]=curl [jq]=jq
  [sysctl]=procps [sha256sum]=coreutils [awk]=mawk [chrt]=util-linux [nice]=coreutils
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" != 0 ]; then
    echo "install.sh: missing ${missing[*]}; run as root" >&2
    exit 1
  fi
  echo "install.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v go >/dev/null 2>&1 || { echo "install.sh: go is not installed (needed to build edgeswarm)" >&2; exit 1; }

if [ "$bt" = 1 ]; then
  if [ -x "$here/bt/install.sh" ]; then
    "$here/bt/install.sh"
  else
    echo "install.sh: bench/testbed/bt/install.sh missing: BitTorrent baselines not installed" >&2
  fi
fi
echo "install.sh: testbed dependencies present" >&2

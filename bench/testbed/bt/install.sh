#!/usr/bin/env bash
# Install the BitTorrent baselines from Debian (idempotent).
#   opentracker          : tracker (Debian build: whitelist-only, chroots into -d)
#   python3-libtorrent   : libtorrent-rasterbar bindings for the SYSTEM /usr/bin/python3
#   transmission-daemon  : second, weaker client
#   transmission-cli     : transmission-remote + transmission-create
set -euo pipefail
PKGS=(opentracker python3-libtorrent transmission-daemon transmission-cli)

have_all() {
  local p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || return 1
  done
  /usr/bin/python3 -c 'import libtorrent' 2>/dev/null || return 1
}

if have_all; then
  echo "bt/install.sh: all present"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not let Debian's postinst start a system-wide transmission-daemon.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d.bt.$$
  restore_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    mv /usr/sbin/policy-rc.d.bt.$$ /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; restore_policy=1
  else
    rm -f /usr/sbin/policy-rc.d.bt.$$
  fi
  apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
  [ "$restore_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# Debian's packages may ship services; the testbed runs its own instances.
for svc in transmission-daemon opentracker; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done

/usr/bin/python3 -c 'import libtorrent as lt; print("libtorrent", lt.__version__)'
transmission-daemon --version 2>&1 | head -1
command -v opentracker >/dev/null && echo "opentracker: $(command -v opentracker)"

#!/usr/bin/env bash
# apt-install.sh <package...>: installs Debian packages that are not installed yet,
# once per machine. Shared by the scripts that need a tool from the distribution
# (Prometheus, protoc for the trace viewer, Chromium for the browser tests).
#
# - does nothing (and needs no root) when every package is installed already;
# - refreshes stale or missing package lists first, and retries once after a refresh;
# - keeps the packages from starting daemons of their own (Debian's prometheus would
#   start one on :9090): service starts are denied through policy-rc.d during the
#   install, unless a policy is in place already.
set -euo pipefail

[ "$#" -gt 0 ] || { echo "usage: $0 <package...>" >&2; exit 2; }

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing=()
for pkg in "$@"; do
  installed "$pkg" || missing+=("$pkg")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

command -v apt-get >/dev/null || { echo "error: ${missing[*]} missing and apt-get is not available" >&2; exit 1; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "error: root is needed to install ${missing[*]} (apt-get install ${missing[*]})" >&2; exit 1; fi
}

echo "==> Installing Debian packages: ${missing[*]} (once per machine)"
policy=/usr/sbin/policy-rc.d added=""
if [ ! -e "$policy" ]; then
  as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy" && added=1
fi
cleanup() { if [ -n "$added" ]; then as_root rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -7 2>/dev/null | head -n1)" ]; then
  as_root apt-get update -qq
fi
if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for pkg in "${missing[@]}"; do
  installed "$pkg" || { echo "error: apt-get install $pkg did not install it" >&2; exit 1; }
done

#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests when it is missing.
set -euo pipefail
command -v chromium >/dev/null && exit 0
[ "$(id -u)" = 0 ] || { echo "chromium is missing: run 'apt-get install chromium' as root" >&2; exit 1; }
echo "installing chromium" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

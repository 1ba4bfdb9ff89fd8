#!/usr/bin/env bash
# The admin-page test drives Debian's Chromium headless; install it (as root) when missing.
# No browser is downloaded from anywhere but Debian's own package archive.
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-chromium: installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure-chromium: /usr/bin/chromium is missing; install Debian's 'chromium' package" >&2
  exit 1
fi

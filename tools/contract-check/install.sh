#!/usr/bin/env bash
# Installs the pinned @asyncapi/parser (package-lock.json) into tools/contract-check/node_modules.
# Idempotent and quick: does nothing when node_modules was installed from this very lock file.
# One install at a time (make and a test may both ask; the second finds the first's stamp).
# Exits 1 with a one-line reason when node or npm is missing or the install fails.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.installed-from-lock
exec 9>node_modules.lock
flock 9
if [ -f "$stamp" ] && cmp -s package-lock.json "$stamp"; then
  exit 0
fi
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "contract-check: $tool is missing (Debian: nodejs, npm)" >&2; exit 1; }
done
echo "contract-check: installing @asyncapi/parser from package-lock.json"
# --ignore-scripts: the parser needs no install script (a dependency's only one is telemetry).
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
cp package-lock.json "$stamp"

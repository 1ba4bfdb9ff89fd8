#!/usr/bin/env bash
# Tools some tests drive for real, from Debian's archive only (installed as root when missing):
#   chromium        the admin-page test drives it headless
#   docker-compose  validates docker-compose.yml without a Docker engine (`docker-compose config`)
#   wrk             the history-API benchmark (and its smoke test) loads the servers with it
#   nodejs, npm     make contract-check runs the AsyncAPI project's parser under Node
#   prometheus      make alert-rules checks and unit-tests the alert rules with its promtool
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v wrk >/dev/null || missing+=(wrk)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v promtool >/dev/null || missing+=(prometheus)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-tools: installing Debian's ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "ensure-tools: missing ${missing[*]}; install Debian's packages of those names" >&2
  exit 1
fi

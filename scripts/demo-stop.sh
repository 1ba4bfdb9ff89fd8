#!/usr/bin/env bash
# `make demo-stop`: stop what `make demo` started, by the pids it recorded.
set -uo pipefail
cd "$(dirname "$0")/.."
quiet=${1:-}
shopt -s nullglob
for pidfile in var/run/*.pid; do
  pid=$(cat "$pidfile")
  name=$(basename "$pidfile" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid"
      echo "stopped $name (pid $pid) with SIGKILL: it did not stop within 10s"
    else
      [ -n "$quiet" ] || echo "stopped $name (pid $pid)"
    fi
  fi
  rm -f "$pidfile"
done

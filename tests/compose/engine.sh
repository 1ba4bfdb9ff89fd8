#!/usr/bin/env bash
# Starts a Docker engine for the compose test if none answers, and stops only the one it started.
#
#   tests/compose/engine.sh start    # no-op when an engine already answers on the socket
#   tests/compose/engine.sh stop     # kills the dockerd whose pid this script recorded, nothing else
#   tests/compose/engine.sh status
#
# Debian's docker.io on these machines: dockerd runs as root with the vfs storage driver (no
# overlayfs inside the sandbox). The pid file marks an engine as ours; an engine somebody else
# started is used as it is and never stopped here.
set -euo pipefail

STATE_DIR=${COMPOSE_STATE_DIR:-/var/cache/chainsights-compose}
RUN_DIR=${COMPOSE_RUN_DIR:-/run/chainsights-compose}
PID_FILE="$RUN_DIR/dockerd.pid"
LOG_FILE="$STATE_DIR/logs/dockerd.log"
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
DOCKER=${DOCKER:-/usr/bin/docker}
START_TIMEOUT=${DOCKERD_START_TIMEOUT:-60}

engine_answers() {
    "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1
}

our_pid() {
    # Prints the recorded pid when that process is still a dockerd; fails otherwise.
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid=$(cat "$PID_FILE")
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    [[ "$(cat "/proc/$pid/comm")" == dockerd ]] || return 1
    echo "$pid"
}

start() {
    if engine_answers; then
        echo "engine: already running (server $("$DOCKER" version --format '{{.Server.Version}}'))"
        return 0
    fi
    [[ $EUID -eq 0 ]] || { echo "engine: dockerd must start as root" >&2; exit 1; }
    mkdir -p "$RUN_DIR" "$(dirname "$LOG_FILE")"
    # dockerd writes its own pid file too (--pidfile); ours is written by the shell that
    # started it, so a stale file from a crashed engine is simply overwritten.
    setsid "$DOCKERD" --storage-driver=vfs --pidfile "$RUN_DIR/dockerd.self.pid" \
        >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
    local waited=0
    until engine_answers; do
        if ! our_pid >/dev/null; then
            echo "engine: dockerd exited at start; last lines of $LOG_FILE:" >&2
            tail -n 20 "$LOG_FILE" >&2
            exit 1
        fi
        ((waited++ < START_TIMEOUT)) || { echo "engine: no answer after ${START_TIMEOUT}s" >&2; exit 1; }
        sleep 1
    done
    echo "engine: started dockerd pid $(cat "$PID_FILE") (log $LOG_FILE)"
}

stop() {
    local pid
    if ! pid=$(our_pid); then
        echo "engine: no dockerd started by this script is running"
        rm -f "$PID_FILE"
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 30); do
        [[ -d "/proc/$pid" ]] || break
        sleep 1
    done
    if [[ -d "/proc/$pid" ]]; then
        echo "engine: dockerd $pid still alive after 30s, sending KILL" >&2
        kill -KILL "$pid"
    fi
    rm -f "$PID_FILE"
    echo "engine: stopped dockerd pid $pid"
}

status() {
    local pid
    if pid=$(our_pid); then echo "engine: ours, pid $pid"; fi
    if engine_answers; then echo "engine: answers"; else echo "engine: not answering"; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac

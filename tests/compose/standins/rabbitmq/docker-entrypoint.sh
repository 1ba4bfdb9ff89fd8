#!/usr/bin/env bash
# Runs the command as the rabbitmq user, owning its data directory (a fresh volume may not).
# `rabbitmq-server` bypasses Debian's wrapper in /usr/sbin, which would send the server's
# output to /var/log/rabbitmq/startup_log and keep a shell as pid 1 that does not pass
# SIGTERM on; the upstream script it calls logs to stdout (RABBITMQ_LOGS=-) and stops the
# node cleanly on SIGTERM, as in the official image.
set -euo pipefail
if [[ "${1:-}" == rabbitmq-server ]]; then
    shift
    set -- /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
    cd /var/lib/rabbitmq
fi
if [[ $(id -u) == 0 ]]; then
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$@"
fi
exec "$@"

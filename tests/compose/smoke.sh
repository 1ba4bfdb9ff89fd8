#!/usr/bin/env bash
# Proves the compose stack comes up on this machine with the local stand-in base images:
# builds the repository's Dockerfile, `docker-compose up -d`, waits for every service to be
# healthy, checks setup ran, DNS between services and the published ports, then tears it all
# down (containers, network, volumes, the built image). Timings go to stdout and timings.log.
#
#   tests/compose/smoke.sh            # engine + stand-ins (cached) + build + up + checks + down
#   KEEP_STACK=1 tests/compose/smoke.sh   # leave the stack up; prints the `down -v` to run
#
# The stack runs from a copy of a commit (HEAD; SMOKE_REF=<ref> for another) in a temporary
# directory, with its own .env (generated passwords, EMAIL_TRANSPORT=file, offline governance
# data), so nothing in the checkout changes and no .env appears in it. A triggered run must
# complete through the ledger's published port and leave its email in the notifier's volume.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE_DIR=${COMPOSE_STATE_DIR:-/var/cache/chainsights-compose}
DOCKER=${DOCKER:-/usr/bin/docker}
COMPOSE=${COMPOSE:-docker-compose}
PROJECT=${COMPOSE_PROJECT:-chainsights-compose-test}
LEDGER_PORT=${LEDGER_PUBLISHED_PORT:-18080}
HEALTH_TIMEOUT=${HEALTH_TIMEOUT:-420}
TIMINGS="$CACHE_DIR/logs/timings.log"
WORK=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
timed() {
    # timed LABEL CMD...: runs CMD, records how long it took.
    local label=$1 started=$SECONDS
    shift
    "$@"
    local took=$((SECONDS - started))
    log "timing: $label ${took}s"
    printf '%s %s %ss\n' "$(date -Iseconds)" "$label" "$took" >>"$TIMINGS"
}
compose() { (cd "$WORK" && "$COMPOSE" -p "$PROJECT" "$@"); }

stage_copy() {
    # A commit's files (HEAD unless SMOKE_REF says otherwise), not the checkout itself: other
    # sessions' uncommitted edits in the working tree are not what is being tested.
    WORK=$(mktemp -d /tmp/chainsights-compose.XXXXXX)
    git -C "$REPO" archive "${SMOKE_REF:-HEAD}" | tar -C "$WORK" -xf -
    local hex
    hex() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
    cat >"$WORK/.env" <<ENV
POSTGRES_PASSWORD=$(hex)
RABBITMQ_PASSWORD=$(hex)
ADMIN_PASSWORD=$(hex)
LEDGER_PUBLISHED_PORT=$LEDGER_PORT
EMAIL_TRANSPORT=file
EMAIL_OUTBOX_DIR=/app/var/emails
GOVERNANCE_SOURCE=file
GOVERNANCE_DATA=/app/data/governance.sample.json
LOG_LEVEL=INFO
ENV
    log "stack copy of ${SMOKE_REF:-HEAD} ($(git -C "$REPO" rev-parse --short "${SMOKE_REF:-HEAD}")) in $WORK"
}

build_app() {
    # SMOKE_BUILD=host (default): `docker build --network host`, which reaches the package
    # index wherever the host does. SMOKE_BUILD=compose: `docker-compose build`, as the README's
    # `up --build`, on the default bridge; it needs a way out from the bridge.
    local build=(build --network host -t chainsights-jobs:latest "$WORK")
    if [[ ${SMOKE_BUILD:-host} == compose ]]; then
        compose build >"$CACHE_DIR/logs/build-app.log" 2>&1
    else
        "$DOCKER" "${build[@]}" >"$CACHE_DIR/logs/build-app.log" 2>&1
    fi || { tail -n 40 "$CACHE_DIR/logs/build-app.log" >&2; return 1; }
}

wait_healthy() {
    local deadline=$((SECONDS + HEALTH_TIMEOUT)) pending
    while :; do
        pending=""
        for id in $(compose ps -q); do
            local name state health
            name=$("$DOCKER" inspect --format '{{index .Config.Labels "com.docker.compose.service"}}' "$id")
            state=$("$DOCKER" inspect --format '{{.State.Status}}' "$id")
            health=$("$DOCKER" inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
            if [[ $name == setup ]]; then
                [[ $state == exited ]] || pending+=" setup:$state"
            elif [[ $health != healthy ]]; then
                pending+=" $name:$state/$health"
            fi
        done
        [[ $(compose ps -q | wc -l) -ge 6 && -z "$pending" ]] && return 0
        ((SECONDS < deadline)) || { log "not healthy after ${HEALTH_TIMEOUT}s:$pending"; return 1; }
        sleep 3
    done
}

checks() {
    local setup_id code
    setup_id=$(compose ps -q setup)
    code=$("$DOCKER" inspect --format '{{.State.ExitCode}}' "$setup_id")
    log "check: setup exited $code; its last log lines:"
    "$DOCKER" logs --tail 3 "$setup_id" 2>&1 | sed 's/^/    /'
    [[ $code == 0 ]]

    log "check: DNS between services (from recalculator)"
    compose exec -T recalculator python -c 'import socket
for host in ("postgres", "rabbitmq", "job-ledger", "notifier", "cron"):
    print("    ", host, socket.gethostbyname(host))'

    log "check: published ledger port 127.0.0.1:$LEDGER_PORT/healthz"
    curl -fsS "http://127.0.0.1:$LEDGER_PORT/healthz" | head -c 300 | sed 's/^/    /'
    echo

    local rabbit_pass
    rabbit_pass=$(grep '^RABBITMQ_PASSWORD=' "$WORK/.env" | cut -d= -f2)
    log "check: published management port 127.0.0.1:15672 (versions, queues)"
    curl -fsS -u "chainsights:$rabbit_pass" http://127.0.0.1:15672/api/overview \
        | python3 -c 'import json,sys; o=json.load(sys.stdin); print("    rabbitmq", o["rabbitmq_version"], "erlang", o["erlang_version"])'
    compose exec -T rabbitmq rabbitmqctl -q list_queues name type consumers arguments \
        | sed 's/^/    /'

    log "check: inside the stand-ins"
    compose exec -T postgres pg_isready -U chainsights -d chainsights | sed 's/^/    /'
    compose exec -T postgres psql -U chainsights -d chainsights -Atc 'select version()' \
        | cut -c1-60 | sed 's/^/    /'
    compose exec -T postgres psql -U chainsights -d chainsights -Atc \
        "select nspname from pg_namespace where nspname not like 'pg_%' and nspname <> 'information_schema' order by 1" \
        | tr '\n' ' ' | sed 's/^/    schemas: /'
    echo
    compose exec -T rabbitmq rabbitmq-diagnostics -q check_port_connectivity | sed 's/^/    /'
    compose exec -T job-ledger python --version | sed 's/^/    app image: /'
    check_run
}

check_run() {
    # One run end to end: trigger in the worker's container, outcome through the ledger's
    # published port, the email in the notifier's volume.
    local answer job admin
    answer=$(compose exec -T recalculator recalculator trigger --wait 60)
    log "check: trigger answered: $answer"
    job=$(sed -n 's/.*accepted: job \([^ ]*\).*/\1/p' <<<"$answer")
    [[ -n "$job" ]]
    admin=$(grep '^ADMIN_PASSWORD=' "$WORK/.env" | cut -d= -f2)
    local deadline=$((SECONDS + 180)) outcome=""
    while ((SECONDS < deadline)); do
        outcome=$(curl -fsS -H "Authorization: Bearer $admin" \
            "http://127.0.0.1:$LEDGER_PORT/api/admin/job-logs?id=$job" \
            | python3 -c 'import json,sys
j=json.load(sys.stdin)["data"]; j=j[0] if isinstance(j, list) else j
print(j["outcome"], j["daosProcessed"], "/", j["daosTotal"],
      [(n["channel"], n["kind"], n["state"]) for n in j.get("notifications") or []])')
        [[ $outcome == completed* && $outcome == *email* ]] && break
        sleep 3
    done
    log "check: job $job via 127.0.0.1:$LEDGER_PORT: $outcome"
    [[ $outcome == completed* ]]
    log "check: emails volume"
    compose exec -T notifier sh -c 'ls -l /app/var/emails' | sed 's/^/    /'
}

remove_app_image() {
    # The image and its untagged build stage; vfs deletes file by file, so this takes a while.
    "$DOCKER" image rm chainsights-jobs:latest >/dev/null 2>&1 || true
    "$DOCKER" image prune -f >/dev/null 2>&1 || true
}

down() {
    [[ -n "$WORK" && -d "$WORK" ]] || return 0
    timed "down -v" compose down -v --remove-orphans || true
    timed "remove app image" remove_app_image
    rm -rf "$WORK"
    log "left behind: $("$DOCKER" ps -aq | wc -l) containers," \
        "$("$DOCKER" volume ls -q | wc -l) volumes," \
        "$("$DOCKER" network ls -q --filter name="$PROJECT" | wc -l) project networks," \
        "$("$DOCKER" images -q chainsights-jobs | wc -l) app images"
}

on_exit() {
    # On failure the stack's state and logs are printed before it is torn down.
    local rc=$?
    if [[ $rc != 0 && -n "$WORK" ]]; then
        log "smoke: FAIL (exit $rc); containers and their last log lines:"
        compose ps -a || true
        compose logs --no-color --tail 40 || true
    fi
    [[ ${KEEP_STACK:-0} == 1 ]] || down
}

main() {
    mkdir -p "$CACHE_DIR/logs"
    "$HERE/engine.sh" start
    timed "base images (stand-ins)" "$HERE/base-images.sh"
    stage_copy
    trap on_exit EXIT
    timed "docker build (app image)" build_app
    timed "docker-compose up -d" compose up -d --no-build
    timed "all services healthy" wait_healthy
    compose ps
    checks
    log "smoke: PASS"
    [[ ${KEEP_STACK:-0} != 1 ]] || log "stack kept: cd $WORK && $COMPOSE -p $PROJECT down -v"
}

main "$@"

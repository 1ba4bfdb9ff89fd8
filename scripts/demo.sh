#!/usr/bin/env bash
# `make demo`: the whole system on this machine without Docker, against local Postgres and
# RabbitMQ: migrate, import the sample DAOs, start the three services in the background,
# trigger one run over the sample data, wait for the ledger to report it finished, show it.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
RUN=var/run
LOG=var/log
mkdir -p "$RUN" "$LOG" var/emails

# Demo settings; anything already in the environment (or in .env) wins.
if [ -f .env ]; then set -a; . ./.env; set +a; fi
export ADMIN_PASSWORD="${ADMIN_PASSWORD:-demo-admin-password}"
export EMAIL_TRANSPORT="${EMAIL_TRANSPORT:-file}"
export EMAIL_OUTBOX_DIR="${EMAIL_OUTBOX_DIR:-$PWD/var/emails}"
export GOVERNANCE_SOURCE="${GOVERNANCE_SOURCE:-file}"
export GOVERNANCE_DATA="${GOVERNANCE_DATA:-$PWD/data/governance.sample.json}"
export DAO_TIMEOUT="${DAO_TIMEOUT:-10s}"
export LOG_FORMAT="${LOG_FORMAT:-text}"
export HTTP_PORT="${HTTP_PORT:-8080}"
export ADMIN_BASE_URL="${ADMIN_BASE_URL:-http://127.0.0.1:$HTTP_PORT}"
API="http://127.0.0.1:$HTTP_PORT"

bash scripts/demo-stop.sh --quiet || true

echo "== migrating the three schemas and importing the sample DAOs"
$BIN/recalculator migrate
$BIN/job-ledger migrate
$BIN/notifier migrate
$BIN/recalculator daos import data/daos.sample.json

start() { # name, command...
  local name=$1; shift
  nohup "$@" >"$LOG/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  echo "   started $name (pid $!, log $LOG/$name.log)"
}

echo "== starting job-ledger, notifier and the recalculator worker"
start job-ledger $BIN/job-ledger serve --host 127.0.0.1 --port "$HTTP_PORT"
start notifier $BIN/notifier serve --port "${NOTIFIER_PORT:-8081}"
start recalculator-worker $BIN/recalculator worker

wait_ready() { # url, name
  for _ in $(seq 1 60); do
    if curl -fs -o /dev/null "$1"; then return 0; fi
    if ! kill -0 "$(cat "$RUN/$2.pid")" 2>/dev/null; then
      echo "demo: $2 exited; the end of $LOG/$2.log:" >&2
      tail -5 "$LOG/$2.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "demo: $2 did not become ready at $1 within 30s; see $LOG/$2.log" >&2
  tail -5 "$LOG/$2.log" >&2
  exit 1
}
wait_ready "$API/readyz" job-ledger
wait_ready "http://127.0.0.1:${NOTIFIER_PORT:-8081}/readyz" notifier
wait_ready "http://127.0.0.1:${HEALTH_PORT:-8082}/readyz" recalculator-worker

since=$(date -u +%Y-%m-%dT%H:%M:%S)
echo "== triggering one run over the sample DAOs"
$BIN/recalculator trigger --trigger manual

echo "== waiting for the ledger to report the job finished"
row=""
for _ in $(seq 1 120); do
  row=$(curl -fsS -H "Authorization: Bearer $ADMIN_PASSWORD" "$API/api/admin/job-logs?limit=1" \
    | $BIN/python -c '
import json, sys
since = sys.argv[1]
jobs = [j for j in json.load(sys.stdin)["data"] if j["startedAt"][:19] >= since]
if jobs and jobs[0]["status"] != "running" and jobs[0].get("complete", True):
    print(json.dumps(jobs[0], indent=2))
' "$since") || true
  [ -n "$row" ] && break
  sleep 0.5
done
if [ -z "$row" ]; then
  echo "demo: the job did not finish within 60s; see $LOG/" >&2
  exit 1
fi
echo "$row"
job_id=$(echo "$row" | $BIN/python -c 'import json,sys; print(json.load(sys.stdin)["id"])')

echo "== waiting for the notifier to write the email"
for _ in $(seq 1 60); do
  ls var/emails/"$job_id"-* >/dev/null 2>&1 && break
  sleep 0.5
done
echo
echo "Emails written by the notifier (EMAIL_TRANSPORT=file):"
ls -1 "$EMAIL_OUTBOX_DIR"/"$job_id"-* 2>/dev/null || echo "  (none yet: see $LOG/notifier.log)"
echo
echo "Admin page:  $ADMIN_BASE_URL/admin/jobs/$job_id   (log in with ADMIN_PASSWORD=$ADMIN_PASSWORD)"
echo "API:         curl -H 'Authorization: Bearer $ADMIN_PASSWORD' '$API/api/admin/job-logs?id=$job_id'"
echo "Stop it all: make demo-stop"

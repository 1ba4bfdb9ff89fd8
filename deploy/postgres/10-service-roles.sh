#!/usr/bin/env bash
# Runs once, when the postgres container starts on an empty data volume (the official image's
# /docker-entrypoint-initdb.d): one login role per service, owning its own schema and nothing
# else. The roles' passwords come from the Docker secrets mounted into this container.
#
# role        schema (as the services name them)   password file
# recalculator  RECALC_SCHEMA   (recalc)             /run/secrets/recalculator_db_password
# job_ledger    LEDGER_SCHEMA   (ledger)             /run/secrets/job_ledger_db_password
# notifier      NOTIFIER_SCHEMA (notifier)           /run/secrets/notifier_db_password
#
# Nobody but the superuser may connect to the database or create in it; each role may connect
# and use its schema, and sees no other. A password reaches psql through its environment and
# is quoted by psql, so any text works; it is never printed.
set -Eeuo pipefail

secret() {
    # The file's text with one trailing line break removed, as the services read it.
    local text=""
    IFS= read -r -d '' text <"$1" || true
    text=${text%$'\n'}
    printf '%s' "${text%$'\r'}"
}

psql_db=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}")

"${psql_db[@]}" --set db="${POSTGRES_DB:-postgres}" <<'SQL'
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL

service_role() {
    local role=$1 schema=$2 password_file=$3
    # The password goes through the environment (psql's \getenv), never a command line.
    SERVICE_ROLE_PASSWORD=$(secret "$password_file") "${psql_db[@]}" \
        --set db="${POSTGRES_DB:-postgres}" --set role="$role" --set schema="$schema" <<'SQL'
\getenv password SERVICE_ROLE_PASSWORD
CREATE ROLE :"role" LOGIN PASSWORD :'password';
GRANT CONNECT ON DATABASE :"db" TO :"role";
CREATE SCHEMA :"schema" AUTHORIZATION :"role";
SQL
    echo "service role $role owns schema $schema"
}

service_role recalculator "${RECALC_SCHEMA:-recalc}" /run/secrets/recalculator_db_password
service_role job_ledger "${LEDGER_SCHEMA:-ledger}" /run/secrets/job_ledger_db_password
service_role notifier "${NOTIFIER_SCHEMA:-notifier}" /run/secrets/notifier_db_password

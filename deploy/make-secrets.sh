#!/usr/bin/env sh
# Creates the secrets docker-compose.yml hands its containers, as files in ./secrets/ (next to
# docker-compose.yml): a random password for every account, an empty file for every optional
# secret (fill it in to use the feature). A file that exists is never touched, so running this
# again is safe and a password you set yourself stays.
#
#   deploy/make-secrets.sh            # then: docker compose up -d --build
#
# Each file reaches only the containers that use it (docker-compose.yml, `secrets:`), mounted
# at /run/secrets/<name>. The directory is readable by you only; the files are world-readable
# because compose mounts them as they are and the containers read them as their own users.
set -eu
cd "$(dirname "$0")/.."
umask 077
mkdir -p secrets
chmod 700 secrets

random() {
    # 24 random bytes as 32 URL-safe characters: any password works, this one is easy to paste.
    head -c 24 /dev/urandom | base64 | tr '+/' '-_'
}

for name in postgres_password \
    recalculator_db_password job_ledger_db_password notifier_db_password \
    rabbitmq_admin_password \
    recalculator_amqp_password job_ledger_amqp_password notifier_amqp_password \
    admin_password session_secret; do
    if [ ! -e "secrets/$name" ]; then
        random >"secrets/$name"
        echo "secrets/$name: generated"
    fi
done
# Optional: empty means unset (no Resend, no Slack, no hub key, no revalidation secret, no
# named API tokens).
for name in resend_api_key slack_webhook_url snapshot_api_key cache_revalidate_secret \
    admin_api_tokens; do
    [ -e "secrets/$name" ] || { : >"secrets/$name"; echo "secrets/$name: empty (optional)"; }
done
chmod 644 secrets/*

#!/usr/bin/env bash
# Make sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) answer.
# Starts the local services when they are installed but down; on a Debian machine without
# them, as root, installs Debian's postgresql and rabbitmq-server first; otherwise says what to do.
set -euo pipefail

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # port, name, seconds
  for _ in $(seq 1 "$3"); do answers "$1" && return 0; sleep 1; done
  echo "ensure-services: $2 did not come up on 127.0.0.1:$1 within $3s" >&2
  return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

ensure_postgres() {
  answers 5432 && return 0
  if ! command -v pg_ctlcluster >/dev/null; then
    if can_install; then
      echo "ensure-services: installing Debian's postgresql"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      echo "ensure-services: PostgreSQL is not running on 127.0.0.1:5432 and not installed." >&2
      echo "  Install PostgreSQL 15+ (trust auth for 127.0.0.1, database 'test') or set DATABASE_URL." >&2
      return 1
    fi
  fi
  version=$(ls /etc/postgresql | sort -n | tail -1)
  conf="/etc/postgresql/$version/main"
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf" 2>/dev/null; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf" 2>/dev/null || true
  fi
  echo "ensure-services: starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for 5432 PostgreSQL 60
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
}

ensure_rabbitmq() {
  answers 5672 && return 0
  if ! command -v rabbitmq-server >/dev/null; then
    if can_install; then
      echo "ensure-services: installing Debian's rabbitmq-server"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    else
      echo "ensure-services: RabbitMQ is not running on 127.0.0.1:5672 and not installed." >&2
      echo "  Install RabbitMQ 3.10+ (guest/guest on localhost) or set AMQP_URL." >&2
      return 1
    fi
  fi
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_for 5672 RabbitMQ 90
  # The port opens before the broker accepts work; wait until it says it is running.
  for _ in $(seq 1 60); do rabbitmqctl -q await_startup >/dev/null 2>&1 && return 0; sleep 1; done
}

ensure_postgres
ensure_rabbitmq
echo "ensure-services: PostgreSQL and RabbitMQ answer"

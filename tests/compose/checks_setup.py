"""What the compose scenario checks once the stack is up: what each container holds, the
accounts and their rights, RabbitMQ's version and queues (see tests/compose/scenario.py)."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

from tests.compose.stack import Stack, check, log

SAMPLE_DAOS = 12
SECRETS_OF = {
    "postgres": {
        "postgres_password",
        "recalculator_db_password",
        "job_ledger_db_password",
        "notifier_db_password",
    },
    "rabbitmq": set(),
    "broker-users": {
        "rabbitmq_admin_password",
        "recalculator_amqp_password",
        "job_ledger_amqp_password",
        "notifier_amqp_password",
    },
    "setup": {"recalculator_db_password"},
    "recalculator": {
        "recalculator_db_password",
        "recalculator_amqp_password",
        "snapshot_api_key",
        "cache_revalidate_secret",
    },
    "cron": {"recalculator_amqp_password"},
    "job-ledger": {
        "job_ledger_db_password",
        "job_ledger_amqp_password",
        "admin_password",
        "admin_api_tokens",
        "session_secret",
    },
    "notifier": {
        "notifier_db_password",
        "notifier_amqp_password",
        "resend_api_key",
        "slack_webhook_url",
    },
}
GRACE = {
    "recalculator": 60,
    "postgres": 60,
    "rabbitmq": 60,
    "job-ledger": 30,
    "notifier": 30,
    "cron": 20,
}
SECRET_FILES = sorted(set().union(*SECRETS_OF.values()))

# Run in a service's container with its own settings: what its accounts may not do.
PROBE_SCHEMA = """
import asyncio, asyncpg
from chassis.settings import BaseServiceSettings, load_settings
async def main():
    s = load_settings(BaseServiceSettings)
    conn = await asyncpg.connect(s.database_url.get_secret_value())
    print(await conn.fetchval("select current_user"))
    for sql in ("select count(*) from ledger.job_logs", "create schema intruder"):
        try:
            await conn.execute(sql)
            print("allowed:", sql)
        except asyncpg.InsufficientPrivilegeError:
            print("refused:", sql)
asyncio.run(main())
"""
PROBE_BROKER = """
import asyncio, aio_pika, aiormq
from chassis.settings import BaseServiceSettings, load_settings
async def main():
    s = load_settings(BaseServiceSettings)
    conn = await aio_pika.connect(s.amqp_url.get_secret_value())
    for what in ("get job-ledger.dead", "declare intruder"):
        channel = await conn.channel()
        try:
            if what.startswith("get"):
                await (await channel.get_queue("job-ledger.dead", ensure=False)).get(fail=False)
            else:
                await channel.declare_queue("intruder", durable=True)
            print("allowed:", what)
        except aiormq.exceptions.ChannelAccessRefused:
            print("refused:", what)
    await conn.close()
asyncio.run(main())
"""


def first_start(stack: Stack) -> None:
    """Setup seeded the registry; each container holds what the README says; accounts, rights,
    versions and queues are those the deployment promises."""
    setup_log = stack.compose("logs", "--no-color", "setup").stdout
    check(
        f"imported {SAMPLE_DAOS} DAOs" in setup_log and f"{SAMPLE_DAOS} new" in setup_log,
        f"setup imported the {SAMPLE_DAOS} sample DAOs into the empty registry",
    )
    containers(stack)
    versions_and_queues(stack)
    accounts(stack)


def containers(stack: Stack) -> None:
    secrets = {name: stack.secret(name) for name in SECRET_FILES}
    for service, expected in SECRETS_OF.items():
        info = stack.inspect(service)
        mounted = {
            m["Destination"].removeprefix("/run/secrets/")
            for m in info["Mounts"]
            if m["Destination"].startswith("/run/secrets/")
        }
        check(mounted == expected, f"{service} holds only its secrets: {sorted(mounted)}")
        env = "\n".join(info["Config"]["Env"])
        leaked = [name for name, value in secrets.items() if len(value) > 4 and value in env]
        check(not leaked, f"{service}: no secret in its environment")
        host = info["HostConfig"]
        check(
            host["Init"] is True
            and host["LogConfig"]["Type"] == "json-file"
            and host["LogConfig"]["Config"].get("max-size") == "10m",
            f"{service}: init, json-file logs rotated at 10m",
        )
        if service in GRACE:
            check(
                info["Config"].get("StopTimeout") == GRACE[service],
                f"{service}: stop grace {GRACE[service]}s",
            )
    ports = stack.inspect("rabbitmq")["HostConfig"]["PortBindings"]
    check(
        ports == {"15672/tcp": [{"HostIp": "127.0.0.1", "HostPort": "15672"}]},
        f"the management UI is published on 127.0.0.1 only: {ports}",
    )


def management(stack: Stack, path: str, user: str = "admin", password: str | None = None) -> Any:
    token = base64.b64encode(
        f"{user}:{password or stack.secret('rabbitmq_admin_password')}".encode()
    ).decode()
    request = urllib.request.Request(
        f"http://127.0.0.1:15672{path}", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        return json.loads(answer.read())


def versions_and_queues(stack: Stack) -> None:
    overview = management(stack, "/api/overview")
    check(
        overview["rabbitmq_version"].startswith("4.0"), f"RabbitMQ {overview['rabbitmq_version']}"
    )
    version = stack.psql("show server_version")
    check(version.startswith("17"), f"PostgreSQL {version}")
    queues = {q["name"]: q for q in management(stack, "/api/queues/%2F")}
    log(
        "  queues: "
        + "; ".join(f"{name} {q['type']} {q['arguments']}" for name, q in sorted(queues.items()))
    )
    main_queues = ("job-ledger.events", "notifier.events", "recalculator.commands")
    check(
        len(queues) == 6 and all(q["durable"] and not q["auto_delete"] for q in queues.values()),
        "six queues on the broker, all durable (4.0 deprecates transient non-exclusive ones)",
    )
    check(
        all(
            queues[name]["type"] == "quorum" and queues[name]["durable"]
            for name in (
                *main_queues,
                "job-ledger.dead",
                "notifier.dead",
                "recalculator.commands.dead",
            )
        ),
        "the six queues are durable quorum queues",
    )
    check(
        all(queues[name]["arguments"].get("x-delivery-limit") == 50 for name in main_queues),
        "each subscribed queue has its own x-delivery-limit of 50 (not 4.0's default 20)",
    )
    check(
        queues["recalculator.commands"]["arguments"].get("x-single-active-consumer") is True,
        "the commands queue has a single active consumer",
    )
    # Consumers from the node itself: the 4.x management image collects no queue statistics.
    listing = stack.exec("rabbitmq", "rabbitmqctl", "-q", "list_queues", "name", "consumers")
    counts = dict(line.split("\t")[:2] for line in listing.splitlines() if "\t" in line)
    consumers = {name: int(counts.get(name, "0")) for name in main_queues}
    check(all(count >= 1 for count in consumers.values()), f"consumers: {consumers}")


def accounts(stack: Stack) -> None:
    users = {u["name"] for u in management(stack, "/api/users")}
    check(
        users == {"admin", "recalculator", "job-ledger", "notifier"},
        f"RabbitMQ users: {sorted(users)} (no guest)",
    )
    for service in ("recalculator", "notifier"):
        out = stack.exec(service, "python", "-c", PROBE_SCHEMA)
        check(
            out.split()[0] == service and out.count("refused:") == 2,
            f"{service}'s Postgres role cannot read the ledger's schema nor create one:"
            f" {out.strip().splitlines()}",
        )
    out = stack.exec("notifier", "python", "-c", PROBE_BROKER)
    check(
        out.count("refused:") == 2,
        f"the notifier's RabbitMQ user cannot read the ledger's dead letters nor declare"
        f" another queue: {out.strip().splitlines()}",
    )

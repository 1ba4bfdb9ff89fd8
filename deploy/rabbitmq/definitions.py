"""Writes RabbitMQ's definitions for the compose deployment: the vhost, an administrator for the
management UI, and one user per service whose permissions cover the system's topology only.

    python definitions.py OUTPUT.json

Run by the one-shot ``broker-users`` container (the application's image, so the names come from
the same settings the services read: EVENTS_EXCHANGE, LEDGER_QUEUE, NOTIFIER_QUEUE,
COMMANDS_QUEUE). Passwords are read from the Docker secrets named below and stored salted and
hashed (RabbitMQ's ``rabbit_password_hashing_sha256``); none is printed. RabbitMQ imports the
file at every start (``load_definitions``, deploy/rabbitmq/30-definitions.conf).

What each service user may do, and why no less:

- configure: the exchange, every queue of the topology and its dead-letter queue. Every service
  declares the whole topology at start (so no event is published before its queues exist),
  and declaring needs ``configure`` on each name, even when it exists already.
- write: the exchange (publishing events; binding needs ``read`` on it too), ``amq.default``
  (commands go to their queue by name, dead letters to theirs), every bound queue (binding a
  queue needs ``write`` on it).
- read: the exchange, every bound queue (declaring a queue with a dead-letter exchange needs
  ``read`` on the queue), and the service's own dead-letter queue (browsing and replaying it).
  Another service's dead-letter queue is not readable; nothing outside the topology is
  anything. The recalculator's ``trigger --wait`` also gets its exclusive reply queue, which
  aio-pika names ``amq_<32 hex digits>``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from recalculator.config import Settings

ADMIN_USER = os.environ.get("RABBITMQ_ADMIN_USER", "admin")
SECRETS = Path(os.environ.get("SECRETS_DIR", "/run/secrets"))
REPLY_QUEUES = r"^amq_[0-9a-f]{32}$"  # aio-pika names an unnamed queue amq_<uuid4 hex>


def password_hash(password: str) -> str:
    """RabbitMQ's salted SHA-256: base64 of a 4-byte salt and sha256(salt + password)."""
    salt = secrets.token_bytes(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def read_secret(name: str) -> str:
    """The secret file's text, one trailing line break removed (as the services read it)."""
    text = (SECRETS / name).read_text(encoding="utf-8")
    return text.removesuffix("\n").removesuffix("\r")


def anchored(names: list[str]) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def service_permissions(settings: Settings) -> dict[str, dict[str, str]]:
    """configure / write / read of each service user, by user name."""
    topology = settings.topology
    bound = [spec.name for spec in topology.queues]
    dead = [spec.dead_letter_queue for spec in topology.queues]
    own = {
        "recalculator": settings.commands_queue,
        "job-ledger": settings.ledger_queue,
        "notifier": settings.notifier_queue,
    }
    permissions = {}
    for user, queue in own.items():
        extra = [REPLY_QUEUES] if user == "recalculator" else []
        reads = [topology.exchange, *bound, topology.queue(queue).dead_letter_queue]
        permissions[user] = {
            "configure": "|".join([anchored([topology.exchange, *bound, *dead]), *extra]),
            "write": "|".join([anchored([topology.exchange, "amq.default", *bound]), *extra]),
            "read": "|".join([anchored(reads), *extra]),
        }
    return permissions


def definitions(settings: Settings) -> dict[str, Any]:
    """The definitions document: vhost ``/``, the administrator, the three service users."""
    users = [
        {
            "name": ADMIN_USER,
            "password_hash": password_hash(read_secret("rabbitmq_admin_password")),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": ["administrator"],
            "limits": {},
        }
    ]
    permissions = [
        {"user": ADMIN_USER, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
    ]
    for user, rights in service_permissions(settings).items():
        secret = user.replace("-", "_") + "_amqp_password"
        users.append(
            {
                "name": user,
                "password_hash": password_hash(read_secret(secret)),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
                "limits": {},
            }
        )
        permissions.append({"user": user, "vhost": "/", **rights})
    return {"users": users, "vhosts": [{"name": "/"}], "permissions": permissions}


def main(argv: list[str]) -> int:
    """Writes the definitions to ``argv[1]`` (readable by the broker); returns the exit code."""
    if len(argv) != 2:
        print("usage: definitions.py OUTPUT.json", file=sys.stderr)
        return 2
    settings = Settings()
    document = definitions(settings)
    output = Path(argv[1])
    staged = output.with_suffix(".tmp")
    staged.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    staged.chmod(0o644)  # the broker reads it as its own user; only it and this mount the volume
    staged.replace(output)
    names = ", ".join(user["name"] for user in document["users"])
    print(f"wrote {output}: users {names}; rights on the topology of {settings.events_exchange}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Where the test suite finds RabbitMQ and Postgres.

From testcontainers when a Docker engine answers, otherwise from ``AMQP_URL`` and
``DATABASE_URL``, otherwise the local defaults (the project's machines run both services).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class ServiceUrls:
    database_url: str
    amqp_url: str
    source: str


def docker_engine_answers() -> bool:
    """True when a Docker engine (not only the client) answers a ping within two seconds."""
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def service_urls() -> Iterator[ServiceUrls]:
    """Yield the URLs of a Postgres and a RabbitMQ for this test session."""
    if os.environ.get("CHAINSIGHTS_TEST_CONTAINERS", "auto") != "never" and docker_engine_answers():
        from testcontainers.postgres import PostgresContainer
        from testcontainers.rabbitmq import RabbitMqContainer

        with (
            PostgresContainer("postgres:15-alpine", driver=None) as pg,
            RabbitMqContainer("rabbitmq:3.10-management") as mq,
        ):
            amqp = f"amqp://guest:guest@{mq.get_container_host_ip()}:{mq.get_exposed_port(5672)}/"
            yield ServiceUrls(pg.get_connection_url(), amqp, "testcontainers")
        return
    yield ServiceUrls(
        os.environ.get("DATABASE_URL", LOCAL_DATABASE_URL),
        os.environ.get("AMQP_URL", LOCAL_AMQP_URL),
        "environment" if "DATABASE_URL" in os.environ else "local services",
    )

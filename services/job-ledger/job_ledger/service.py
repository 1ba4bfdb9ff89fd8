"""The running ledger: what ``serve --role`` runs, through the chassis runner.

:func:`serve` is what ``job-ledger serve`` does once migrated and bootstrapped: the chassis
runner (:func:`chassis.runner.serve`) serves HTTP, starts the role's parts in this order and
stops them in the reverse one on SIGTERM or on the first crash:

| part         | runs                                           | on stop                         |
|--------------|------------------------------------------------|---------------------------------|
| outbox-relay | publishes what the watchdog decided            | publishes what it can, 5 s      |
| watchdog     | abandons silent jobs, records missed slots     | cancelled                       |
| retention    | prunes what outlived its retention, hourly     | cancelled                       |
| figures      | reads the operator's figures for ``/metrics``  | cancelled                       |
| consumer     | folds the ledger's queue (re-attached if lost) | commits the batch in hand, 15 s |

| role   | parts                        | HTTP                                          |
|--------|------------------------------|-----------------------------------------------|
| `all`  | all of them                  | API, admin pages, health, metrics, OpenAPI    |
| `api`  | none                         | API, admin pages, health, metrics, OpenAPI    |
| `fold` | all of them                  | ``/healthz``, ``/readyz``, ``/metrics`` only  |

An ``api`` and a ``fold`` process on the same schema and broker names together do what one
``all`` does, and the fold's batches then never hold up the API's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from starlette.applications import Starlette

from chassis.database import migrate
from chassis.health import ReadinessCheck, broker_check, database_check, health_app
from chassis.outbox import MIGRATIONS as OUTBOX_MIGRATIONS
from chassis.retention import retention_component
from chassis.runner import Component, relay_component
from chassis.runner import serve as run_components
from chassis.settings import SettingsError
from job_ledger.bootstrap import Ledger
from job_ledger.config import Settings
from job_ledger.migrations import MIGRATIONS
from job_ledger.operator_metrics import FiguresRefresher
from job_ledger.retention import ledger_retention

ROLES = ("all", "api", "fold")
"""What ``serve --role`` may run: everything, the HTTP API alone, or the fold alone."""
API_ROLES = ("all", "api")
FOLD_ROLES = ("all", "fold")

DRAIN_TIMEOUT_S = 15.0
"""How long the consumer's batch in hand may take to commit at stop."""


async def apply_migrations(settings: Settings) -> list[str]:
    """Apply the outbox's then the ledger's migrations; return what ran.

    Raises ``DatabaseUnavailable`` or ``MigrationError``.
    """
    return await migrate(
        settings.database_url, settings.ledger_schema, [OUTBOX_MIGRATIONS, MIGRATIONS]
    )


def fold_components(ledger: Ledger) -> list[Component]:
    """The fold's parts in the order they start (see the module docstring)."""
    settings = ledger.settings
    figures = FiguresRefresher(
        ledger.pool, ledger.connection, ledger.topology, interval=settings.ledger_metrics_interval
    )
    return [
        relay_component(ledger.relay),
        Component("watchdog", ledger.watchdog.run),
        retention_component(ledger_retention(settings, ledger.pool)),
        Component("figures", figures.run, start=figures.refresh),
        Component(
            "consumer",
            ledger.consumer.run,
            start=ledger.consumer.start,
            stop=ledger.consumer.stop,
            stop_timeout_s=DRAIN_TIMEOUT_S,
            ready=ledger.consumer.problem,
        ),
    ]


def admin_password(settings: Settings) -> str:
    """``ADMIN_PASSWORD``; raises ``SettingsError`` when it is unset (the API never serves open)."""
    if settings.admin_password is None:
        raise SettingsError(
            "invalid configuration:\n  ADMIN_PASSWORD: is required but not set"
            " (it protects the admin API; the ledger does not serve without it)"
        )
    return settings.admin_password.get_secret_value()


async def web_app_builder(
    ledger: Ledger, password: str
) -> Callable[[Mapping[str, ReadinessCheck]], Starlette]:
    """What builds the API and admin pages from the readiness checks (imported here: the
    other commands and the fold need none of it)."""
    from job_ledger.web.app import create_app
    from job_ledger.web.session_store import seal_password

    settings = ledger.settings
    session_secret = await asyncio.to_thread(settings.session_secret_value)
    await seal_password(ledger.pool, password, ledger.clock())

    def build(readiness: Mapping[str, ReadinessCheck]) -> Starlette:
        return create_app(
            pool=ledger.pool,
            admin_password=password,
            request_run=ledger.request_run,
            readiness=readiness,
            session_secret=session_secret,
            admin_base_url=settings.admin_base_url,
            job_name=settings.job_name,
            job_schedule=settings.job_schedule,
            admin_timezone=settings.admin_timezone,
            clock=ledger.clock,
            api_tokens=settings.api_tokens,
            trusted_proxies=settings.trusted_proxy_networks,
        )

    return build


async def serve(
    ledger: Ledger, role: str, *, host: str, port: int, stop: asyncio.Event | None = None
) -> int:
    """Run ``role`` (see :data:`ROLES`) until ``stop`` (default: SIGTERM or SIGINT), then drain.

    Returns 0 after a clean stop, 1 if a part stopped by itself. Raises ``SettingsError``
    when a role that serves the API has no ``ADMIN_PASSWORD``, ``CannotServe`` when the port
    cannot be bound.
    """
    checks = {"database": database_check(ledger.pool), "broker": broker_check(ledger.connection)}
    app: Callable[[Mapping[str, ReadinessCheck]], Starlette] = health_app
    if role in API_ROLES:
        app = await web_app_builder(ledger, admin_password(ledger.settings))
    components = fold_components(ledger) if role in FOLD_ROLES else []
    return await run_components(components, checks=checks, host=host, port=port, stop=stop, app=app)

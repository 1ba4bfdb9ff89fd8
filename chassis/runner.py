"""One way to run a service: its command line, its start-up errors, its parts and their stop.

:func:`main` is a service's ``__main__``: it parses the arguments, reads the settings, sets up
logging and runs the chosen command. Whatever stops a start ends as ONE line on stderr,
``prog: …``, and exit code 2, never a traceback and never a password:

| error                                                    | line                        |
|----------------------------------------------------------|-----------------------------|
| :class:`~chassis.settings.SettingsError`                 | every bad variable, by name |
| :class:`~chassis.database.DatabaseUnavailable` (also a   | where it tried, redacted    |
| malformed ``DATABASE_URL``), :class:`BrokerUnavailable`, |                             |
| :class:`~chassis.migrations.MigrationError`              |                             |
| :class:`~chassis.health.CannotServe` (a taken port)      | the address and the error   |
| :class:`UsageError` and the service's ``usage_errors``   | the message                 |

Anything else is a bug, not bad input: it propagates with its traceback (exit code 1), which
is why ``usage_errors`` must name the service's own exceptions, never a built-in one such as
``ValueError``. Every command line also answers ``--version`` (``prog 0.1.0``: the version of
the installed distribution that provides the ``prog`` command).

:func:`serve` runs a service's :class:`Component` s: it serves ``/healthz``, ``/readyz`` (the
service's checks and each component's) and ``/metrics``, starts the components in the order
given, waits for SIGTERM or SIGINT or for the first component to stop by itself (a crash),
then stops them in the reverse order, each within its timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from starlette.applications import Starlette

from chassis.broker import BrokerUnavailable
from chassis.database import DatabaseUnavailable
from chassis.health import CannotServe, ReadinessCheck, bound_port, health_app, serve_http
from chassis.lifecycle import stop_event_on_signals
from chassis.logs import configure_logging
from chassis.migrations import MigrationError
from chassis.outbox import OutboxRelay
from chassis.retry import describe
from chassis.settings import BaseServiceSettings, SettingsError, load_settings

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT", bound=BaseServiceSettings)

EXIT_OK = 0
EXIT_CRASHED = 1
EXIT_CANNOT_START = 2
EXIT_INTERRUPTED = 130

STOP_SLACK_S = 5.0
"""How much longer than its own timeout a component's stop may take before it is cancelled."""


class UsageError(Exception):
    """Bad command-line input; reported as ``prog: error: …``, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (a :class:`UsageError`), not usage text."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def package_version(prog: str) -> str:
    """The version of the installed distribution that provides the ``prog`` command (its
    console script); ``unknown`` when none is installed."""
    scripts = importlib.metadata.entry_points(group="console_scripts", name=prog)
    for name in [script.dist.name for script in scripts if script.dist is not None]:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return "unknown"


class _VersionAction(argparse.Action):
    """``--version``: print ``prog <version>`` and exit 0 (the version looked up only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        print(f"{parser.prog} {package_version(parser.prog)}")
        parser.exit()


def add_version_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give ``parser`` a ``--version`` option (once); returns ``parser``."""
    if "--version" not in parser._option_string_actions:
        parser.add_argument(
            "--version", action=_VersionAction, help="print the program's version and exit"
        )
    return parser


START_ERRORS: tuple[type[Exception], ...] = (
    SettingsError,
    DatabaseUnavailable,
    BrokerUnavailable,
    MigrationError,
    CannotServe,
)
"""What stops a start: reported as one line and exit code 2."""


def one_line(exc: BaseException) -> str:
    """``exc``'s message on one line (a settings error lists its variables after a colon)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return " ".join([lines[0], "; ".join(lines[1:])]).strip()


def main(
    prog: str,
    parser: argparse.ArgumentParser,
    settings_class: type[SettingsT],
    command: Callable[[argparse.Namespace, SettingsT], Coroutine[Any, Any, int | None]],
    argv: Sequence[str] | None = None,
    *,
    usage_errors: tuple[type[Exception], ...] = (),
) -> int:
    """Parse ``argv``, read ``settings_class`` and run ``command``; return the exit code.

    ``command``'s own code (None is 0); 2 for a start-up error (the module docstring's table,
    and ``usage_errors``: the service's own exceptions for input it refuses), 130 on Ctrl-C.
    An error of any other kind is a bug: it propagates with its traceback. ``--version`` is
    added to ``parser``. Raises ``TypeError`` if ``usage_errors`` names a built-in exception.
    """
    _check_usage_errors(usage_errors)
    add_version_option(parser)
    try:
        args = parser.parse_args(argv)
        settings = load_settings(settings_class)
    except UsageError as exc:
        return _fail(f"{prog}: error: {exc}")
    except SettingsError as exc:
        return _fail(f"{prog}: {one_line(exc)}")
    configure_logging(settings.log_level, settings.log_format)
    try:
        code = asyncio.run(command(args, settings))
    except (*START_ERRORS, *usage_errors) as exc:
        return _fail(f"{prog}: {one_line(exc)}")
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK if code is None else code


def _check_usage_errors(usage_errors: tuple[type[Exception], ...]) -> None:
    """Refuse a built-in exception as a usage error: it would report bugs as bad input."""
    broad = [e.__name__ for e in usage_errors if e.__module__ == "builtins"]
    if broad:
        raise TypeError(
            f"usage_errors must be the service's own exceptions, not {', '.join(broad)}"
        )


def _fail(line: str) -> int:
    print(line, file=sys.stderr)
    return EXIT_CANNOT_START


@dataclass(frozen=True)
class Component:
    """One long-running part of a service, as :func:`serve` runs it.

    ``start`` (optional) is awaited before the next component starts: what it raises stops the
    start. ``run`` then runs as a task until stopped; should it return or raise before, the
    service stops. ``stop(timeout_s)`` (optional) finishes the work in hand within
    ``stop_timeout_s``; ``run`` is cancelled after it, if still running. ``ready`` (optional)
    is its readiness check on ``/readyz``, under ``name``.
    """

    name: str
    run: Callable[[], Awaitable[object]]
    start: Callable[[], Awaitable[object]] | None = None
    stop: Callable[[float], Awaitable[object]] | None = None
    stop_timeout_s: float = 10.0
    ready: ReadinessCheck | None = None


def relay_component(relay: OutboxRelay, stop_timeout_s: float = 5.0) -> Component:
    """The outbox relay as a component: at stop it publishes what it can beside the running
    relay (cancelling it mid-batch would publish that batch twice), then is cancelled."""

    async def drain(timeout_s: float) -> None:
        left = await relay.drain(timeout_s)
        if left:
            log.warning("%d events stay in the outbox; they go out at the next start", left)

    return Component("outbox-relay", relay.run, stop=drain, stop_timeout_s=stop_timeout_s)


@dataclass
class Serving:
    """What :func:`serve` hands ``on_ready``: the bound HTTP port."""

    port: int


async def serve(
    components: Sequence[Component],
    *,
    checks: Mapping[str, ReadinessCheck],
    host: str,
    port: int,
    stop: asyncio.Event | None = None,
    app: Callable[[Mapping[str, ReadinessCheck]], Starlette] = health_app,
    on_ready: Callable[[Serving], None] = lambda _: None,
) -> int:
    """Run ``components`` until ``stop`` (default: SIGTERM or SIGINT) or a crash; then stop.

    ``app`` builds the HTTP application from the readiness checks (the service's ``checks``
    and every component's). Returns 0 after a clean stop, 1 if a component stopped by itself.
    Raises :class:`CannotServe` if the HTTP server cannot start, and whatever a component's
    ``start`` raised (the components started before it are stopped first).
    """
    stop = stop_event_on_signals() if stop is None else stop
    readiness = dict(checks)
    readiness.update({c.name: c.ready for c in components if c.ready is not None})
    async with serve_http(app(readiness), host, port) as server:
        serving = Serving(bound_port(server))
        async with _running(components) as tasks:
            log.info("ready; HTTP on %s:%d", host, serving.port)
            on_ready(serving)
            stopper = asyncio.create_task(stop.wait(), name="stop")
            done, _ = await asyncio.wait(
                [stopper, *tasks.values()], return_when=asyncio.FIRST_COMPLETED
            )
            stopper.cancel()
            crashed = [name for name, task in tasks.items() if task in done]
            for name in crashed:
                error = None if tasks[name].cancelled() else tasks[name].exception()
                log.error("%s stopped by itself: %s", name, describe(error) if error else "done")
            log.info("stopping: draining %s", ", ".join(reversed(tasks)) or "nothing")
    log.info("stopped")
    return EXIT_CRASHED if crashed else EXIT_OK


@contextlib.asynccontextmanager
async def _running(components: Sequence[Component]) -> AsyncIterator[dict[str, asyncio.Task[None]]]:
    """Start ``components`` in order; on exit stop the started ones in the reverse order."""
    started: list[tuple[Component, asyncio.Task[None]]] = []
    try:
        for component in components:
            if component.start is not None:
                await component.start()
            task = asyncio.create_task(_as_coroutine(component.run), name=component.name)
            started.append((component, task))
        yield {component.name: task for component, task in started}
    finally:
        for component, task in reversed(started):
            await _stop(component, task)


async def _as_coroutine(run: Callable[[], Awaitable[object]]) -> None:
    await run()


async def _stop(component: Component, task: asyncio.Task[None]) -> None:
    """Stop ``component`` gracefully within its timeout, then cancel its task; never raises
    but for cancellation."""
    if component.stop is not None:
        bound = component.stop_timeout_s + STOP_SLACK_S
        try:
            await asyncio.wait_for(component.stop(component.stop_timeout_s), bound)
        except TimeoutError:
            log.warning("%s did not stop within %.0fs; cancelling it", component.name, bound)
        except Exception:
            log.exception("stopping %s failed", component.name)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        try:
            await task
        except Exception as exc:
            if not task.cancelled():
                log.debug("%s had stopped with %s", component.name, describe(exc))

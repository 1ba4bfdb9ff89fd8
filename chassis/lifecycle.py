"""Process lifecycle: SIGTERM and SIGINT ask a service to drain and stop, not to die mid-commit."""

from __future__ import annotations

import asyncio
import logging
import signal

log = logging.getLogger(__name__)


def stop_event_on_signals() -> asyncio.Event:
    """Return an event set by the first SIGTERM or SIGINT; a second one stops at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("second %s: exiting without draining", sig.name)
            raise SystemExit(1)
        log.info("%s received: draining in-flight work, then stopping", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)
    return stop

"""A constant-rate HTTP load on loopback, as wrk2 makes it (Debian's wrk cannot hold a rate).

``python -m bench.constant_rate --url URL --rate R --seconds S --token T --out FILE`` sends
``GET URL`` at ``R`` requests per second for at most ``S`` seconds (``R × S`` requests at
most), each at its scheduled moment whether or not the earlier ones were answered, and writes
one latency per answered request to ``FILE`` (JSON: ``{"latencies_ms": […], "errors":
{"HTTP 503": n, …}}``). A latency is counted from the moment the request was due, not from
when it left, so a server that stalls is charged for the requests it held up (no coordinated
omission). SIGTERM ends the schedule early; the requests already sent are still waited for (up
to the request timeout). With ``--started FILE`` the file is created as the first request is
due.

Only loopback URLs are accepted: this is a benchmark of our own server, not a load tool.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

from tests.harness.processes import ServiceProcess

MAX_SECONDS = 600
MAX_RATE = 5_000
REQUEST_TIMEOUT_S = 10.0


@dataclass
class LoadResult:
    """What one load measured: each answered request's latency in ms, and the failures."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    """How many requests failed, by HTTP status or exception name."""

    def failed(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def check_loopback(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is http(s) to a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in {"http", "https"} or not loopback:
        raise ValueError(f"only http(s) URLs to a loopback address are loaded, not {url!r}")


async def _one(session: aiohttp.ClientSession, url: str, due: float, result: LoadResult) -> None:
    try:
        async with session.get(url) as response:
            await response.read()
            kind = "" if response.status == 200 else f"HTTP {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        kind = type(exc).__name__
    if kind:
        result.failed(kind)
    else:
        result.latencies_ms.append((time.perf_counter() - due) * 1000)


async def constant_rate(
    url: str,
    rate: float,
    seconds: float,
    token: str,
    stop: asyncio.Event,
    started: Path | None = None,
) -> LoadResult:
    """Load ``url`` at ``rate`` req/s for ``seconds`` (or until ``stop``); see the module."""
    result = LoadResult()
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        sent: set[asyncio.Task[None]] = set()
        if started is not None:
            await asyncio.to_thread(started.touch)
        began = time.perf_counter()
        for index in range(int(rate * seconds)):
            due = began + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            task = asyncio.create_task(_one(session, url, due, result))
            sent.add(task)
            task.add_done_callback(sent.discard)
        if sent:
            await asyncio.gather(*sent)
    return result


class Load:
    """One run of this module as a process of its own (``python -m bench.constant_rate``),
    loading ``url`` with the bearer ``token``, its output under ``folder``."""

    def __init__(
        self, url: str, rate: int, seconds: float, token: str, folder: Path, name: str
    ) -> None:
        self.out = folder / f"{name}.json"
        self.began = folder / f"{name}.began"
        argv = [sys.executable, "-m", "bench.constant_rate", "--url", url, "--rate", str(rate)]
        argv += ["--seconds", f"{seconds:.2f}", "--token", token, "--out", str(self.out)]
        argv += ["--started", str(self.began)]
        self.process = ServiceProcess(name, argv, {}, folder)

    async def begin(self) -> None:
        """Start the process; return once its first request is due."""
        await self.process.start()
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(self.began.exists):
            if not self.process.running or time.monotonic() > deadline:
                raise RuntimeError(f"the load did not start:\n{self.process.log_tail()}")
            await asyncio.sleep(0.02)

    async def finish(self, early: bool) -> list[float]:
        """Stop the schedule (``early``) or let it end; return the latencies in ms.

        Raises ``RuntimeError`` when a request failed or the process failed.
        """
        if early and self.process.process is not None:
            self.process.process.terminate()
        code = await self.process.wait(MAX_SECONDS + 30)
        if code != 0:
            raise RuntimeError(f"the load exited {code}:\n{self.process.log_tail()}")
        data = orjson.loads(await asyncio.to_thread(self.out.read_bytes))
        if data["errors"]:
            raise RuntimeError(f"requests failed during the load {self.out.stem}: {data['errors']}")
        return [float(v) for v in data["latencies_ms"]]


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    result = await constant_rate(args.url, args.rate, args.seconds, args.token, stop, args.started)
    data = orjson.dumps({"latencies_ms": result.latencies_ms, "errors": result.errors})
    await asyncio.to_thread(args.out.write_bytes, data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--seconds", type=float, required=True, help="longest duration")
    parser.add_argument("--token", required=True, help="bearer token")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    parser.add_argument("--started", type=Path, help="a file to create as the load begins")
    args = parser.parse_args()
    try:
        check_loopback(args.url)
        if not (0 < args.rate <= MAX_RATE and 0 < args.seconds <= MAX_SECONDS):
            raise ValueError(f"--rate must be in (0, {MAX_RATE}], --seconds in (0, {MAX_SECONDS}]")
    except ValueError as exc:
        print(f"constant_rate: {exc}", file=sys.stderr)
        sys.exit(2)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()

"""A constant-rate (open-loop) load generator for the history API, run as its own process:

    python -m tests.chaos.load URL TOKEN --rate 200 --seconds 60 [--job ID]

Requests start on a fixed schedule whatever the answers' latency, so a slow server shows as
latency, not as a lower rate (wrk's closed loop would hide it). Prints one JSON object:
requests, ok, errors (non-2xx or failed), achieved rate, and latency percentiles in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def generate(
    base: str, token: str, rate: int, seconds: float, job: str | None
) -> dict[str, float]:
    """Send ``rate`` requests a second for ``seconds``; returns the figures."""
    paths = ["/api/admin/job-logs?limit=30", "/api/admin/job-logs?limit=5"]
    if job:
        paths.append(f"/api/admin/job-logs?id={job}")
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}

    async def one(session: aiohttp.ClientSession, path: str) -> None:
        nonlocal errors
        began = time.monotonic()
        try:
            async with session.get(base + path, headers=headers) as response:
                await response.read()
                if response.status >= 300:
                    errors += 1
        except (aiohttp.ClientError, TimeoutError):
            errors += 1
        latencies.append((time.monotonic() - began) * 1000)

    total = int(rate * seconds)
    timeout = aiohttp.ClientTimeout(total=10)
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        start = time.monotonic()
        tasks = []
        for i in range(total):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule itself: open-loop pacing
            tasks.append(asyncio.create_task(one(session, paths[i % len(paths)])))
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return {
        "requests": total,
        "ok": total - errors,
        "errors": errors,
        "rate": total / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.load")
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--job")
    args = parser.parse_args()
    figures = asyncio.run(generate(args.url, args.token, args.rate, args.seconds, args.job))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

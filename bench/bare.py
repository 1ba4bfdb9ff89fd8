"""The bare limits that must run as a process of their own, like the service they stand beside.

``python -m bench.bare api --schema S --port P``: a starlette endpoint that runs the history
API's own SQL (the ``job_logs`` page and its notifications) through the same pool and returns
the rows as JSON, served by the same uvicorn embedding, with no auth, validation or shaping.

``python -m bench.bare alert --queue Q --resend-url URL``: an aio-pika consumer that posts one
email request per JobFinished to the loopback Resend, as the notifier would, with no delivery
records, decisions or templates.

Both read ``DATABASE_URL`` / ``AMQP_URL`` like the services, and stop on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
import orjson
from aio_pika.abc import AbstractIncomingMessage
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import Endpoints
from chassis.broker import connect
from chassis.database import create_pool
from chassis.health import serve_http
from chassis.lifecycle import stop_event_on_signals
from job_ledger.web.queries import _JOB_COLUMNS

PAGE_SQL = (
    f"SELECT {_JOB_COLUMNS} FROM job_logs WHERE ($2::text IS NULL OR job_name = $2)"
    " ORDER BY started_at DESC, id DESC LIMIT $1"
)
NOTIFICATIONS_SQL = (
    "SELECT job_id, channel, kind, state, attempts, provider_id, error, occurred_at"
    " FROM job_notifications WHERE job_id = ANY($1::uuid[]) ORDER BY occurred_at, channel, kind"
)


async def serve_api(endpoints: Endpoints, schema: str, port: int) -> None:
    """Serve the bare history endpoint until SIGTERM."""
    stop = stop_event_on_signals()
    pool = await create_pool(endpoints.database_url, schema)

    async def job_logs(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "30"))
        async with pool.acquire() as conn:
            rows = await conn.fetch(PAGE_SQL, limit, None)
            await conn.fetch(NOTIFICATIONS_SQL, [r["id"] for r in rows])
        body = orjson.dumps({"data": [dict(r) for r in rows]}, default=str)
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"ok")

    app = Starlette(routes=[Route("/api/admin/job-logs", job_logs), Route("/healthz", healthz)])
    try:
        async with serve_http(app, "127.0.0.1", port):
            await stop.wait()
    finally:
        await pool.close()


async def serve_alerts(endpoints: Endpoints, queue_name: str, resend_url: str) -> None:
    """Post one email per JobFinished on ``queue_name`` to ``resend_url`` until SIGTERM."""
    stop = stop_event_on_signals()
    connection = await connect(endpoints.amqp_url, name="bench-bare-alerts")
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=10)
        queue = await channel.get_queue(queue_name, ensure=False)

        async def on_message(message: AbstractIncomingMessage) -> None:
            event: dict[str, Any] = orjson.loads(message.body)
            if event.get("event_type") == "JobFinished":
                payload = event["payload"]
                email = {
                    "from": "ChainSights <alerts@example.test>",
                    "to": ["ops@example.test"],
                    "subject": f"Job {event['job_id']} {payload['status']}",
                    "html": f"<p>{payload['daos_processed']} of {payload['daos_total']}</p>",
                    "text": f"{payload['daos_processed']} of {payload['daos_total']}",
                }
                async with session.post(
                    f"{resend_url}/emails",
                    json=email,
                    headers={
                        "Authorization": "Bearer re_bench",
                        "Idempotency-Key": f"{event['job_id']}/email/success",
                    },
                ) as response:
                    response.raise_for_status()
            await message.ack()

        await queue.consume(on_message, no_ack=False)
        await stop.wait()
    finally:
        await session.close()
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api")
    api.add_argument("--schema", required=True)
    api.add_argument("--port", type=int, required=True)
    alert = commands.add_parser("alert")
    alert.add_argument("--queue", required=True)
    alert.add_argument("--resend-url", required=True)
    args = parser.parse_args()
    endpoints = Endpoints.from_environment()
    if args.command == "api":
        asyncio.run(serve_api(endpoints, args.schema, args.port))
    else:
        asyncio.run(serve_alerts(endpoints, args.queue, args.resend_url))


if __name__ == "__main__":
    main()

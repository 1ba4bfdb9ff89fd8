"""RabbitMQ unreachable during a run: the job goes on, events wait in the outbox, none is lost."""

from __future__ import annotations

import asyncio

from yarl import URL

from chassis.outbox import pending_count
from contracts import parse_event
from recalculator.bootstrap import bootstrap
from recalculator.config import Settings
from recalculator.run import RunRequest
from tests.harness.stack import Stack
from tests.support.broker import collect, drain, eventually, tap_exchange
from tests.support.recalc import hub_spaces, seed_daos, space_of
from tests.support.snapshot_hub import Fault, SnapshotHub
from tests.support.tcp_proxy import TcpProxy


async def test_a_broker_outage_during_a_run_delays_events_and_loses_none(stack: Stack) -> None:
    tap = await tap_exchange(stack.amqp, stack.topology)
    settings: Settings = stack.recalc_settings()
    await seed_daos(settings, 20)
    url = URL(stack.amqp_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5672) as proxy:
        async with SnapshotHub(hub_spaces(20)) as hub:
            # Slow DAOs keep the run going after the link is cut.
            for i in range(10, 20):
                hub.misbehave(space_of(i), Fault.HANG, times=1)
            app_settings = settings.model_copy(
                update={"snapshot_hub_url": hub.url, "dao_concurrency": 4}
            )
            proxied = str(url.with_port(proxy.port))
            async with bootstrap(app_settings, amqp_url=proxied) as app:
                assert app.relay is not None
                relay = asyncio.create_task(app.relay.run())
                try:
                    run = asyncio.create_task(
                        app.recalculation.run(RunRequest(app_settings.job_name))
                    )
                    [first] = await collect(tap, 1)
                    assert parse_event(first.body).sequence == 0
                    proxy.cut()
                    outcome = await run
                    assert outcome.status == "completed"
                    assert await pending_count(app.pool) > 0, "events wait while the broker is away"
                    await asyncio.sleep(1)  # the relay keeps failing meanwhile, and keeps rows
                    assert await pending_count(app.pool) > 0

                    proxy.restore()
                    await eventually(lambda: pending_count(app.pool), lambda n: n == 0, 45)
                finally:
                    relay.cancel()
                    await asyncio.gather(relay, return_exceptions=True)

    events = [parse_event(first.body)] + [parse_event(m.body) for m in await drain(tap, 1.0)]
    # At least once: a batch whose confirm was lost in the cut may arrive twice; dedupe by id.
    unique = list({e.event_id: e for e in events}.values())
    assert [e.sequence for e in unique] == list(range(22)), "every event, in order"
    assert unique[-1].event_type == "JobFinished"

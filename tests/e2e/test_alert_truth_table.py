"""The alert truth table (``tests/alerts/scenarios.py``), played on the real services.

For every scenario: the real ``job-ledger serve`` and ``notifier serve`` on the real RabbitMQ and
Postgres, recording Resend and Slack servers. The alerts received must be exactly the table's
(precision and recall 1: none extra, none missing, none twice), the ledger must show each
delivery and the state the table says, and every link in every message must open a page for
the logged-in admin.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.alerts.observed import Message, counted, emails, slack_messages
from tests.alerts.playback import Playback
from tests.alerts.scenarios import SCENARIOS, Scenario
from tests.alerts.stack import PASSWORD, AlertStack, alert_stack
from tests.support.services import ServiceUrls

QUIET_S = 3.0
"""After the last step, how long nothing more may arrive: six watchdog ticks and a resume."""


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.slug for s in SCENARIOS])
async def test_each_scenario_gives_exactly_its_alerts_and_every_link_opens_a_page(
    scenario: Scenario, services: ServiceUrls, tmp_path: Path
) -> None:
    async with alert_stack(services, scenario, tmp_path) as stack:
        playback = Playback(stack)
        for step in scenario.before_ledger:
            await playback.publish_step(step)
        await stack.start_ledger()
        for step in scenario.before_ledger:
            await playback.play(step, _expected_of(scenario, step.label), published=True)
        for step in scenario.steps:
            await playback.play(step, _expected_of(scenario, step.label))
        await asyncio.sleep(QUIET_S)

        labels = {job_id: label for label, job_id in playback.ids.items()}
        jobs = {uuid.UUID(j["id"]): j for j in await playback.jobs()}
        expected = Counter((a.step, a.channel, a.kind) for a in scenario.alerts)
        messages = emails(stack.resend) + slack_messages(stack.slack)

        if scenario.channels == "configured":
            assert counted(messages, labels) == expected, _explain(scenario, messages, labels)
        else:
            assert messages == [], "nothing may be sent without a configured channel"

        recorded = Counter(
            (labels.get(job_id, f"unknown job {job_id}"), n["channel"], n["kind"])
            for job_id, job in jobs.items()
            for n in job.get("notifications") or []
        )
        assert recorded == expected, "the ledger's deliveries differ from the table"
        state = "sent" if scenario.channels == "configured" else "skipped"
        assert {n["state"] for job in jobs.values() for n in job.get("notifications") or []} <= {
            state
        }

        for label, shown in scenario.shown.items():
            assert await _shown(stack, playback, label) == shown, label
        await _every_link_opens_a_page(stack, messages, jobs)


def _expected_of(scenario: Scenario, label: str) -> set[tuple[str, str]]:
    return {(a.channel, a.kind) for a in scenario.alerts if a.step == label}


def _explain(scenario: Scenario, messages: list[Message], labels: dict[uuid.UUID, str]) -> str:
    return (
        f"{scenario.name}: expected {sorted(str(a) for a in scenario.alerts)}, "
        f"received {sorted(counted(messages, labels).elements())}"
    )


async def _shown(stack: AlertStack, playback: Playback, label: str) -> str:
    """The state the API shows for ``label``: a run's outcome, or a run request's state."""
    target = playback.ids[label]
    body = await stack.get(f"/api/admin/job-logs?id={target}")
    if body.get("data"):
        return str(body["data"][0]["outcome"])
    request = await stack.get(f"/api/admin/run-requests/{target}")
    return str(request["data"]["state"])


async def _every_link_opens_a_page(
    stack: AlertStack, messages: list[Message], jobs: dict[uuid.UUID, dict[str, object]]
) -> None:
    links = {link for m in messages for link in m.links}
    # unsafe: keep the session cookie of a bare IP address (127.0.0.1), as a browser does.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.post(
            f"{stack.api}/admin/login", data={"password": PASSWORD, "next": "/admin/jobs"}
        ) as response:
            assert response.status == 200, "the admin could not log in"
        for link in sorted(links):
            async with session.get(link) as response:
                assert response.status == 200, f"{link} answered {response.status}"
                assert "/admin/login" not in str(response.url), f"{link} asked for a login"
        # The job pages of every run the scenario shows, whether or not an alert linked them.
        for job_id, job in jobs.items():
            async with session.get(f"{stack.api}/admin/jobs/{job_id}") as response:
                page = await response.text()
                assert response.status == 200, f"the page of {job_id} answered {response.status}"
                outcome = str(job.get("outcome", ""))
                assert re.search(outcome, page, re.IGNORECASE), f"{job_id}: no {outcome!r}"

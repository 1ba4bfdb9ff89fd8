"""The event contract: round trips, every kind of bad input, routing keys, wire properties."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aio_pika
import orjson
import pytest

from contracts import (
    MAX_ERROR_CHARS,
    ContractError,
    DaoFailed,
    DaoFailedPayload,
    DaoProcessed,
    DaoProcessedPayload,
    Envelope,
    Failure,
    JobAbandoned,
    JobAbandonedPayload,
    JobFinished,
    JobFinishedPayload,
    JobMissed,
    JobMissedPayload,
    JobStarted,
    JobStartedPayload,
    NotificationFailed,
    NotificationFailedPayload,
    NotificationSent,
    NotificationSentPayload,
    RunRequested,
    encode_command,
    encode_event,
    event_body,
    parse_command,
    parse_event,
    routing_key,
    truncate_error,
)

JOB = uuid.uuid4()
NAME = "weekly-gvs-recalculation"
NOW = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def every_event() -> list[Envelope]:
    return [
        JobStarted(
            job_id=JOB, job_name=NAME, payload=JobStartedPayload(daos_total=2, trigger="cron")
        ),
        DaoProcessed(
            job_id=JOB,
            job_name=NAME,
            sequence=1,
            payload=DaoProcessedPayload(
                dao_id="aave", dao_name="Aave", score=71.5, duration_ms=830
            ),
        ),
        DaoFailed(
            job_id=JOB,
            job_name=NAME,
            sequence=2,
            payload=DaoFailedPayload(dao_id="ens", dao_name="ENS", error="timeout", attempts=3),
        ),
        JobFinished(
            job_id=JOB,
            job_name=NAME,
            sequence=3,
            payload=JobFinishedPayload(
                status="completed",
                daos_total=2,
                daos_processed=1,
                daos_failed=1,
                duration_ms=1200,
                cache_invalidated=True,
                failures=[Failure(dao_id="ens", dao_name="ENS", error="timeout")],
            ),
        ),
        JobAbandoned(
            job_id=JOB,
            job_name=NAME,
            payload=JobAbandonedPayload(last_event_at=NOW, stale_after_s=1800),
        ),
        JobMissed(
            job_id=JOB, job_name=NAME, payload=JobMissedPayload(scheduled_for=NOW, grace_s=3600)
        ),
        NotificationSent(
            job_id=JOB,
            job_name=NAME,
            payload=NotificationSentPayload(
                channel="email", kind="success", attempts=1, provider_id="re_1"
            ),
        ),
        NotificationFailed(
            job_id=JOB,
            job_name=NAME,
            payload=NotificationFailedPayload(
                channel="slack", kind="failure", attempts=5, error="channel_not_found"
            ),
        ),
    ]


def valid_dict(index: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(event_body(every_event()[index]))
    return data


@pytest.mark.parametrize("event", every_event(), ids=lambda e: type(e).__name__)
def test_every_event_survives_a_round_trip_through_bytes(event: Envelope) -> None:
    assert parse_event(event_body(event)) == event


@pytest.mark.parametrize(
    ("event", "key"),
    list(
        zip(
            every_event(),
            [
                "weekly-gvs-recalculation.job.started",
                "weekly-gvs-recalculation.dao.processed",
                "weekly-gvs-recalculation.dao.failed",
                "weekly-gvs-recalculation.job.finished",
                "weekly-gvs-recalculation.job.abandoned",
                "weekly-gvs-recalculation.job.missed",
                "weekly-gvs-recalculation.notification.sent",
                "weekly-gvs-recalculation.notification.failed",
            ],
            strict=True,
        )
    ),
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_routing_key_is_job_name_dot_kind(event: Envelope, key: str) -> None:
    assert routing_key(event) == key


def test_encoded_message_carries_the_properties_the_design_lists() -> None:
    event = every_event()[3]
    message = encode_event(event)
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.message_id == str(event.event_id)
    assert message.type == "JobFinished"
    assert message.timestamp == event.occurred_at
    assert message.headers == {"schema_version": 1}
    assert parse_event(message.body) == event


def test_occurred_at_is_normalised_to_utc() -> None:
    data = valid_dict()
    data["occurred_at"] = "2026-11-23T02:00:00+02:00"
    event = parse_event(orjson.dumps(data))
    assert event.occurred_at == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)


def _error_for(data: Any) -> str:
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    with pytest.raises(ContractError) as info:
        parse_event(body)
    return str(info.value)


def test_invalid_json_is_a_contract_error() -> None:
    assert "invalid JSON" in _error_for(b"{not json")


def test_a_json_array_is_a_contract_error() -> None:
    assert "expected a JSON object, got list" in _error_for(b"[1, 2]")


def test_a_missing_field_is_named() -> None:
    data = valid_dict()
    del data["job_id"]
    assert _error_for(data) == "invalid JobStarted: job_id: Field required"


def test_a_wrong_type_is_named() -> None:
    data = valid_dict()
    data["payload"]["daos_total"] = "many"
    assert "payload.daos_total" in _error_for(data)


def test_a_negative_sequence_is_refused() -> None:
    data = valid_dict(1)
    data["sequence"] = -1
    assert "sequence: Input should be greater than or equal to 1" in _error_for(data)


def test_job_started_must_have_sequence_zero() -> None:
    data = valid_dict(0)
    data["sequence"] = 4
    assert "sequence" in _error_for(data)


def test_an_unknown_event_type_is_named() -> None:
    data = valid_dict()
    data["event_type"] = "JobExploded"
    assert _error_for(data) == "unknown event_type 'JobExploded'"


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_an_unknown_schema_version_is_refused(version: object) -> None:
    data = valid_dict()
    data["schema_version"] = version
    message = _error_for(data)
    assert "schema_version" in message


def test_an_error_text_over_the_limit_is_refused() -> None:
    data = valid_dict(2)
    data["payload"]["error"] = "x" * (MAX_ERROR_CHARS + 1)
    assert "payload.error: String should have at most 2000 characters" in _error_for(data)


def test_a_job_name_that_would_break_routing_keys_is_refused() -> None:
    data = valid_dict()
    data["job_name"] = "weekly.#"
    assert "job_name" in _error_for(data)


def test_a_naive_timestamp_is_refused() -> None:
    data = valid_dict()
    data["occurred_at"] = "2026-11-23T00:00:00"
    assert "occurred_at" in _error_for(data)


def test_more_than_a_hundred_failures_in_job_finished_is_refused() -> None:
    data = valid_dict(3)
    failure = {"dao_name": "D", "error": "e"}
    data["payload"]["failures"] = [{"dao_id": f"d{i}", **failure} for i in range(101)]
    assert "payload.failures" in _error_for(data)


def test_truncate_error_keeps_errors_within_the_contract() -> None:
    text = truncate_error("boom " * 1000)
    assert len(text) == MAX_ERROR_CHARS
    assert text.endswith("[truncated]")
    assert truncate_error("short") == "short"


def test_run_requested_round_trips_with_a_dao_subset() -> None:
    command = RunRequested(trigger="retry", dao_ids=["aave", "ens"])
    message = encode_command(command)
    assert message.type == "RunRequested"
    assert message.message_id == str(command.request_id)
    assert parse_command(message.body) == command


def test_a_bad_run_requested_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="trigger"):
        parse_command(orjson.dumps({"schema_version": 1, "trigger": "whenever"}))


def test_event_ids_are_unique_by_default() -> None:
    first, second = every_event()[0], every_event()[0]
    assert first.event_id != second.event_id


def test_timestamps_in_other_zones_compare_equal_after_parsing() -> None:
    event = JobMissed(
        job_id=JOB,
        job_name=NAME,
        payload=JobMissedPayload(
            scheduled_for=datetime(2026, 11, 23, 1, 0, tzinfo=timezone(timedelta(hours=1))),
            grace_s=60,
        ),
    )
    assert event.payload.scheduled_for == NOW
    assert event.payload.scheduled_for.tzinfo == UTC

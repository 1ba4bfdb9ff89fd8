"""Every JSON builder of the API writes exactly its model of ``schemas``: the same keys in the
same order, and values the model (so the OpenAPI document) accepts."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from contracts import RunRequested
from job_ledger.run_requests import RunRequest
from job_ledger.web import schemas
from job_ledger.web.errors import error_body
from job_ledger.web.figures import job_stats, progress_of
from job_ledger.web.rows import FailureGroup, Notification, RunSample, StoredEvent
from job_ledger.web.serialize import (
    event_json,
    failure_group_json,
    job_log_json,
    run_request_json,
    run_request_outcome_json,
    stats_json,
)
from tests.support.job_logs import job_log

NOW = datetime(2025, 12, 22, 12, tzinfo=UTC)


def keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def assert_written_as(model: type[BaseModel], built: dict[str, Any]) -> None:
    assert list(built) == keys_of(model)
    model.model_validate_json(orjson.dumps(built))


def failed_job_with_alerts() -> dict[str, Any]:
    row = dataclasses.replace(
        job_log(NOW - timedelta(minutes=5), status="running", processed=3, failed=1),
        errors_json='[{"daoId": "d1", "error": "timeout", "daoName": "Aave"}]',
        notifications=(
            Notification("email", "failure", "failed", 5, None, "HTTP 503", NOW, None),
            Notification("slack", "failure", "skipped", 0, None, None, NOW, "not configured"),
        ),
    )
    return job_log_json(row, progress_of(row, NOW))


def test_a_running_job_with_errors_and_alerts_is_written_as_the_job_log_model() -> None:
    built = failed_job_with_alerts()
    assert_written_as(schemas.JobLog, built)
    assert list(built["notifications"][0]) == keys_of(schemas.Notification)
    assert list(built["progress"]) == keys_of(schemas.Progress)


def test_a_finished_job_without_progress_is_written_as_the_job_log_model() -> None:
    row = job_log(NOW, status="completed", processed=10, duration_ms=1000)
    assert_written_as(schemas.JobLog, job_log_json(row, progress_of(row, NOW)))


@pytest.mark.parametrize(
    ("model", "built"),
    [
        (
            schemas.JobEvent,
            event_json(
                StoredEvent(uuid.uuid4(), "JobStarted", 1, uuid.uuid4(), "j", 0, NOW, NOW, {})
            ),
        ),
        (
            schemas.FailureGroup,
            failure_group_json(FailureGroup("timeout", (("d1", "Aave"), ("d2", "Comp")))),
        ),
        (
            schemas.RunStatistics,
            stats_json(job_stats([RunSample("completed", 1000, NOW, "completed")], NOW), "j"),
        ),
        (
            schemas.AcceptedRun,
            run_request_json(RunRequested(job_name="j", trigger="retry", dao_ids=["d1"])),
        ),
        (
            schemas.RunRequestState,
            run_request_outcome_json(
                RunRequest(uuid.uuid4(), "j", "manual", None, NOW, "pending", None, None, None)
            ),
        ),
        (schemas.Error, error_body(404, "No job log with this id")),
    ],
    ids=["event", "failure group", "statistics", "accepted run", "run request", "error"],
)
def test_every_other_builder_writes_its_model(
    model: type[BaseModel], built: dict[str, Any]
) -> None:
    assert_written_as(model, built)


def test_a_key_the_model_lacks_is_refused() -> None:
    built = {**failed_job_with_alerts(), "surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        schemas.JobLog.model_validate_json(orjson.dumps(built))

"""Which provider answers are retried, after how long, and the backoff between attempts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from resend.exceptions import ResendError, raise_for_code_and_type

from notifier.email_resend import classify_resend_error
from notifier.retry_policy import MAX_RETRY_AFTER_S, RetryPolicy
from notifier.transport import http_status_failure, parse_retry_after


def sdk_error(status: int, name: str, message: str = "m", **headers: str) -> ResendError:
    """The exception the SDK raises for an error answer (built by the SDK itself)."""
    try:
        raise_for_code_and_type(code=status, error_type=name, message=message, headers=headers)
    except ResendError as exc:
        return exc


@pytest.mark.parametrize(
    ("status", "name", "retryable"),
    [
        (429, "rate_limit_exceeded", True),
        (429, "daily_quota_exceeded", False),
        (429, "monthly_quota_exceeded", False),
        (409, "concurrent_idempotent_requests", True),
        (409, "invalid_idempotent_request", False),
        (500, "application_error", True),
        (502, "internal_server_error", True),
        (500, "HttpClientError", True),  # how the SDK reports a timeout or dropped connection
        (400, "validation_error", False),
        (401, "missing_api_key", False),
        (403, "invalid_api_key", False),
        (422, "missing_required_field", False),
    ],
)
def test_resend_errors_are_retryable_only_when_the_same_request_can_succeed(
    status: int, name: str, retryable: bool
) -> None:
    failure = classify_resend_error(sdk_error(status, name, "the provider's words"))
    assert failure.retryable is retryable
    # The SDK words a 401 its own way; every other message is the provider's.
    assert failure.message.startswith(f"Resend {status} {name}: ")
    assert status == 401 or failure.message.endswith("the provider's words")


def test_resend_retry_after_is_read_from_the_sdk_errors_headers() -> None:
    failure = classify_resend_error(sdk_error(429, "rate_limit_exceeded", **{"Retry-After": "2"}))
    assert failure.retry_after_s == 2.0
    quota = classify_resend_error(sdk_error(429, "daily_quota_exceeded", **{"retry-after": "9"}))
    assert quota.retry_after_s is None


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_slack_statuses_follow_its_webhook_rules(status: int, retryable: bool) -> None:
    failure = http_status_failure("Slack", status, "channel_not_found", "3")
    assert failure.retryable is retryable
    assert failure.retry_after_s == (3.0 if retryable else None)
    assert failure.message == f"Slack answered {status}: channel_not_found"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("1", 1.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Mon, 05 Jan 2026 00:00:10 GMT", 10.0),
        ("Sun, 04 Jan 2026 23:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 1, 5, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, timeout_s=1, backoff_max_s=3, backoff_base_s=1)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 3), (4, 3), (9, 3)]:
        delays = [policy.delay_s(attempt, None) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, delays)


def test_a_retry_after_wins_over_the_backoff_but_is_capped() -> None:
    policy = RetryPolicy(max_attempts=5, timeout_s=1, backoff_max_s=0.05)
    assert policy.delay_s(1, 1.0) == 1.0
    assert policy.delay_s(1, 86_400) == MAX_RETRY_AFTER_S

"""The guessing throttle: a small budget per client, an overall one, and the wait it answers."""

from __future__ import annotations

from job_ledger.web.throttle import GuessThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock) -> GuessThrottle:
    return GuessThrottle(
        per_client=3, client_window_s=60, overall=10, overall_window_s=10, clock=clock
    )


def test_a_client_is_refused_after_its_budget_until_its_oldest_failure_leaves_the_window() -> None:
    clock = Clock()
    guard = throttle(clock)
    for _ in range(3):
        assert guard.refusal("a") is None
        guard.failed("a")
        clock.now += 5
    assert guard.refusal("a") == 45
    assert guard.refusal("b") is None
    clock.now += 45
    assert guard.refusal("a") is None


def test_a_success_forgets_the_client_s_failures() -> None:
    clock = Clock()
    guard = throttle(clock)
    guard.failed("a")
    guard.failed("a")
    guard.succeeded("a")
    guard.failed("a")
    guard.failed("a")
    assert guard.refusal("a") is None


def test_past_the_overall_budget_every_client_that_failed_waits_but_not_one_that_did_not() -> None:
    clock = Clock()
    guard = throttle(clock)
    for n in range(10):
        guard.failed(f"10.0.0.{n}")
    assert guard.refusal("10.0.0.1") == 10
    assert guard.refusal("192.168.1.1") is None
    clock.now += 10
    assert guard.refusal("10.0.0.1") is None

"""The notifier's Prometheus metrics, served on ``/metrics`` by the chassis health server."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

NOTIFICATIONS = Counter(
    "notifier_notifications_total",
    "Delivery records that reached a final state",
    ["channel", "kind", "state"],
)
PROVIDER_LATENCY = Histogram(
    "notifier_provider_latency_seconds",
    "Time one provider request took, by channel and outcome (ok, retryable, permanent)",
    ["channel", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter(
    "notifier_retries_total",
    "Attempts that failed in a retryable way and were scheduled again",
    ["channel"],
)
EVENTS_CONSUMED = Counter(
    "notifier_events_total",
    "Events taken off the queue, by what became of them",
    ["outcome"],
)

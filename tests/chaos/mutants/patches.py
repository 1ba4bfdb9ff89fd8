"""The patches that take one guarantee away each; applied in a service's own process only."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def relay_marks_unconfirmed() -> None:
    """Every publish of the outbox relay counts as confirmed, whatever its outcome."""
    import chassis.outbox

    def never_failed(result: object) -> bool:
        return False

    chassis.outbox._failed = never_failed


def ledger_acks_before_commit() -> None:
    """The ledger acks each batch as it comes, then stores it (and acks nothing after).

    Patches the chassis's batch consumer, which only the ledger's consumer uses.
    """
    import chassis.batch_consumer as batching

    store_and_ack = batching.BatchConsumer.handle_batch
    ack_all = batching.ack_all

    async def ack_then_store(self: batching.BatchConsumer[Any], batch: Sequence[Any]) -> None:
        await ack_all(list(batch))
        await store_and_ack(self, batch)

    async def acked_already(messages: Sequence[Any]) -> None:
        return None

    batching.BatchConsumer.handle_batch = ack_then_store  # type: ignore[method-assign]
    batching.ack_all = acked_already


def notifier_sends_before_recording() -> None:
    """The notifier emails an outcome as soon as it arrives, before recording it, and sends
    every email without its ``Idempotency-Key``."""
    import resend

    import notifier.consumer
    from notifier.intake import Claim, Planning

    send_async = resend.Emails.send_async

    async def send_without_key(params: Any, options: Any = None) -> Any:
        return await send_async(params)

    resend.Emails.send_async = send_without_key  # type: ignore[method-assign]
    record_outcome = notifier.consumer.record_outcome  # type: ignore[attr-defined]

    class RolledBack(Exception):
        """Undoes the dry run that tells what recording the event would send."""

    async def send_then_record(conn: Any, event: Any, planning: Planning, claim: Claim) -> Any:
        try:
            async with conn.transaction():
                planned = await record_outcome(conn, event, planning, claim)
                raise RolledBack
        except RolledBack:
            pass
        transport = claim._dispatcher.transports.get("email")
        for delivery in planned.claimed:
            if transport is not None and delivery.channel == "email":
                await transport.send(delivery.alert, "")
        return await record_outcome(conn, event, planning, claim)

    notifier.consumer.record_outcome = send_then_record  # type: ignore[attr-defined]


def stays_on_lost_node() -> None:
    """The broker connection keeps trying the address it lost instead of the next node's."""
    import chassis.failover

    def stay(self: chassis.failover.FailoverConnection) -> None:
        self._move_on = False

    chassis.failover.FailoverConnection._next_url = stay  # type: ignore[method-assign]


MUTANTS: dict[str, Callable[[], None]] = {
    "relay-marks-unconfirmed": relay_marks_unconfirmed,
    "ledger-acks-before-commit": ledger_acks_before_commit,
    "notifier-sends-before-recording": notifier_sends_before_recording,
    "stays-on-lost-node": stays_on_lost_node,
}

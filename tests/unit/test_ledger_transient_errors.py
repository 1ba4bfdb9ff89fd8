"""Which database errors make the services (the ledger, the recalculator) retry, not stop."""

from __future__ import annotations

import asyncpg

from chassis.database import TRANSIENT_DATABASE_ERRORS


def test_a_connection_dropped_mid_transaction_is_retried_not_fatal() -> None:
    # Found by the chaos campaign's database restart: asyncpg raised this from a batch whose
    # connection Postgres had just closed, and the consumer stopped, taking the ledger down.
    dropped = asyncpg.exceptions.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    )
    assert isinstance(dropped, TRANSIENT_DATABASE_ERRORS)


def test_a_rejected_statement_is_not_retried() -> None:
    assert not isinstance(asyncpg.exceptions.CheckViolationError("no"), TRANSIENT_DATABASE_ERRORS)

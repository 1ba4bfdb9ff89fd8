"""Enqueueing a message whose number is taken by the very statement that enqueues it.

A producer that numbers its messages (a job's event sequence, say) takes the number from a row
of its own (``UPDATE … RETURNING``), whose lock then serialises every writer until commit. With
:class:`NumberedEnqueue` the producer's row writes, the number and the outbox row are ONE
statement: one implicit transaction, one round trip, the lock held for one commit.

The producer encodes its message beforehand as JSON with :data:`NUMBER_PLACEHOLDER` as the value
of the numbered field; the statement writes the body with the number it took in place of the
placeholder. The producer supplies the rest of the statement: its common table expressions over
parameters ``$1``…``$n``, the last one named ``numbered`` and yielding at most one row with an
integer column ``number`` (no row: nothing is enqueued and the call returns None).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import aio_pika

from chassis.database import Connection
from chassis.outbox import OUTBOX_COLUMNS, message_properties

NUMBER_PLACEHOLDER = 987_654_321_987_654_321
"""The number a message is encoded with before its statement takes the real one: larger than
any count a producer reaches, so a real number is never mistaken for it."""


def split_at_number(body: bytes, number_field: str) -> tuple[bytes, bytes]:
    """Split a JSON ``body`` whose ``number_field`` holds :data:`NUMBER_PLACEHOLDER` into the
    bytes before the number and after: ``before + str(n).encode() + after`` is the body with
    ``n``. Raises ``ValueError`` unless the field holds the placeholder exactly once."""
    key = f'"{number_field}":'.encode()
    placeholder = key + str(NUMBER_PLACEHOLDER).encode()
    before, found, after = body.partition(placeholder)
    if not found or placeholder in after:
        raise ValueError(f"the body does not hold the placeholder {number_field} exactly once")
    return before + key, after


@dataclass(frozen=True)
class NumberedEnqueue:
    """One statement: the producer's ``numbering`` CTEs (``parameters`` of them, ``$1``…),
    then the outbox row of a message whose ``number_field`` is the number they yield."""

    numbering: str
    parameters: int
    number_field: str
    sql: str = field(init=False)

    def __post_init__(self) -> None:
        n = self.parameters
        queued = (
            f"queued AS (INSERT INTO {OUTBOX_COLUMNS}"  # noqa: S608 constant columns, numbered placeholders
            f" SELECT ${n + 1}, ${n + 2}, ${n + 3},"
            f" ${n + 4}::bytea || convert_to(number::text, 'UTF8') || ${n + 5}::bytea,"
            f" ${n + 6}::jsonb FROM numbered)"
        )
        statement = f"WITH {self.numbering.strip()},\n{queued}\nSELECT number FROM numbered"
        object.__setattr__(self, "sql", statement)

    async def execute(
        self,
        conn: Connection,
        arguments: Sequence[object],
        exchange: str,
        routing_key: str,
        message: aio_pika.Message,
    ) -> int | None:
        """Run the statement with the numbering's ``arguments`` and enqueue ``message`` (encoded
        with the placeholder) for ``exchange`` under ``routing_key``; return the number taken,
        or None when the numbering yielded no row (nothing enqueued). Raises ``ValueError`` for
        a body without the placeholder, and the database's error."""
        if len(arguments) != self.parameters:
            raise ValueError(f"expected {self.parameters} arguments, got {len(arguments)}")
        before, after = split_at_number(message.body, self.number_field)
        number: int | None = await conn.fetchval(
            self.sql,
            *arguments,
            message.message_id or "",
            exchange,
            routing_key,
            before,
            after,
            message_properties(message),
        )
        return number

"""A numbered message is encoded before its statement takes the number; the splice must give
back exactly the bytes the contract's encoder gives for the real number."""

from __future__ import annotations

from uuid import uuid4

import pytest

from chassis.outbox_numbered import NUMBER_PLACEHOLDER, split_at_number
from contracts import DaoProcessed, DaoProcessedPayload
from contracts.codec import event_body


def _event(sequence: int, dao_name: str = "Uniswap") -> DaoProcessed:
    return DaoProcessed(
        event_id=uuid4(),
        job_id=uuid4(),
        job_name="weekly-gvs-recalculation",
        sequence=sequence,
        payload=DaoProcessedPayload(
            dao_id="uniswap", dao_name=dao_name, score=71.5, duration_ms=12
        ),
    )


@pytest.mark.parametrize("sequence", [1, 9, 10, 20_001, 2**40])
def test_splicing_a_sequence_in_gives_the_encoders_bytes(sequence: int) -> None:
    placeholder = _event(NUMBER_PLACEHOLDER)
    before, after = split_at_number(event_body(placeholder), "sequence")
    real = placeholder.model_copy(update={"sequence": sequence})
    assert before + str(sequence).encode() + after == event_body(real)


def test_a_dao_name_that_looks_like_the_sequence_field_is_not_mistaken_for_it() -> None:
    # The name is JSON-escaped in the body ("\"sequence\":…"), so it cannot match the field.
    sneaky = f'"sequence":{NUMBER_PLACEHOLDER}'
    placeholder = _event(NUMBER_PLACEHOLDER, dao_name=sneaky)
    before, after = split_at_number(event_body(placeholder), "sequence")
    real = placeholder.model_copy(update={"sequence": 3})
    assert before + b"3" + after == event_body(real)


def test_a_body_without_the_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        split_at_number(event_body(_event(5)), "sequence")


def test_a_placeholder_in_another_field_is_not_the_number() -> None:
    # A payload field holding the placeholder digits must not be taken for the sequence.
    placeholder = _event(NUMBER_PLACEHOLDER, dao_name=str(NUMBER_PLACEHOLDER))
    before, after = split_at_number(event_body(placeholder), "sequence")
    real = placeholder.model_copy(update={"sequence": 7})
    assert before + b"7" + after == event_body(real)

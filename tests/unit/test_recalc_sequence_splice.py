"""The DAO step encodes its event before the sequence is taken; the splice must give back
exactly the bytes the contract's encoder gives for the real number."""

from __future__ import annotations

from uuid import uuid4

import pytest

from contracts import DaoProcessed, DaoProcessedPayload
from contracts.codec import event_body
from recalculator.scored_dao import PLACEHOLDER_SEQUENCE, split_at_sequence


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
    placeholder = _event(PLACEHOLDER_SEQUENCE)
    before, after = split_at_sequence(event_body(placeholder))
    real = placeholder.model_copy(update={"sequence": sequence})
    assert before + str(sequence).encode() + after == event_body(real)


def test_a_dao_name_that_looks_like_the_sequence_field_is_not_mistaken_for_it() -> None:
    # The name is JSON-escaped in the body ("\"sequence\":…"), so it cannot match the field.
    sneaky = f'"sequence":{PLACEHOLDER_SEQUENCE}'
    placeholder = _event(PLACEHOLDER_SEQUENCE, dao_name=sneaky)
    before, after = split_at_sequence(event_body(placeholder))
    real = placeholder.model_copy(update={"sequence": 3})
    assert before + b"3" + after == event_body(real)


def test_a_body_without_the_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        split_at_sequence(event_body(_event(5)))

"""GVS scoring: edge cases, bounds and determinism of the pure score function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recalculator.scoring import (
    WEIGHTS,
    GovernanceData,
    Proposal,
    ProposalState,
    score_governance,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def _proposal(
    n: int,
    *,
    days_ago: float = 10,
    votes: int = 100,
    scores: tuple[float, ...] = (80.0, 20.0),
    state: ProposalState = "closed",
) -> Proposal:
    created = NOW - timedelta(days=days_ago)
    return Proposal(
        id=f"p{n}",
        created=created,
        end=created + timedelta(days=5),
        state=state,
        votes=votes,
        scores_total=sum(scores),
        choices=tuple(f"choice {i}" for i in range(len(scores))),
        scores=scores,
    )


def _data(*proposals: Proposal, followers: int | None = None) -> GovernanceData:
    return GovernanceData(dao_id="dao", proposals=proposals, followers_count=followers)


def test_no_proposals_scores_zero_and_every_component_says_why() -> None:
    result = score_governance(_data(), now=NOW)

    assert result.score == 0
    assert result.proposals_considered == 0
    assert set(result.components) == set(WEIGHTS)
    assert all(c.value == 0 and "no proposal" in c.detail for c in result.components.values())


def test_proposals_outside_the_90_day_window_are_ignored() -> None:
    old = _proposal(1, days_ago=91)
    future = _proposal(2, days_ago=-1)

    result = score_governance(_data(old, future), now=NOW)

    assert (result.score, result.proposals_considered) == (0, 0)


def test_zero_votes_score_only_for_activity_and_recency() -> None:
    quiet = [_proposal(i, days_ago=5 + i, votes=0, scores=(0.0, 0.0)) for i in range(4)]

    result = score_governance(_data(*quiet), now=NOW)

    components = result.components
    assert components["participation"].value == 0
    assert components["decisiveness"].value == 0
    assert components["activity"].value > 0 and components["recency"].value > 0
    expected = components["activity"].points + components["recency"].points
    assert result.score == pytest.approx(expected, abs=0.01)


def test_one_huge_proposal_does_not_dominate_participation() -> None:
    usual = [_proposal(i, days_ago=3 * i + 1, votes=40) for i in range(10)]
    huge = _proposal(99, days_ago=15, votes=1_000_000, scores=(9e12, 1e12))

    without = score_governance(_data(*usual), now=NOW)
    with_huge = score_governance(_data(*usual, huge), now=NOW)

    assert with_huge.components["participation"].value == without.components["participation"].value
    assert with_huge.score - without.score < 2


def test_a_single_huge_proposal_cannot_reach_a_full_score() -> None:
    huge = _proposal(1, days_ago=1, votes=10_000_000, scores=(1e15, 0.0))

    result = score_governance(_data(huge), now=NOW)

    assert result.components["activity"].value < 0.3
    assert result.score < 85


def test_a_busy_decisive_recent_dao_scores_near_the_top() -> None:
    busy = [_proposal(i, days_ago=i * 6, votes=2_000, scores=(900.0, 100.0)) for i in range(14)]

    result = score_governance(_data(*busy), now=NOW)

    assert result.score == 100


def test_a_close_vote_counts_less_towards_decisiveness_than_a_clear_one() -> None:
    clear = score_governance(_data(_proposal(1, scores=(75.0, 25.0))), now=NOW)
    close = score_governance(_data(_proposal(1, scores=(51.0, 49.0))), now=NOW)

    assert clear.components["decisiveness"].value == 1
    assert close.components["decisiveness"].value == pytest.approx(0.04, abs=1e-4)


def test_recency_halves_every_30_days_since_voting_last_closed() -> None:
    ended_30_days_ago = _proposal(1, days_ago=35)

    result = score_governance(_data(ended_30_days_ago), now=NOW)

    assert result.components["recency"].value == pytest.approx(0.5, abs=1e-4)


def test_an_open_vote_counts_as_activity_now() -> None:
    open_vote = _proposal(1, days_ago=1, state="active")

    result = score_governance(_data(open_vote), now=NOW)

    assert result.components["recency"].value == 1


def test_pending_proposals_do_not_lower_participation() -> None:
    voted = _proposal(1, votes=300)
    pending = _proposal(2, days_ago=0.5, votes=0, state="pending", scores=())

    alone = score_governance(_data(voted), now=NOW)
    with_pending = score_governance(_data(voted, pending), now=NOW)

    assert with_pending.components["participation"] == alone.components["participation"]


def test_known_followers_blend_turnout_into_participation() -> None:
    proposals = [_proposal(i, votes=50) for i in range(3)]

    alone = score_governance(_data(*proposals), now=NOW).components["participation"]
    few = score_governance(_data(*proposals, followers=60), now=NOW).components["participation"]
    many = score_governance(_data(*proposals, followers=10**6), now=NOW).components["participation"]

    assert many.value < alone.value < few.value


def test_the_score_does_not_depend_on_the_order_of_proposals() -> None:
    proposals = [
        _proposal(i, days_ago=i * 7 + 0.3, votes=i * 37, scores=(i, 3.3)) for i in range(9)
    ]

    forward = score_governance(_data(*proposals), now=NOW)
    backward = score_governance(_data(*reversed(proposals)), now=NOW)

    assert forward == backward


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        score_governance(_data(), now=datetime(2025, 6, 2))


_proposals = st.builds(
    Proposal,
    id=st.text(min_size=1, max_size=8),
    created=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2025, 7, 1), timezones=st.just(UTC)
    ),
    end=st.datetimes(
        min_value=datetime(2024, 12, 1), max_value=datetime(2025, 9, 1), timezones=st.just(UTC)
    ),
    state=st.sampled_from(["pending", "active", "closed"]),
    votes=st.integers(min_value=0, max_value=10**9),
    scores_total=st.floats(min_value=0, max_value=1e18),
    scores=st.lists(st.floats(min_value=0, max_value=1e18), max_size=6).map(tuple),
)


@given(
    proposals=st.lists(_proposals, max_size=40),
    followers=st.none() | st.integers(min_value=0, max_value=10**9),
)
def test_every_score_lies_between_0_and_100_with_components_in_0_to_1(
    proposals: list[Proposal], followers: int | None
) -> None:
    result = score_governance(_data(*proposals, followers=followers), now=NOW)

    assert 0 <= result.score <= 100
    assert result.score == round(result.score, 2)
    assert all(0 <= c.value <= 1 for c in result.components.values())
    assert score_governance(_data(*reversed(proposals), followers=followers), now=NOW) == result

"""GVS, the governance vitality score: a pure function from a DAO's recent governance to 0-100.

``score_governance(data, now=...)`` looks at the proposals created in the 90 days before ``now``
and combines four components, each in 0..1, by fixed weights:

- ``activity`` (25 %): how many proposals, log-scaled, full at 12 (about one a week);
- ``participation`` (35 %): the median number of votes per proposal that opened for voting,
  log-scaled, full at 1,000; blended half and half with turnout against the space's follower
  count when that count is known;
- ``decisiveness`` (15 %): per closed proposal, the lead of the winning choice over the runner-up
  as a share of all voting power, full at a 50-point lead, averaged with every proposal equal;
- ``recency`` (25 %): how long since voting was last open, halving every 30 days.

The README next to this package explains each choice. Nothing here reads a clock, the network or
the environment: the same ``data`` and ``now`` always give the same score, whatever the order of
the proposals.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

WINDOW = timedelta(days=90)
ACTIVITY_FULL_AT = 12
PARTICIPATION_FULL_AT = 1_000
DECISIVE_MARGIN = 0.5
RECENCY_HALF_LIFE_DAYS = 30.0
WEIGHTS: dict[str, float] = {
    "activity": 0.25,
    "participation": 0.35,
    "decisiveness": 0.15,
    "recency": 0.25,
}


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ProposalState = Literal["pending", "active", "closed"]


class Proposal(BaseModel):
    """One Snapshot proposal, reduced to what the score needs (no individual votes)."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    created: UtcDatetime
    end: UtcDatetime
    state: ProposalState
    votes: int = Field(ge=0)
    scores_total: Amount = 0.0
    choices: tuple[str, ...] = ()
    scores: tuple[Amount, ...] = ()


class GovernanceData(BaseModel):
    """A DAO's proposals of the scoring window, and its follower count when the source knows it."""

    model_config = ConfigDict(frozen=True)

    dao_id: str = Field(min_length=1)
    proposals: tuple[Proposal, ...] = ()
    followers_count: int | None = Field(default=None, ge=0)


class Component(BaseModel):
    """One named part of a score: ``value`` in 0..1, its ``weight``, the ``points`` it adds to
    the 0-100 score, and a ``detail`` an operator can read."""

    model_config = ConfigDict(frozen=True)

    value: float = Field(ge=0, le=1)
    weight: float
    points: float
    detail: str


class GvsScore(BaseModel):
    """The score of one DAO at ``as_of``: 0-100, two decimals, with its components."""

    model_config = ConfigDict(frozen=True)

    dao_id: str
    score: float = Field(ge=0, le=100)
    components: dict[str, Component]
    proposals_considered: int = Field(ge=0)
    as_of: UtcDatetime


def score_governance(data: GovernanceData, *, now: datetime) -> GvsScore:
    """Scores ``data`` as of ``now`` (timezone-aware).

    Only proposals created in ``(now - 90 days, now]`` count; later ones (clock skew at the
    source) and older ones are ignored. Returns a ``GvsScore``; with no proposal in the window
    every component is 0 and says so. Raises ``ValueError`` for a naive ``now``. Pure and
    deterministic: the result depends on the set of proposals, not on their order.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    window_start = now - WINDOW
    considered = sorted(
        (p for p in data.proposals if window_start < p.created <= now),
        key=lambda p: (p.created, p.id),
    )
    if considered:
        values = {
            "activity": _activity(considered),
            "participation": _participation(considered, data.followers_count),
            "decisiveness": _decisiveness(considered),
            "recency": _recency(considered, now),
        }
    else:
        nothing = (0.0, f"no proposal created in the {WINDOW.days} days before {now:%Y-%m-%d}")
        values = dict.fromkeys(WEIGHTS, nothing)
    total = 100 * math.fsum(WEIGHTS[name] * value for name, (value, _) in values.items())
    return GvsScore(
        dao_id=data.dao_id,
        score=round(min(100.0, max(0.0, total)), 2),
        components={
            name: Component(
                value=round(value, 4),
                weight=WEIGHTS[name],
                points=round(100 * WEIGHTS[name] * value, 2),
                detail=detail,
            )
            for name, (value, detail) in values.items()
        },
        proposals_considered=len(considered),
        as_of=now,
    )


def _log_share(amount: float, full_at: float) -> float:
    """Returns ``log(1 + amount) / log(1 + full_at)`` capped at 1: the first units count most,
    and no amount, however large, counts for more than ``full_at``."""
    if full_at <= 0:
        return 1.0
    return min(1.0, math.log1p(max(0.0, amount)) / math.log1p(full_at))


def _activity(proposals: Sequence[Proposal]) -> tuple[float, str]:
    count = len(proposals)
    value = _log_share(count, ACTIVITY_FULL_AT)
    return value, f"{count} proposals in {WINDOW.days} days (full at {ACTIVITY_FULL_AT})"


def _participation(proposals: Sequence[Proposal], followers: int | None) -> tuple[float, str]:
    # A pending proposal has no votes because voting has not started; counting it would
    # punish a DAO for announcing a vote early.
    opened = [p.votes for p in proposals if p.state != "pending"]
    if not opened:
        return 0.0, "no proposal has opened for voting yet"
    # The median, not the mean or the sum, so that one proposal that drew a crowd (or an
    # airdrop farm) does not stand for the DAO's usual turnout.
    median = statistics.median(sorted(opened))
    absolute = _log_share(median, PARTICIPATION_FULL_AT)
    detail = (
        f"median {median:g} votes over {len(opened)} proposals (full at {PARTICIPATION_FULL_AT:,})"
    )
    if not followers:
        return absolute, detail
    relative = _log_share(median, followers)
    return (absolute + relative) / 2, f"{detail}; turnout against {followers:,} followers"


def _margin(proposal: Proposal) -> float:
    if proposal.scores_total <= 0 or not proposal.scores:
        return 0.0
    ranked = sorted(proposal.scores, reverse=True)
    runner_up = ranked[1] if len(ranked) > 1 else 0.0
    # Approval and quadratic votes can make choice scores add up past scores_total; the clamp
    # keeps a margin a share.
    return min(1.0, max(0.0, (ranked[0] - runner_up) / proposal.scores_total))


def _decisiveness(proposals: Sequence[Proposal]) -> tuple[float, str]:
    closed = [p for p in proposals if p.state == "closed"]
    if not closed:
        return 0.0, "no closed proposal to judge"
    # Every proposal weighs the same, whatever its voting power, and a closed vote nobody
    # attended decided nothing (0).
    shares = [min(1.0, _margin(p) / DECISIVE_MARGIN) for p in closed]
    value = math.fsum(shares) / len(shares)
    decided = sum(1 for share in shares if share >= 1.0)
    return value, (
        f"{decided} of {len(closed)} closed proposals decided by a lead of "
        f"{DECISIVE_MARGIN:.0%} or more"
    )


def _recency(proposals: Sequence[Proposal], now: datetime) -> tuple[float, str]:
    # Voting that is open (or about to open) counts as happening now.
    last_open = max(max(p.created, min(p.end, now)) for p in proposals)
    days = max(0.0, (now - last_open).total_seconds() / 86_400)
    value = 0.5 ** (days / RECENCY_HALF_LIFE_DAYS)
    return value, (
        f"voting last open {days:.1f} days ago (halves every {RECENCY_HALF_LIFE_DAYS:g} days)"
    )

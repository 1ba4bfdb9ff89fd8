"""Pytest fixtures over :func:`running_cluster`, opt-in by name.

Only a test that asks for ``rabbit_cluster`` (or ``rabbit_cluster_session``) starts the nodes,
once per session; a conftest elsewhere imports these two names to offer them to its tests.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster.harness import RabbitCluster, running_cluster


@pytest.fixture(scope="session")
def rabbit_cluster_session() -> Iterator[RabbitCluster]:
    """The session's cluster, started on first use and removed at the session's end."""
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def rabbit_cluster(rabbit_cluster_session: RabbitCluster) -> RabbitCluster:
    """The session's cluster, healed first (every node running, every proxy open), so a test
    that crashed or cut off a node leaves no trace on the next one."""
    rabbit_cluster_session.heal()
    return rabbit_cluster_session

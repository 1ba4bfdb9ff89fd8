"""Offers the cluster fixtures to the tests of this package."""

from tests.cluster.fixtures import rabbit_cluster, rabbit_cluster_session

__all__ = ["rabbit_cluster", "rabbit_cluster_session"]

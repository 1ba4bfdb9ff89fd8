"""docker-compose.cluster.yml over docker-compose.yml, as ``docker-compose config`` resolves them:
three RabbitMQ nodes that share a cookie and name one another, every service given all three."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from chassis.broker_urls import parse_amqp_urls

ROOT = Path(__file__).resolve().parents[2]
FILES = ("docker-compose.yml", "docker-compose.cluster.yml", "deploy/rabbitmq-cluster.conf")
NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
APPS = ("recalculator", "cron", "job-ledger", "notifier")
USERS = {
    "recalculator": "recalculator",
    "cron": "recalculator",
    "job-ledger": "job-ledger",
    "notifier": "notifier",
}
SECRETS = ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "ADMIN_PASSWORD")


def resolve(folder: Path, cookie: str | None) -> subprocess.CompletedProcess[str]:
    """``docker-compose -f docker-compose.yml -f docker-compose.cluster.yml config`` in a copy
    of the files, with the example .env, its secrets set, and ``cookie`` when given."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is installed by `make test` (scripts/ensure-tools.sh)"
    for name in FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, folder / name)
    env = (ROOT / ".env.example").read_text()
    for secret in SECRETS:
        env = env.replace(f"\n{secret}=\n", f"\n{secret}=not-a-real-secret\n")
    if cookie is not None:
        env += f"\nRABBITMQ_ERLANG_COOKIE={cookie}\n"
    (folder / ".env").write_text(env)
    argv = [binary, "-f", str(folder / FILES[0]), "-f", str(folder / FILES[1]), "config"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=folder)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = resolve(tmp_path_factory.mktemp("cluster-compose"), "a-shared-test-cookie")
    assert result.returncode == 0, result.stderr
    services: dict[str, Any] = yaml.safe_load(result.stdout)["services"]
    return services


def test_the_three_nodes_share_one_cookie_and_the_base_image(resolved: dict[str, Any]) -> None:
    cookies = {resolved[n]["environment"]["RABBITMQ_ERLANG_COOKIE"] for n in NODES}
    assert cookies == {"a-shared-test-cookie"}
    assert {resolved[n]["image"] for n in NODES} == {resolved["rabbitmq"]["image"]}


def test_each_node_keeps_its_own_data_and_reads_the_peer_list(resolved: dict[str, Any]) -> None:
    data = [v for n in NODES for v in resolved[n]["volumes"] if ":/var/lib/rabbitmq" in v]
    assert len(data) == 3 and len({v.split(":")[0] for v in data}) == 3, data
    for node in NODES:
        assert any(
            v.endswith(":/etc/rabbitmq/conf.d/90-cluster.conf:ro")
            for v in resolved[node]["volumes"]
        )


def test_the_peer_list_names_every_node_by_its_hostname(resolved: dict[str, Any]) -> None:
    conf = (ROOT / "deploy/rabbitmq-cluster.conf").read_text()
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    listed = re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = (\S+)$", conf, re.M)
    assert listed == [f"rabbit@{resolved[n]['hostname']}" for n in NODES]


def test_the_later_nodes_start_once_the_first_is_healthy(resolved: dict[str, Any]) -> None:
    for node in NODES[1:]:
        assert resolved[node]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
        assert "ports" not in resolved[node], f"{node} publishes a port of the first node"


@pytest.mark.parametrize("app", APPS)
def test_every_service_is_given_the_three_nodes_and_waits_for_them(
    resolved: dict[str, Any], app: str
) -> None:
    environment = resolved[app]["environment"]
    urls = parse_amqp_urls(environment["AMQP_URL"])
    assert [urlsplit(u).hostname for u in urls] == list(NODES)
    # Each service logs in as its own user on every node; the password stays in its secret file.
    assert {urlsplit(u).username for u in urls} == {USERS[app]}
    assert all(urlsplit(u).password is None for u in urls)
    assert environment["AMQP_PASSWORD_FILE"].startswith("/run/secrets/")
    for node in NODES:
        assert resolved[app]["depends_on"][node] == {"condition": "service_healthy"}


def test_the_cluster_refuses_to_start_without_its_cookie(tmp_path: Path) -> None:
    result = resolve(tmp_path, None)
    assert result.returncode != 0
    assert "set RABBITMQ_ERLANG_COOKIE in .env for the cluster" in result.stderr


def test_every_node_loads_the_same_users_and_permissions(resolved: dict[str, Any]) -> None:
    for node in NODES:
        volumes = resolved[node]["volumes"]
        assert any(":/etc/rabbitmq/definitions" in v for v in volumes), node
        assert any(v.endswith(":/etc/rabbitmq/conf.d/30-definitions.conf:ro") for v in volumes)
        assert resolved[node]["image"] == "rabbitmq:4.0-management"

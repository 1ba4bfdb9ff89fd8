"""What can be checked of docker-compose.yml without a Docker engine, checked for real."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from job_ledger.config import Settings as LedgerSettings
from notifier.config import Settings as NotifierSettings
from recalculator.config import Settings as RecalculatorSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = {name: spec for name, spec in SERVICES.items() if "build" in spec}
# The long-running services and setup run a console script; broker-users runs a deploy script.
SCRIPTED = {name: spec for name, spec in APP_SERVICES.items() if name != "broker-users"}
ONE_SHOTS = {"setup", "broker-users"}
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Variables only compose itself reads (to publish a port).
COMPOSE_ONLY = {"LEDGER_PUBLISHED_PORT"}
SETTINGS_VARS = {
    name.upper()
    for cls in (RecalculatorSettings, LedgerSettings, NotifierSettings)
    for name in cls.model_fields
}


def env_example_vars() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        if match := re.match(r"^#?\s*([A-Z][A-Z0-9_]+)=", line):
            names.add(match.group(1))
    return names


def test_every_app_container_runs_a_real_console_script_and_subcommand() -> None:
    for name, spec in SCRIPTED.items():
        command = spec["command"]
        assert command[0] in SCRIPTS, f"{name}: {command[0]} is not a console script"
        script = Path(sys.executable).parent / command[0]
        subcommand = [arg for arg in command[1:] if not arg.startswith("/")][:2]
        if subcommand[-1].startswith("--"):
            subcommand = subcommand[:1]
        result = subprocess.run(
            [str(script), *subcommand, "--help"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, f"{name}: {command} --help failed: {result.stderr}"


def test_every_variable_compose_passes_is_documented_and_read_by_a_service() -> None:
    documented = env_example_vars()
    for name, spec in APP_SERVICES.items():
        for variable in spec.get("environment", {}):
            setting = variable.removesuffix("_FILE")
            assert setting in documented, f"{name}: {setting} missing from .env.example"
            assert setting in SETTINGS_VARS, f"{name}: no service reads {setting}"


def test_every_variable_in_env_example_is_read_by_a_service_or_by_compose() -> None:
    unread = env_example_vars() - SETTINGS_VARS - COMPOSE_ONLY
    assert unread == set(), f".env.example lists variables nothing reads: {sorted(unread)}"


def test_every_setting_of_every_service_is_in_env_example() -> None:
    missing = SETTINGS_VARS - env_example_vars()
    assert missing == set(), f"settings not documented in .env.example: {sorted(missing)}"


def test_secrets_are_files_each_mounted_only_where_it_is_read() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"PASSWORD:\s*\$", text), "a password from an interpolated variable"
    made = (ROOT / "deploy" / "make-secrets.sh").read_text()
    for secret, spec in COMPOSE["secrets"].items():
        assert spec == {"file": f"./secrets/{secret}"}, secret
        assert secret in made, f"deploy/make-secrets.sh does not make {secret}"
    for name, spec in APP_SERVICES.items():
        listed = set(spec.get("secrets", []))
        files = {
            value.removeprefix("/run/secrets/")
            for variable, value in spec.get("environment", {}).items()
            if variable.endswith("_FILE")
        }
        assert all(
            variable.endswith("_FILE") or "PASSWORD" not in variable
            for variable in spec.get("environment", {})
        ), name
        if name != "broker-users":
            assert files == listed, f"{name} mounts {sorted(listed)} but reads {sorted(files)}"
    for name, spec in APP_SERVICES.items():
        for url in ("DATABASE_URL", "AMQP_URL"):
            value = spec.get("environment", {}).get(url, "")
            assert ":" not in value.split("://")[-1].split("@")[0], f"{name}: password in {url}"


def test_every_container_has_a_health_check() -> None:
    for name, spec in SERVICES.items():
        assert "healthcheck" in spec and spec["healthcheck"]["test"], f"{name} has no healthcheck"


def test_app_containers_wait_for_healthy_dependencies() -> None:
    for name, spec in APP_SERVICES.items():
        if name in ONE_SHOTS:
            continue
        conditions = {dep: cond["condition"] for dep, cond in spec["depends_on"].items()}
        assert conditions["postgres"] == "service_healthy", name
        assert conditions["rabbitmq"] == "service_healthy", name
    assert SERVICES["setup"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    users = SERVICES["rabbitmq"]["depends_on"]["broker-users"]
    assert users == {"condition": "service_completed_successfully"}


def test_every_container_stops_gracefully_with_init_and_rotated_logs() -> None:
    for name, spec in SERVICES.items():
        assert spec["init"] is True, name
        assert spec["logging"]["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(spec["logging"]["options"]), name
    assert SERVICES["recalculator"]["stop_grace_period"] == "60s"  # SHUTDOWN_GRACE 30s + drain
    assert "version" not in COMPOSE
    assert SERVICES["rabbitmq"]["ports"] == ["127.0.0.1:15672:15672"]


def test_health_check_ports_match_the_ports_the_services_listen_on() -> None:
    for name, spec in APP_SERVICES.items():
        test = " ".join(spec["healthcheck"]["test"])
        if "urlopen" not in test:
            continue
        port = re.search(r"127\.0\.0\.1:(\d+)/healthz", test)
        assert port, name
        command = spec["command"]
        listens = (
            command[command.index("--port") + 1]
            if "--port" in command
            else spec["environment"]["HEALTH_PORT"]
        )
        assert port.group(1) == listens, f"{name} checks {port.group(1)} but listens on {listens}"


def test_published_ports_do_not_clash() -> None:
    published = [
        port.split(":")[-2] for spec in SERVICES.values() for port in spec.get("ports", [])
    ]
    assert len(published) == len(set(published)), published


def test_named_volumes_keep_the_data() -> None:
    assert {"postgres-data", "rabbitmq-data"} <= set(COMPOSE["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]


def test_docker_compose_validates_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is installed by `make test` (scripts/ensure-tools.sh)"
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [binary, "-f", str(tmp_path / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    ledger_env = resolved["services"]["job-ledger"]["environment"]
    assert ledger_env["ADMIN_PASSWORD_FILE"] == "/run/secrets/admin_password"
    assert ledger_env["DATABASE_URL"] == "postgresql://job_ledger@postgres:5432/chainsights"
    assert resolved["secrets"]["admin_password"]["file"] == str(tmp_path / "secrets/admin_password")


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_app_containers_use_the_one_image(service: str) -> None:
    assert APP_SERVICES[service]["image"] == "chainsights-jobs:latest"


def test_the_image_runs_as_a_non_root_user_without_build_tools() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    final = stages[-1]
    assert len(stages) >= 2, "a build stage and a slim final stage"
    assert final.startswith("python:3.13-slim")
    assert "\nUSER app" in final
    assert "pip install" not in final and "apt-get" not in final
    assert "COPY --from=build /opt/venv /opt/venv" in final
    # Dependencies are installed before the sources are copied: their layer stays cached.
    build = stages[-2]
    assert build.index("pip install -r requirements.lock --require-hashes") < build.index(
        "COPY services"
    )
    assert "pip install --no-deps --no-build-isolation ." in build

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
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# Variables only compose itself reads (to build DATABASE_URL and AMQP_URL, to publish a port).
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "LEDGER_PUBLISHED_PORT"}
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
    for name, spec in APP_SERVICES.items():
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
            assert variable in documented, f"{name}: {variable} missing from .env.example"
            assert variable in SETTINGS_VARS, f"{name}: no service reads {variable}"


def test_every_variable_in_env_example_is_read_by_a_service_or_by_compose() -> None:
    unread = env_example_vars() - SETTINGS_VARS - COMPOSE_ONLY
    assert unread == set(), f".env.example lists variables nothing reads: {sorted(unread)}"


def test_every_setting_of_every_service_is_in_env_example() -> None:
    missing = SETTINGS_VARS - env_example_vars()
    assert missing == set(), f"settings not documented in .env.example: {sorted(missing)}"


def test_secrets_have_no_defaults_in_the_compose_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for secret in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "ADMIN_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        assert all(use.startswith(":?") for use in uses), f"{secret} has a default: {uses}"


def test_every_container_has_a_health_check() -> None:
    for name, spec in SERVICES.items():
        assert "healthcheck" in spec and spec["healthcheck"]["test"], f"{name} has no healthcheck"


def test_app_containers_wait_for_healthy_dependencies() -> None:
    for name, spec in APP_SERVICES.items():
        conditions = {dep: cond["condition"] for dep, cond in spec["depends_on"].items()}
        assert conditions["postgres"] == "service_healthy", name
        assert conditions["rabbitmq"] == "service_healthy", name


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
    env = (ROOT / ".env.example").read_text()
    for secret in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "ADMIN_PASSWORD"):
        env = env.replace(f"\n{secret}=\n", f"\n{secret}=not-a-real-secret\n")
    (tmp_path / ".env").write_text(env)
    result = subprocess.run(
        [binary, "-f", str(tmp_path / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    ledger_env = resolved["services"]["job-ledger"]["environment"]
    assert ledger_env["ADMIN_PASSWORD"] == "not-a-real-secret"
    assert ledger_env["DATABASE_URL"].startswith("postgresql://chainsights:not-a-real-secret@")


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [binary, "-f", str(tmp_path / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in result.stderr


@pytest.mark.parametrize("service", sorted(APP_SERVICES))
def test_app_containers_use_the_one_image(service: str) -> None:
    assert APP_SERVICES[service]["image"] == "chainsights-jobs:latest"


def test_the_image_runs_as_a_non_root_user_without_build_tools() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    final = stages[-1]
    assert len(stages) >= 2, "a build stage and a slim final stage"
    assert final.startswith("python:3.11-slim")
    assert "\nUSER app" in final
    assert "pip install" not in final and "apt-get" not in final
    assert "COPY --from=build /opt/venv /opt/venv" in final
    # Dependencies are installed before the sources are copied: their layer stays cached.
    build = stages[-2]
    assert build.index("pip install -r") < build.index("COPY services")

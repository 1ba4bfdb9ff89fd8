"""The contract documents pass the official validators, and the checks that say so can fail.

The AsyncAPI document is parsed by ``@asyncapi/parser`` under Node (the parser of AsyncAPI
Studio and the generators), the OpenAPI document the ledger serves by openapi-spec-validator,
each through the script ``make contract-check`` runs. Each check is also fed a document its
validator refuses, so a check that passes everything would fail here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from contracts.asyncapi import ASYNCAPI_PATH, build_document
from tests.support.ledger_web import Ledger

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "tools" / "contract-check"


@pytest.fixture(scope="session")
def asyncapi_parser() -> Path:
    """The Node checker, with the pinned parser installed (a no-op when it already is)."""
    install = subprocess.run(
        ["bash", str(CHECKS / "install.sh")], capture_output=True, text=True, timeout=240
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return CHECKS / "check-asyncapi.mjs"


def check_asyncapi(checker: Path, document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(checker), str(document)], capture_output=True, text=True, timeout=120
    )


def check_openapi(document: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECKS / "check_openapi.py"), str(document)],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def served_openapi(ledger: Ledger, http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get(f"{ledger.url}/openapi.json") as response:
        assert response.status == 200
        document: dict[str, Any] = await response.json()
        return document


def test_the_committed_asyncapi_document_is_accepted_by_the_asyncapi_parser(
    asyncapi_parser: Path,
) -> None:
    result = check_asyncapi(asyncapi_parser, ASYNCAPI_PATH)
    assert result.returncode == 0, result.stderr
    assert "valid AsyncAPI" in result.stdout


def test_the_asyncapi_check_fails_on_delivery_mode_in_a_message_binding(
    asyncapi_parser: Path, tmp_path: Path
) -> None:
    document = build_document()
    document["components"]["messages"]["JobStarted"]["bindings"]["amqp"]["deliveryMode"] = 2
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    result = check_asyncapi(asyncapi_parser, broken)
    assert result.returncode == 1
    assert 'Property "deliveryMode" is not expected to be here' in result.stderr
    assert "components.messages.JobStarted.bindings.amqp.deliveryMode" in result.stderr


async def test_the_served_openapi_document_is_accepted_by_openapi_spec_validator(
    ledger: Ledger, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    served = tmp_path / "openapi.json"
    served.write_text(json.dumps(await served_openapi(ledger, http)), encoding="utf-8")
    result = check_openapi(served)
    assert result.returncode == 0, result.stderr
    assert "valid OpenAPI" in result.stdout


async def test_the_openapi_check_fails_on_a_response_without_a_description(
    ledger: Ledger, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    document = await served_openapi(ledger, http)
    del document["paths"]["/openapi.json"]["get"]["responses"]["200"]["description"]
    broken = tmp_path / "openapi.json"
    broken.write_text(json.dumps(document), encoding="utf-8")
    result = check_openapi(broken)
    assert result.returncode == 1
    assert "'description' is a required property" in result.stderr.replace('"', "'")
    assert "(at /paths/~1openapi.json/get/responses/200)" in result.stderr

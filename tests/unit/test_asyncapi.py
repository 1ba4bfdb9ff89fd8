"""The published AsyncAPI document must be what the models generate."""

from __future__ import annotations

import yaml

from contracts.asyncapi import ASYNCAPI_PATH, build_document, render
from contracts.events import EVENT_TYPES


def test_committed_asyncapi_file_matches_the_models() -> None:
    assert ASYNCAPI_PATH.read_text(encoding="utf-8") == render(), (
        "contracts/asyncapi.yaml is stale: run `python -m contracts asyncapi`"
    )


def test_asyncapi_lists_every_event_with_its_routing_key_and_schema() -> None:
    doc = yaml.safe_load(render())
    assert doc["asyncapi"] == "3.0.0"
    for event_type in EVENT_TYPES:
        channel = doc["channels"][event_type[0].lower() + event_type[1:]]
        assert channel["address"].startswith("{job_name}.")
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "jobs.events"
        schema = doc["components"]["schemas"][event_type]
        assert {"event_id", "job_id", "payload", "schema_version"} <= set(schema["properties"])
    assert build_document()["channels"]["runRequested"]["address"] == "recalculator.commands"

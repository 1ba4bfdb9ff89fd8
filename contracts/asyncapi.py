"""The AsyncAPI 3.0 document of the contract, generated from the models.

``python -m contracts asyncapi`` rewrites ``contracts/asyncapi.yaml``; a test fails when the
committed file differs from what the models generate.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.commands import RunRequested
from contracts.events import EVENT_TYPES, ROUTING_KINDS, SCHEMA_VERSION
from contracts.topology import COMMANDS_QUEUE_DEFAULT, EXCHANGE_DEFAULT

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.yaml"

_PUBLISHERS = {
    "JobStarted": "recalculator",
    "DaoProcessed": "recalculator",
    "DaoFailed": "recalculator",
    "JobFinished": "recalculator",
    "JobAbandoned": "job-ledger (watchdog)",
    "JobMissed": "job-ledger (schedule check)",
    "NotificationSent": "notifier",
    "NotificationFailed": "notifier",
    "NotificationSkipped": "notifier",
    "RunAccepted": "recalculator (worker)",
    "RunRefused": "recalculator (worker)",
}


def _schemas() -> dict[str, Any]:
    all_models: list[type[BaseModel]] = [*EVENT_TYPES.values(), RunRequested]
    models: list[tuple[type[BaseModel], Any]] = [(m, "validation") for m in all_models]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    return dict(sorted(top["$defs"].items()))


def _channel_name(event_type: str) -> str:
    return event_type[0].lower() + event_type[1:]


def build_document() -> dict[str, Any]:
    """Return the AsyncAPI document as plain data."""
    exchange_binding = {
        "is": "routingKey",
        "exchange": {
            "name": EXCHANGE_DEFAULT,
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        },
        "bindingVersion": "0.3.0",
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type in EVENT_TYPES:
        name = _channel_name(event_type)
        channels[name] = {
            "address": "{job_name}." + ROUTING_KINDS[event_type],
            "description": f"{event_type}, published by the {_PUBLISHERS[event_type]}.",
            "parameters": {"job_name": {"description": "The job, e.g. weekly-gvs-recalculation."}},
            "messages": {event_type: {"$ref": f"#/components/messages/{event_type}"}},
            # A copy each, so that the YAML has no anchors for a reader to chase.
            "bindings": {"amqp": copy.deepcopy(exchange_binding)},
        }
        operations[f"receive{event_type}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Subscribe to {event_type} (bind '#.{ROUTING_KINDS[event_type]}').",
        }
        messages[event_type] = _message(event_type)
    channels["runRequested"] = {
        "address": COMMANDS_QUEUE_DEFAULT,
        "description": "Commands to the recalculator, published to the default exchange.",
        "messages": {"RunRequested": {"$ref": "#/components/messages/RunRequested"}},
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": COMMANDS_QUEUE_DEFAULT,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": "0.3.0",
            }
        },
    }
    operations["sendRunRequested"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/runRequested"},
        "summary": "Ask for a run of all active DAOs, or of a subset.",
    }
    messages["RunRequested"] = _message("RunRequested")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "chainsights-jobs events",
            "version": f"{SCHEMA_VERSION}.0.0",
            "description": (
                "Every step of every job run, as events on the topic exchange "
                f"'{EXCHANGE_DEFAULT}'. Deduplicate by event_id; order by sequence; reject a "
                "schema_version you do not know. See contracts/README.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {"host": "rabbitmq:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _schemas()},
    }


def _message(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": name,
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {"schema_version": {"type": "integer", "const": SCHEMA_VERSION}},
        },
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "bindings": {"amqp": {"deliveryMode": 2, "messageType": name, "bindingVersion": "0.3.0"}},
    }


def render() -> str:
    header = "# Generated by `python -m contracts asyncapi` from contracts/*.py; do not edit.\n"
    return header + yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True)


def write(path: Path = ASYNCAPI_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path

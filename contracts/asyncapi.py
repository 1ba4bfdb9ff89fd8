"""The AsyncAPI 3.0 document of the contract, generated from the models.

``python -m contracts asyncapi`` rewrites ``contracts/asyncapi.yaml``; a test fails when the
committed file differs from what the models generate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from contracts.commands import RunRequested
from contracts.events import EVENT_TYPES, ROUTING_KINDS, SCHEMA_VERSION
from contracts.topology import COMMANDS_QUEUE_DEFAULT, EXCHANGE_DEFAULT

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.yaml"
_AMQP_BINDING_VERSION = "0.3.0"

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
            "bindings": {"amqp": _exchange_binding()},
        }
        operations[f"receive{event_type}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": f"Subscribe to {event_type} (bind '#.{ROUTING_KINDS[event_type]}').",
            "bindings": {"amqp": _operation_binding("receive")},
        }
        messages[event_type] = _message(event_type)
    channels["runRequested"] = _commands_channel()
    operations["sendRunRequested"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/runRequested"},
        "summary": "Ask for a run of all active DAOs, or of a subset.",
        "bindings": {"amqp": _operation_binding("send")},
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


def _exchange_binding() -> dict[str, Any]:
    """Return the AMQP binding of an event channel: the durable topic exchange.

    A new dict each call, so that the YAML has no anchors for a reader to chase.
    """
    return {
        "is": "routingKey",
        "exchange": {
            "name": EXCHANGE_DEFAULT,
            "type": "topic",
            "durable": True,
            "autoDelete": False,
            "vhost": "/",
        },
        "bindingVersion": _AMQP_BINDING_VERSION,
    }


def _commands_channel() -> dict[str, Any]:
    """Return the channel of the commands queue, reached through the default exchange."""
    return {
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
                "bindingVersion": _AMQP_BINDING_VERSION,
            }
        },
    }


def _operation_binding(action: str) -> dict[str, Any]:
    """Return the AMQP operation binding for ``action`` (``"send"`` or ``"receive"``).

    The AMQP binding puts how a message is published on the operation, not on the message:
    every message is persistent (delivery mode 2) and carries a timestamp; a sender publishes
    with ``mandatory`` (an unroutable message is an error, not a silent drop); a receiver acks.
    """
    binding: dict[str, Any] = {"deliveryMode": 2, "timestamp": True}
    if action == "send":
        binding["mandatory"] = True
    else:
        binding["ack"] = True
    binding["bindingVersion"] = _AMQP_BINDING_VERSION
    return binding


def _message(name: str) -> dict[str, Any]:
    """Return the message ``name``: its header, payload schema and AMQP ``type`` property."""
    return {
        "name": name,
        "title": name,
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {"schema_version": {"type": "integer", "const": SCHEMA_VERSION}},
        },
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "bindings": {"amqp": {"messageType": name, "bindingVersion": _AMQP_BINDING_VERSION}},
    }


def render() -> str:
    header = "# Generated by `python -m contracts asyncapi` from contracts/*.py; do not edit.\n"
    return header + yaml.safe_dump(build_document(), sort_keys=False, allow_unicode=True)


def write(path: Path = ASYNCAPI_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path

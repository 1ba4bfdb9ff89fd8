"""The wire encoding: bytes in, a validated model out (or one ``ContractError``), and back.

Parse once at the edge: a consumer calls :func:`parse_event` on the message body and passes
the model inward. Everything that is wrong with a body is reported as a ``ContractError`` whose
message says what, so that a dead letter carries a reason an operator can act on.
"""

from __future__ import annotations

from typing import Any, cast

import aio_pika
import orjson
from pydantic import ValidationError

from contracts.commands import RunRequested
from contracts.events import EVENT_TYPES, SCHEMA_VERSION, Envelope, Event, routing_key

MAX_BODY_BYTES = 1_000_000


class ContractError(ValueError):
    """A message body that is not a valid event or command of a known schema version."""


def _load_object(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise ContractError(f"body is {len(body)} bytes, over the {MAX_BODY_BYTES} allowed")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ContractError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContractError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _check_version(data: dict[str, Any]) -> None:
    version = data.get("schema_version")
    if version is None:
        raise ContractError("missing field schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise ContractError(
            f"unknown schema_version {version!r}; this consumer knows {SCHEMA_VERSION}"
        )


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``payload.error: String should have at most 2000 characters``."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{location}: {err['msg']}")
    return "; ".join(parts)


def parse_event(body: bytes) -> Event:
    """Return the validated event in ``body``.

    Raises ``ContractError`` for invalid JSON, a non-object, an unknown ``event_type`` or
    ``schema_version``, a missing field, a wrong type or a value out of range.
    """
    data = _load_object(body)
    _check_version(data)
    event_type = data.get("event_type")
    if event_type not in EVENT_TYPES:
        raise ContractError(f"unknown event_type {event_type!r}")
    try:
        # Validating against the one model (not the union) keeps error locations short.
        return cast(Event, EVENT_TYPES[event_type].model_validate(data))
    except ValidationError as exc:
        raise ContractError(f"invalid {event_type}: {describe_validation_error(exc)}") from None


def parse_command(body: bytes) -> RunRequested:
    """Return the validated ``RunRequested`` in ``body``; raises ``ContractError`` otherwise."""
    data = _load_object(body)
    _check_version(data)
    command_type = data.get("command_type", "RunRequested")
    if command_type != "RunRequested":
        raise ContractError(f"unknown command_type {command_type!r}")
    try:
        return RunRequested.model_validate(data)
    except ValidationError as exc:
        raise ContractError(f"invalid RunRequested: {describe_validation_error(exc)}") from None


def event_body(event: Envelope) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def encode_event(event: Envelope) -> aio_pika.Message:
    """The AMQP message for ``event``, with the properties the README's event contract lists.

    Publish it under :func:`contracts.events.routing_key` with ``mandatory=True``.
    """
    return aio_pika.Message(
        body=event_body(event),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(event.event_id),
        type=type(event).__name__,
        timestamp=event.occurred_at,
        headers={"schema_version": event.schema_version},
    )


def encode_command(command: RunRequested) -> aio_pika.Message:
    """The AMQP message for a command, published to the commands queue by name."""
    return aio_pika.Message(
        body=orjson.dumps(command.model_dump(mode="json")),
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=str(command.request_id),
        type=command.command_type,
        timestamp=command.requested_at,
        headers={"schema_version": command.schema_version},
    )


__all__ = [
    "ContractError",
    "encode_command",
    "encode_event",
    "event_body",
    "parse_command",
    "parse_event",
    "routing_key",
]

"""The OpenAPI 3.1 document of the ledger's HTTP API: the models of ``schemas``, and the paths.

The component schemas are generated from :mod:`job_ledger.web.schemas`; the paths (every
route, parameter and status the handlers answer) are written here as data. The schemathesis
test holds the served document to what the handlers do. :func:`openapi_document` is the one
entry point: the app serves what it returns.
"""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from contracts.events import JOB_NAME_PATTERN
from job_ledger.web.api import EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT
from job_ledger.web.params import BEFORE_FORMAT, CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from job_ledger.web.schemas import DOCUMENTED

Schema = dict[str, Any]

_UUID: Schema = {"type": "string", "format": "uuid"}
_JOB_NAME: Schema = {"type": "string", "pattern": JOB_NAME_PATTERN}


class _UntitledSchema(GenerateJsonSchema):
    """pydantic's JSON Schema without the titles it derives from class and field names."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        generated = super().model_schema(schema)
        generated.pop("title", None)
        return generated


def component_schemas() -> dict[str, Schema]:
    """The ``components.schemas`` of the document: every model of ``schemas`` it names."""
    _, top = models_json_schema(
        [(model, "validation") for model in DOCUMENTED],
        ref_template="#/components/schemas/{model}",
        schema_generator=_UntitledSchema,
    )
    return dict(sorted(top["$defs"].items()))


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error")}},
    }


def _ok(schema_name: str, description: str, status: str = "200") -> dict[str, Schema]:
    return {
        status: {
            "description": description,
            "content": {"application/json": {"schema": _ref(schema_name)}},
        }
    }


_COMMON_ERRORS = {
    "401": _error("No or a wrong Bearer token."),
    "429": {
        **_error("Too many failed credentials from this client; try again after Retry-After."),
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before this client may try again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    },
    "500": _error("An unexpected error; nothing internal is shown."),
    "503": _error("The database (or, when publishing, the broker) is unavailable."),
}
_JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": _UUID,
    "description": "The job's id (job_logs.id); anything but a UUID is a 400.",
}
_JOB_NAME_QUERY = {
    "name": "jobName",
    "in": "query",
    "required": False,
    "schema": _JOB_NAME,
    "description": "Only jobs of this name.",
}


def _limit(default: int, maximum: int) -> Schema:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "default": default},
        "description": f"How many, from 1; values above {maximum} are capped at {maximum}.",
    }


def _plain_get(description: str, media_type: str, not_ready: bool = False) -> Schema:
    responses: Schema = {
        "200": {"description": description, "content": {media_type: {"schema": {}}}}
    }
    if not_ready:
        responses["503"] = {
            "description": "Not ready; the failing checks are named.",
            "content": {"application/json": {"schema": {}}},
        }
    return {"get": {"summary": description, "security": [], "responses": responses}}


PATHS: dict[str, Schema] = {
    "/api/admin/job-logs": {
        "get": {
            "summary": "Job executions, newest startedAt first; or, with id, that one job.",
            "description": "Pages through the whole history: each answer's `meta.nextBefore` is"
            " the cursor of the next, older page (null on the last), to pass as `before`."
            " Pages are cut by (startedAt, id), so a job recorded while paging shifts nothing."
            " With `id` the list holds that one job (404 when unknown).",
            "parameters": [
                _limit(DEFAULT_LIMIT, MAX_LIMIT),
                {
                    "name": "before",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": f"^{CURSOR_PATTERN}$"},
                    "description": f"Only jobs older than this cursor, {BEFORE_FORMAT}:"
                    " (startedAt, id) of the last job seen, startedAt in microseconds since"
                    " 1970-01-01T00:00:00Z. Anything else is a 400. With id: 404 unless that"
                    " job is older.",
                    "example": "1766361600123456,0b9e7a53-6f5c-4d4e-9a51-2d8f6c1e4b7a",
                },
                {
                    "name": "id",
                    "in": "query",
                    "required": False,
                    "schema": _UUID,
                    "description": "One job only; anything but a UUID is a 400.",
                },
                _JOB_NAME_QUERY,
            ],
            "responses": {
                **_ok("JobLogList", "The jobs, as `{data, meta: {count, limit, nextBefore}}`."),
                "400": _error("A malformed limit, id, jobName or before."),
                "404": _error("No job with this id (of jobName, older than before)."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/api/admin/job-logs/{id}/events": {
        "get": {
            "summary": "The job's raw events in sequence order (unsequenced ones last, by time).",
            "parameters": [
                _JOB_ID,
                _limit(EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT),
                {
                    "name": "offset",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0, "default": 0},
                },
            ],
            "responses": {
                **_ok("JobEventList", "A page of the events and how many there are."),
                "400": _error("A malformed id, limit or offset."),
                "404": _error("No job with this id."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/api/admin/job-logs/{id}/errors": {
        "get": {
            "summary": "The job's failures grouped by error message, biggest group first.",
            "parameters": [_JOB_ID],
            "responses": {
                **_ok("FailureGroupList", "The groups with their DAOs."),
                "400": _error("A malformed id."),
                "404": _error("No job with this id."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/api/admin/job-logs/{id}/retry-failed": {
        "post": {
            "summary": "Ask for a retry run (trigger retry) of the job's failed DAOs.",
            "parameters": [_JOB_ID],
            "responses": {
                **_ok("RunAccepted", "The broker confirmed the RunRequested.", "202"),
                "400": _error("A malformed id."),
                "404": _error("No job with this id."),
                "409": _error("The job is still running, or it has no failed DAOs."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/api/admin/job-stats": {
        "get": {
            "summary": "Duration p50/p95, failure rate and last success over the newest 30 runs"
            " (the window: windowRuns, windowStart, windowEnd).",
            "parameters": [_JOB_NAME_QUERY],
            "responses": {
                **_ok("JobStats", "The statistics."),
                "400": _error("A malformed jobName."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/api/admin/jobs/run": {
        "post": {
            "summary": "Ask for a manual run of every active DAO (or of daoIds).",
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": _ref("RunRequest")}},
            },
            "responses": {
                **_ok("RunAccepted", "The broker confirmed the RunRequested.", "202"),
                "400": _error("A body that is not the RunRequest object."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/api/admin/run-requests/{requestId}": {
        "get": {
            "summary": "What became of a run request: pending, accepted or refused.",
            "parameters": [
                {
                    "name": "requestId",
                    "in": "path",
                    "required": True,
                    "schema": _UUID,
                    "description": "The requestId POST returned (or the CLI printed);"
                    " anything but a UUID is a 400.",
                }
            ],
            "responses": {
                **_ok("RunRequestOutcome", "The request and its outcome."),
                "400": _error("A malformed requestId."),
                "404": _error("No run request with this id (not made here, not answered yet)."),
                **_COMMON_ERRORS,
            },
        }
    },
    "/healthz": _plain_get("The process is alive.", "application/json"),
    "/readyz": _plain_get("Every readiness check passes.", "application/json", not_ready=True),
    "/metrics": _plain_get("Prometheus metrics in the text format.", "text/plain"),
    "/openapi.json": _plain_get("This document.", "application/json"),
}


def openapi_document(server_url: str | None = None) -> Schema:
    """Return the OpenAPI 3.1 document (a new dict each call; callers may serialise it)."""
    doc: Schema = {
        "openapi": "3.1.0",
        "info": {
            "title": "chainsights-jobs job-ledger",
            "version": "1.0.0",
            "description": "Job execution history of the weekly GVS recalculation (and any"
            " batch job speaking the event contract). Every error is"
            " `{error: {message, code, statusCode}}`.",
        },
        "components": {
            "schemas": component_schemas(),
            "securitySchemes": {
                "admin": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <ADMIN_PASSWORD>",
                }
            },
        },
        "security": [{"admin": []}],
        "paths": PATHS,
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc

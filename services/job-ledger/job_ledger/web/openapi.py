"""The OpenAPI 3.1 document of the ledger's HTTP API, written as data and served as is.

Hand-written so that it says exactly what the handlers do (the schemathesis test holds it to
that): every route, parameter, status and field, including what the ledger adds to the story.
"""

from __future__ import annotations

from typing import Any

from contracts.events import JOB_NAME_PATTERN
from job_ledger.web.api import EVENTS_DEFAULT_LIMIT, EVENTS_MAX_LIMIT
from job_ledger.web.params import DEFAULT_LIMIT, MAX_LIMIT

Schema = dict[str, Any]


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_TIME: Schema = {"type": "string", "format": "date-time", "examples": ["2025-12-22T00:05:32.000Z"]}
_UUID: Schema = {"type": "string", "format": "uuid"}
_INT0: Schema = {"type": "integer", "minimum": 0}
_JOB_NAME: Schema = {"type": "string", "pattern": JOB_NAME_PATTERN}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], description: str = "") -> Schema:
    schema: Schema = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


SCHEMAS: dict[str, Schema] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "message": {"type": "string"},
                    "code": {
                        "type": "string",
                        "enum": [
                            "BAD_REQUEST",
                            "UNAUTHORIZED",
                            "NOT_FOUND",
                            "METHOD_NOT_ALLOWED",
                            "CONFLICT",
                            "INTERNAL",
                            "UNAVAILABLE",
                        ],
                    },
                    "statusCode": {"type": "integer"},
                }
            )
        },
        "Every error of the API, whatever its status.",
    ),
    "Failure": _object(
        {"daoId": {"type": "string"}, "daoName": {"type": "string"}, "error": {"type": "string"}}
    ),
    "Notification": _object(
        {
            "channel": {"type": "string", "examples": ["email", "slack"]},
            "kind": {"type": "string", "examples": ["success", "failure", "abandoned"]},
            "state": {"type": "string", "enum": ["sent", "failed", "skipped"]},
            "attempts": _INT0,
            "providerId": _nullable({"type": "string"}),
            "error": _nullable({"type": "string"}),
            "reason": _nullable({"type": "string"}),
            "occurredAt": _TIME,
        },
        "One alert delivery reported by the notifier (one per channel and kind): sent,"
        " failed (with the error after its attempts) or skipped (not tried because the"
        " channel is not configured, with the reason; error null, 0 attempts).",
    ),
    "Progress": _object(
        {
            "processed": _INT0,
            "failed": _INT0,
            "total": _INT0,
            "ratePerSecond": _nullable({"type": "number", "minimum": 0}),
            "etaSeconds": _nullable(_INT0),
            "lastEventAt": _nullable(_TIME),
        },
        "Live progress of a running job: DAOs done per second since it started, and the"
        " seconds left at that rate (null until a DAO is done).",
    ),
    "JobLog": _object(
        {
            "id": _UUID,
            "jobName": {"type": "string"},
            "startedAt": _TIME,
            "completedAt": _nullable(_TIME),
            "status": {"type": "string", "enum": ["running", "completed", "failed"]},
            "daosProcessed": _INT0,
            "daosTotal": _INT0,
            "errors": _nullable({"type": "array", "items": _ref("Failure")}),
            "durationMs": _nullable(_INT0),
            "cacheInvalidated": {"type": "boolean"},
            "createdAt": _TIME,
            "updatedAt": _TIME,
            "trigger": _nullable({"type": "string", "examples": ["cron", "manual", "retry"]}),
            "daosFailed": _INT0,
            "fatalError": _nullable({"type": "string"}),
            "lastEventAt": _nullable(_TIME),
            "abandonedAt": _nullable(_TIME),
            "outcome": {
                "type": "string",
                "enum": ["running", "completed", "failed", "abandoned", "missed"],
                "description": "What became of it. abandoned: the watchdog found the run"
                " silent (status failed); missed: no run started within the grace of the"
                " schedule slot scheduledFor (status failed, trigger cron, no DAOs, the"
                " sentence in fatalError).",
            },
            "scheduledFor": _nullable(_TIME),
            "eventsReceived": _INT0,
            "expectedEvents": _nullable(_INT0),
            "complete": {
                "type": "boolean",
                "description": "Every event up to JobFinished has arrived.",
            },
            "notifications": {"type": "array", "items": _ref("Notification")},
            "progress": _nullable(_ref("Progress")),
        },
        "A job execution, or a schedule slot no run started for (outcome missed, its id the"
        " one in the missed alert's link): the story's fields (id … updatedAt), then what the"
        " ledger adds. progress is null unless the job is running.",
    ),
    "JobLogList": _object(
        {
            "data": {"type": "array", "items": _ref("JobLog")},
            "meta": _object({"count": _INT0, "limit": {"type": "integer", "minimum": 1}}),
        }
    ),
    "JobEvent": _object(
        {
            "eventId": _UUID,
            "eventType": {"type": "string"},
            "schemaVersion": {"type": "integer"},
            "jobId": _UUID,
            "jobName": {"type": "string"},
            "sequence": _nullable(_INT0),
            "occurredAt": _TIME,
            "receivedAt": _TIME,
            "payload": {
                "type": "object",
                "description": "The event's payload exactly as the event contract sent it.",
            },
        }
    ),
    "JobEventList": _object(
        {
            "data": {"type": "array", "items": _ref("JobEvent")},
            "meta": _object(
                {
                    "count": _INT0,
                    "limit": {"type": "integer", "minimum": 1},
                    "offset": _INT0,
                    "total": _INT0,
                }
            ),
        }
    ),
    "FailureGroup": _object(
        {
            "error": {"type": "string"},
            "count": {"type": "integer", "minimum": 1},
            "daos": {
                "type": "array",
                "items": _object({"daoId": {"type": "string"}, "daoName": {"type": "string"}}),
            },
        }
    ),
    "FailureGroupList": _object(
        {
            "data": {"type": "array", "items": _ref("FailureGroup")},
            "meta": _object({"count": _INT0, "failures": _INT0}),
        }
    ),
    "JobStats": _object(
        {
            "data": _object(
                {
                    "jobName": _nullable({"type": "string"}),
                    "runs": _INT0,
                    "finished": _INT0,
                    "completed": _INT0,
                    "failed": _INT0,
                    "runsMissed": _INT0,
                    "running": _INT0,
                    "failureRate": _nullable({"type": "number", "minimum": 0, "maximum": 1}),
                    "durationP50Ms": _nullable(_INT0),
                    "durationP95Ms": _nullable(_INT0),
                    "lastSuccessAt": _nullable(_TIME),
                },
                "Over the newest 30 runs: failureRate is failed / finished runs (a missed"
                " schedule slot is a failed run, counted in runsMissed too), the percentiles"
                " (nearest rank) are of finished runs' durations (a missed slot has none);"
                " lastSuccessAt is the newest completed run ever.",
            )
        }
    ),
    "RunRequest": _object(
        {
            "jobName": _JOB_NAME,
            "daoIds": _nullable(
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "minLength": 1},
                }
            ),
        },
        "Optional body of POST /api/admin/jobs/run; both fields are optional.",
    )
    | {"required": []},
    "RunAccepted": _object(
        {
            "data": _object(
                {
                    "requestId": _UUID,
                    "jobName": {"type": "string"},
                    "trigger": {"type": "string", "enum": ["manual", "retry"]},
                    "daoIds": _nullable({"type": "array", "items": {"type": "string"}}),
                    "requestedAt": _TIME,
                }
            )
        },
        "The RunRequested the broker confirmed; what became of it is at"
        " GET /api/admin/run-requests/{requestId}.",
    ),
    "RunRequestOutcome": _object(
        {
            "data": _object(
                {
                    "requestId": _UUID,
                    "jobName": {"type": "string"},
                    "trigger": {"type": "string", "examples": ["manual", "retry", "cron"]},
                    "state": {"type": "string", "enum": ["pending", "accepted", "refused"]},
                    "jobId": _nullable(_UUID),
                    "reason": _nullable({"type": "string"}),
                    "requestedAt": _nullable(_TIME),
                    "answeredAt": _nullable(_TIME),
                }
            )
        },
        "What became of a run request: pending until the recalculator answers, then accepted"
        " (jobId: the job it started) or refused (reason: why nothing started). requestedAt"
        " is null for a request the ledger did not publish itself (CLI, cron).",
    ),
}


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
            "description": "With `id` the list holds that one job (404 when unknown).",
            "parameters": [
                _limit(DEFAULT_LIMIT, MAX_LIMIT),
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
                **_ok("JobLogList", "The jobs, as `{data, meta: {count, limit}}`."),
                "400": _error("A malformed limit, id or jobName."),
                "404": _error("No job with this id."),
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
            "summary": "Duration p50/p95, failure rate and last success over the newest 30 runs.",
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
            "schemas": SCHEMAS,
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

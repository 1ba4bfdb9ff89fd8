"""The OpenAPI document names every route the app serves, with the same methods, and no more."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
from starlette.routing import Mount, Route

from contracts import RunRequested
from job_ledger.web import create_app
from job_ledger.web.openapi import openapi_document
from tests.support.ledger_web import JOB_LOG_STORY_FIELDS


async def _publish(_: RunRequested) -> None:
    return None


def served_operations() -> set[tuple[str, str]]:
    app = create_app(
        pool=cast(asyncpg.Pool, object()),  # never touched while building the app
        admin_password="pw",
        request_run=_publish,
        readiness={},
        session_secret="secret",
        admin_base_url="http://localhost:8080",
        job_name="weekly-gvs-recalculation",
        job_schedule="0 0 * * 1",
    )
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/api":
            for inner in route.routes:
                assert isinstance(inner, Route)
                found |= {(m, "/api" + inner.path) for m in inner.methods or () if m != "HEAD"}
        elif isinstance(route, Route) and not route.path.startswith("/admin"):
            found |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    return found


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item}


def test_every_served_json_route_is_documented_and_nothing_else() -> None:
    assert documented_operations(openapi_document()) == served_operations()


def test_the_document_is_openapi_3_1_with_bearer_security_on_the_api_only() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["admin"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <ADMIN_PASSWORD>",
    }
    for path, item in doc["paths"].items():
        for operation in item.values():
            public = operation.get("security") == []
            assert public == (not path.startswith("/api/")), path
            if not public:
                assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }


def test_the_job_log_schema_lists_the_storys_fields() -> None:
    fields = openapi_document()["components"]["schemas"]["JobLog"]["required"]
    assert tuple(fields[: len(JOB_LOG_STORY_FIELDS)]) == JOB_LOG_STORY_FIELDS

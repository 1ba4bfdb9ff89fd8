"""The admin pages (placeholder until the pages land)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.routing import BaseRoute

from job_ledger.web.auth import LoginThrottle, SessionKeys
from job_ledger.web.context import WebContext


@dataclass(frozen=True)
class PageSettings:
    password: str
    keys: SessionKeys
    throttle: LoginThrottle
    secure_cookies: bool


def page_routes(ctx: WebContext, settings: PageSettings) -> list[BaseRoute]:
    return []

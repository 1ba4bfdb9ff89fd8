"""HTML rendering: Jinja2 templates from ``templates/``, autoescaped, with safe headers.

Autoescaping is on for every template, so a DAO name or an error text from an event is shown
as text, never run as markup. Templates are loaded in a worker thread (file reads stay off the
event loop) and cached after the first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from starlette.responses import HTMLResponse

from job_ledger.web.display import DISPLAY_FILTERS

# No script runs on these pages at all; styles are inline in the layout.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("job_ledger.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(DISPLAY_FILTERS)
    return env


async def template(name: str) -> Template:
    """Return the compiled template ``name``; the first call reads it in a worker thread."""
    return await asyncio.to_thread(environment().get_template, name)


async def render_page(
    name: str,
    context: Mapping[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """Return ``name`` rendered with ``context`` as an HTML response with the safe headers."""
    html = (await template(name)).render(**context)
    return HTMLResponse(
        html, status_code=status_code, headers={**SECURITY_HEADERS, **(headers or {})}
    )


async def render_error_page(status_code: int, message: str) -> HTMLResponse:
    """Return the error page for ``status_code`` saying ``message``."""
    return await render_page(
        "error.html", {"status_code": status_code, "message": message}, status_code
    )

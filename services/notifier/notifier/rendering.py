"""The email for an alert: subject, HTML and plain-text parts, from the templates in ``templates/``.

Templates live in ``notifier/templates/email/`` as ``<kind>.subject.txt``, ``<kind>.txt`` and
``<kind>.html``. HTML is autoescaped, so every DAO name, error text and URL arrives as text,
never as markup; the subject and the text part are plain text and are not escaped (an
``&amp;`` there would be shown as such). ``StrictUndefined`` turns a misspelt variable into an
error instead of an empty string in an email. Every moment is written in the zone the email is
rendered for (``ADMIN_TIMEZONE``), with the zone's abbreviation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from chassis.local_time import UTC_ZONE, local_moment
from notifier.alert import Alert


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The three parts of one email, ready for the provider."""

    subject: str
    html: str
    text: str


def human_duration(ms: int) -> str:
    """Return a duration for people: ``850ms``, ``42s``, ``5m 32s``, ``1h 5m``.

    Below a second it counts milliseconds; above, whole seconds (rounded down), leaving out
    zero parts. Raises ValueError for a negative duration.
    """
    if ms < 0:
        raise ValueError(f"negative duration: {ms}ms")
    if ms < 1000:
        return f"{ms}ms"
    minutes, seconds = divmod(ms // 1000, 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return " ".join(parts)


def render_email(alert: Alert, zone: ZoneInfo = UTC_ZONE) -> RenderedEmail:
    """Return the email for ``alert``, chosen by ``alert.kind``, its moments in ``zone``.

    The subject is folded onto one line (a header cannot hold a newline). Raises
    jinja2.UndefinedError if a template uses a value the alert does not have, which a test
    of every kind catches before it reaches an admin.
    """
    env = _environment()
    context = {"alert": alert, "zone": zone}
    subject = " ".join(env.get_template(f"email/{alert.kind}.subject.txt").render(context).split())
    return RenderedEmail(
        subject=subject,
        html=env.get_template(f"email/{alert.kind}.html").render(context, subject=subject),
        text=env.get_template(f"email/{alert.kind}.txt").render(context).strip() + "\n",
    )


@cache
def _environment() -> Environment:
    # Built on first use, not at import: importing the module stays free of file access.
    env = Environment(
        loader=PackageLoader("notifier", "templates"),
        # Escape everything but the plain-text parts; an unknown extension is escaped too.
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default=True
        ),
        undefined=StrictUndefined,
        # The templates ship with the package and never change while it runs: without this,
        # every render stats each template file (blocking the event loop) to check it.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = human_duration
    env.filters["seconds"] = lambda s: human_duration(s * 1000)
    env.filters["timestamp"] = _timestamp
    return env


@pass_context
def _timestamp(context: Context, moment: datetime) -> str:
    # The zone is the render's, not the environment's: one environment serves every zone.
    return local_moment(moment, context["zone"])

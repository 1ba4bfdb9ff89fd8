"""The broker's addresses as ``AMQP_URL`` gives them: one URL, or several comma-separated.

One URL per node of a RabbitMQ cluster, tried in the order written. :func:`parse_amqp_urls`
checks the list and never repeats a URL in its errors (a URL may hold a password);
:func:`redact_url` makes a URL, or a list of them, fit for a log line.
"""

from __future__ import annotations

from yarl import URL

AMQP_SCHEMES = ("amqp", "amqps")


def parse_amqp_urls(text: str) -> tuple[str, ...]:
    """Return the URLs of a comma-separated list, blanks around each removed, in order.

    Raises ``ValueError`` when the list holds no URL, an empty entry, or an entry that is not
    an ``amqp://`` or ``amqps://`` URL with a host; the message names the entry by its
    position, never by its text.
    """
    entries = [entry.strip() for entry in text.split(",")]
    if entries == [""]:
        raise ValueError("no broker URL: give one amqp:// URL, or one per node comma-separated")
    for position, entry in enumerate(entries, start=1):
        where = f"address {position} of {len(entries)}"
        if not entry:
            raise ValueError(f"{where} is empty (a stray comma?)")
        problem = _url_problem(entry)
        if problem:
            raise ValueError(f"{where} {problem}")
    return tuple(entries)


def _url_problem(entry: str) -> str | None:
    try:
        url = URL(entry)
        port = url.explicit_port  # none written: the scheme's (5672, 5671 for amqps)
    except ValueError:
        return "is not a valid URL"
    if url.scheme not in AMQP_SCHEMES:
        return "is not an amqp:// or amqps:// URL"
    if not url.host:
        return "has no host"
    if port is not None and not 0 < port < 65536:
        return "has no valid port"
    return None


def redact_url(url: str) -> str:
    """``url`` (or each URL of a comma-separated list) with its password replaced by ``***``."""
    return ",".join(_redact_one(entry.strip()) for entry in url.split(","))


def _redact_one(url: str) -> str:
    try:
        parsed = URL(url)
    except ValueError:
        return "<not a URL>"
    return str(parsed.with_password("***")) if parsed.password else url

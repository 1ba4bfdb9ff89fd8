"""Logging set-up, done once in ``__main__``: JSON lines in containers, readable text on a terminal.

Pass context as ``extra={"job_id": ..., "event_id": ...}``; both formats print it.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Literal

import orjson

_CONTEXT_KEYS = ("job_id", "event_id", "request_id", "dao_id", "channel", "kind", "queue")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            if (value := getattr(record, key, None)) is not None:
                line[key] = str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = " ".join(
            f"{key}={value}"
            for key in _CONTEXT_KEYS
            if (value := getattr(record, key, None)) is not None
        )
        return f"{text} [{context}]" if context else text


def configure_logging(level: str = "INFO", fmt: Literal["auto", "json", "text"] = "auto") -> None:
    """Send every log line to stderr, as JSON unless stderr is a terminal (or ``fmt`` says)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Library chatter about every reconnect attempt would drown what the operator needs.
    for noisy in ("aiormq", "aio_pika", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))

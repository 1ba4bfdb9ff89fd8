"""A loopback Slack incoming webhook that records every message and answers as scripted.

Slack answers ``ok`` as text/plain, and errors as plain text too (``invalid_payload``…):
https://api.slack.com/messaging/webhooks#handling_errors. The webhook path is
``/services/T000/B000/secret``, as real webhook URLs look.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.support.fake_resend import FakeProvider, Recorded, Reply

WEBHOOK_PATH = "/services/T000/B000/secret"


def slack_error(status: int, text: str, **headers: str) -> Reply:
    """A Slack webhook error answer: plain text."""
    return Reply(status, None, text, headers)


class FakeSlack(FakeProvider):
    """Takes Block Kit posts at :data:`WEBHOOK_PATH`."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post(WEBHOOK_PATH, self._handle)]

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [r.json for r in self.requests]

    def message_text(self, index: int = 0) -> str:
        """Every text in message ``index`` (fallback and blocks), joined, to search in."""
        message = self.messages[index]
        texts = [message.get("text", "")]
        for block in message.get("blocks", []):
            texts.extend(_texts(block))
        return "\n".join(texts)

    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        return web.Response(text="ok")


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        for value in node.values():
            if isinstance(value, dict | list):
                found.extend(_texts(value))
        return found
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []

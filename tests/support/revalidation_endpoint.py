"""A loopback cache revalidation endpoint (the website's) that records every request.

It takes ``POST /api/revalidate`` and answers 200 ``{"revalidated": true}`` unless a test
scripts other answers (:class:`tests.support.fake_resend.Reply`: a status, a hang past the
client's timeout, a cut connection). It checks nothing itself: tests assert on what it
recorded (the method, the ``Authorization`` header, the JSON body).
"""

from __future__ import annotations

from aiohttp import web

from tests.support.fake_resend import FakeProvider, Recorded

REVALIDATE_PATH = "/api/revalidate"


class RevalidationEndpoint(FakeProvider):
    """The website's revalidation endpoint at :data:`REVALIDATE_PATH`."""

    def routes(self) -> list[web.RouteDef]:
        return [web.post(REVALIDATE_PATH, self._handle)]

    @property
    def revalidate_url(self) -> str:
        return self.url + REVALIDATE_PATH

    async def default_reply(self, request: Recorded) -> web.StreamResponse:
        return web.json_response({"revalidated": True})

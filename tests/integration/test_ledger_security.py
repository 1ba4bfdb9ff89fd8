"""The real ``job-ledger serve`` attacked as an attacker would: guessing is throttled per
client (and only for that client), forwarded addresses are believed from trusted proxies
only, named API tokens work until removed, sessions end on logout, on "log out everywhere"
and on a password change, cookies are Secure over https, and a short password stops the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.harness.processes import SCRIPTS, ServiceProcess, run_command, running, wait_http_ok
from tests.harness.stack import Stack

PASSWORD = "correct horse battery staple"
CI_TOKEN = "ci-token-5b1d0e7f9a2c4e68"
ATTACKER = "203.0.113.7"
ADMIN = "198.51.100.2"
LOGS = "/api/admin/job-logs"


@contextlib.asynccontextmanager
async def served(
    stack: Stack, tmp_path: Path, name: str = "ledger", **env: str
) -> AsyncIterator[tuple[str, ServiceProcess]]:
    """``job-ledger serve --role api`` with ``env`` on top of the test's; yields its URL."""
    port = stack.port()
    variables = {
        **stack.ledger_env(),
        "ADMIN_PASSWORD": PASSWORD,
        "SESSION_SECRET": "a-session-secret-that-stays-put",
        **env,
    }
    argv = ["job-ledger", "serve", "--role", "api", "--port", str(port)]
    process = ServiceProcess(name, argv, variables, tmp_path)
    async with running(process):
        await wait_http_ok(f"http://127.0.0.1:{port}/readyz", process)
        yield f"http://127.0.0.1:{port}", process


def via(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


def bearer(token: str, address: str) -> dict[str, str]:
    return via(address, Authorization=f"Bearer {token}")


async def status_of(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with http.get(url, headers=headers) as response:
        return response.status


async def test_2000_wrong_tokens_are_throttled_for_that_client_while_the_admin_gets_in(
    stack: Stack, tmp_path: Path
) -> None:
    async with (
        served(stack, tmp_path, TRUSTED_PROXIES="127.0.0.1") as (url, process),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as http,
    ):
        answers: Counter[int] = Counter()
        retry_after: set[str] = set()

        async def guess(n: int) -> None:
            headers = bearer(f"guess-{n:04d}-wrong", ATTACKER)
            async with http.get(url + LOGS, headers=headers) as response:
                answers[response.status] += 1
                if response.status == 429:
                    retry_after.add(response.headers["Retry-After"])
                    assert (await response.json())["error"]["code"] == "TOO_MANY_REQUESTS"

        await asyncio.gather(*(guess(n) for n in range(2000)))
        assert answers == {401: 10, 429: 1990}
        assert all(1 <= int(seconds) <= 600 for seconds in retry_after)
        assert await status_of(http, url + LOGS, bearer(PASSWORD, ATTACKER)) == 429
        assert await status_of(http, url + LOGS, bearer(PASSWORD, ADMIN)) == 200
        assert await status_of(http, url + LOGS, bearer(CI_TOKEN, ADMIN)) == 401
    log = process.log_path.read_text()
    assert log.count(f"wrong API token from {ATTACKER} on GET {LOGS}") == 10
    assert "guess-" not in log and PASSWORD not in log


async def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(
    stack: Stack, tmp_path: Path
) -> None:
    async with (
        served(stack, tmp_path, TRUSTED_PROXIES="10.9.9.9") as (url, _),
        aiohttp.ClientSession() as http,
    ):
        for n in range(10):
            assert await status_of(http, url + LOGS, bearer("wrong", f"192.0.2.{n}")) == 401
        # Every guess came from 127.0.0.1 whatever the header said: that client is done.
        assert await status_of(http, url + LOGS, bearer(PASSWORD, ADMIN)) == 429


async def test_200_parallel_login_guesses_are_throttled_and_the_admin_still_signs_in(
    stack: Stack, tmp_path: Path
) -> None:
    async with (
        served(stack, tmp_path, TRUSTED_PROXIES="127.0.0.1") as (url, process),
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):

        async def guess(n: int) -> int:
            async with http.post(
                f"{url}/admin/login",
                data={"password": f"guess-{n:04d}-wrong"},
                headers=via(ATTACKER),
                allow_redirects=False,
            ) as response:
                return response.status

        answers = Counter(await asyncio.gather(*(guess(n) for n in range(200))))
        assert answers == {401: 10, 429: 190}
        async with http.post(
            f"{url}/admin/login",
            data={"password": PASSWORD},
            headers=via(ADMIN),
            allow_redirects=False,
        ) as response:
            assert (response.status, response.headers["Location"]) == (303, "/admin/jobs")
    log = process.log_path.read_text()
    assert log.count(f"wrong admin password from {ATTACKER} on POST /admin/login") == 10
    assert f"admin signed in from {ADMIN}" in log and "guess-" not in log


async def test_named_api_tokens_are_accepted_until_removed(stack: Stack, tmp_path: Path) -> None:
    tokens = f"ci:{CI_TOKEN},grafana:grafana-token-0f3a9c2e71"
    async with aiohttp.ClientSession() as http:
        async with served(stack, tmp_path, ADMIN_API_TOKENS=tokens) as (url, _):
            assert await status_of(http, url + LOGS, bearer(CI_TOKEN, ADMIN)) == 200
            async with http.post(
                f"{url}/admin/login", data={"password": CI_TOKEN}, allow_redirects=False
            ) as response:
                assert response.status == 401  # a token opens the API, not the pages
        left = "grafana:grafana-token-0f3a9c2e71"
        async with served(stack, tmp_path, "again", ADMIN_API_TOKENS=left) as (url, _):
            assert await status_of(http, url + LOGS, bearer(CI_TOKEN, ADMIN)) == 401
            headers = bearer("grafana-token-0f3a9c2e71", ADMIN)
            assert await status_of(http, url + LOGS, headers) == 200


async def log_in(url: str, headers: dict[str, str] | None = None) -> tuple[str, str]:
    """Sign in; return the session cookie's value and its whole Set-Cookie header."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.post(
            f"{url}/admin/login",
            data={"password": PASSWORD},
            headers=headers or {},
            allow_redirects=False,
        ) as response,
    ):
        assert response.status == 303
        header = response.headers["Set-Cookie"]
    found = re.match(r"ledger_session=([^;]+)", header)
    assert found, header
    return found.group(1), header


async def page_with(url: str, cookie: str, path: str = "/admin/jobs") -> tuple[int, str]:
    """GET ``path`` sending ``cookie`` as the session (a replay); return status and body."""
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.get(
            url + path, headers={"Cookie": f"ledger_session={cookie}"}, allow_redirects=False
        ) as response,
    ):
        return response.status, await response.text()


async def press(url: str, cookie: str, action: str) -> int:
    """Submit the nav's form posting to ``action`` with the page's CSRF token."""
    status, html = await page_with(url, cookie)
    assert status == 200
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert token
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http,
        http.post(
            url + action,
            data={"csrf_token": token.group(1)},
            headers={"Cookie": f"ledger_session={cookie}"},
            allow_redirects=False,
        ) as response,
    ):
        return response.status


async def test_a_session_ends_on_the_server_at_logout_and_everywhere_on_request(
    stack: Stack, tmp_path: Path
) -> None:
    async with served(stack, tmp_path) as (url, _):
        first, _ = await log_in(url)
        second, _ = await log_in(url)
        third, _ = await log_in(url)
        assert (await page_with(url, first))[0] == 200
        assert await press(url, first, "/admin/logout") == 303
        status, _ = await page_with(url, first)
        assert status == 303  # the replayed cookie is well signed, but its session is over
        assert (await page_with(url, second))[0] == 200
        assert await press(url, second, "/admin/logout-everywhere") == 303
        assert (await page_with(url, second))[0] == 303
        assert (await page_with(url, third))[0] == 303


async def test_a_changed_password_ends_every_session_even_with_the_same_session_secret(
    stack: Stack, tmp_path: Path
) -> None:
    async with served(stack, tmp_path) as (url, _):
        cookie, _ = await log_in(url)
    async with served(stack, tmp_path, "same") as (url, _):
        assert (await page_with(url, cookie))[0] == 200  # a restart keeps the session
    async with served(stack, tmp_path, "changed", ADMIN_PASSWORD=PASSWORD + "!") as (url, _):
        assert (await page_with(url, cookie))[0] == 303


async def test_the_cookie_is_secure_when_the_browser_came_over_https(
    stack: Stack, tmp_path: Path
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    async with served(stack, tmp_path, TRUSTED_PROXIES="127.0.0.1") as (url, _):
        assert "secure" in (await log_in(url, https))[1].lower()
        assert "secure" not in (await log_in(url))[1].lower()
    async with served(stack, tmp_path, "untrusted") as (url, _):
        assert "secure" not in (await log_in(url, https))[1].lower()


async def test_a_password_shorter_than_16_characters_stops_the_start_in_one_line(
    stack: Stack,
) -> None:
    env = {"PATH": "/usr/bin:/bin", **stack.ledger_env(), "ADMIN_PASSWORD": "tooshort-123"}
    code, _, err = await run_command([str(SCRIPTS / "job-ledger"), "serve"], env)
    assert code == 2 and err.count("\n") == 1, err
    assert "ADMIN_PASSWORD" in err and "at least 16 characters" in err
    assert "tooshort-123" not in err

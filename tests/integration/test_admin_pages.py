"""The admin pages over plain HTTP: sessions, CSRF, login throttling, escaping, post-redirect-get.

The browser test (``test_admin_pages_browser.py``) drives the same pages in Chromium; these
check what a browser hides: status codes, cookies, redirects and the raw HTML.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from tests.support.ledger_web import (
    NOW,
    PASSWORD,
    Ledger,
    csrf_token,
    insert_event,
    insert_job,
    insert_notification,
    log_in,
    page,
)

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client that keeps cookies (for 127.0.0.1 too) and does not follow redirects."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def test_without_a_session_every_admin_page_redirects_to_the_login_form(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    job = await insert_job(ledger.pool, started_at=NOW)
    for method, path, expected in [
        ("GET", "/admin", "/admin/jobs"),
        ("GET", "/admin/jobs", "/admin/login?next=/admin/jobs"),
        ("GET", f"/admin/jobs/{job}", f"/admin/login?next=/admin/jobs/{job}"),
        ("POST", "/admin/jobs/run", "/admin/login?next=/admin/jobs"),
        ("POST", f"/admin/jobs/{job}/retry-failed", "/admin/login?next=/admin/jobs"),
        ("POST", "/admin/logout", "/admin/login?next=/admin/jobs"),
    ]:
        async with browser.request(method, ledger.url + path, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, expected), path
    assert ledger.published == []


async def test_logging_in_sets_a_signed_httponly_samesite_strict_cookie_and_opens_the_page(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    status, html = await page(browser, f"{ledger.url}/admin/login?next=/admin/jobs")
    assert status == 200 and 'name="password"' in html
    async with browser.post(
        f"{ledger.url}/admin/login",
        data={"password": PASSWORD, "next": "https://evil.example/steal"},
        allow_redirects=False,
    ) as response:
        assert (response.status, response.headers["Location"]) == (303, "/admin/jobs")
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("ledger_session=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"):
        assert attribute.lower() in cookie.lower(), cookie
    status, html = await page(browser, f"{ledger.url}/admin/jobs")
    assert (status, "Job history" in html) == (200, True)


async def test_a_wrong_password_is_refused_clearly_and_past_ten_the_client_must_wait(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    for _ in range(10):
        async with browser.post(
            f"{ledger.url}/admin/login", data={"password": PASSWORD + "x"}, allow_redirects=False
        ) as response:
            html = await response.text()
            assert response.status == 401
            assert "Wrong password. Try again." in html
            assert "Set-Cookie" not in response.headers
    async with browser.post(
        f"{ledger.url}/admin/login", data={"password": PASSWORD}, allow_redirects=False
    ) as response:
        assert response.status == 429 and "Too many failed attempts" in await response.text()
        assert 1 <= int(response.headers["Retry-After"]) <= 600
        assert "Set-Cookie" not in response.headers


async def test_a_forged_cookie_is_refused(ledger: Ledger, browser: aiohttp.ClientSession) -> None:
    await log_in(browser, ledger.url)
    [genuine] = [c for c in browser.cookie_jar if c.key == "ledger_session"]
    payload, _, signature = genuine.value.rpartition(".")
    forgeries = [
        payload + "." + ("A" * len(signature)),
        "eyJzaWQiOiJhZG1pbiJ9.Zz0ABC.forged",
        genuine.value + "x",
    ]
    for forged in forgeries:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
            async with other.get(
                f"{ledger.url}/admin/jobs",
                headers={"Cookie": f"ledger_session={forged}"},
                allow_redirects=False,
            ) as response:
                assert response.status == 303
                assert response.headers["Location"] == "/admin/login?next=/admin/jobs"
                # And the browser is told to drop it.
                assert "ledger_session=" in response.headers["Set-Cookie"]


async def test_an_expired_cookie_is_refused(ledger: Ledger, browser: aiohttp.ClientSession) -> None:
    await log_in(browser, ledger.url)
    ledger.clock.now = NOW + timedelta(hours=11)
    assert (await page(browser, f"{ledger.url}/admin/jobs"))[0] == 200
    ledger.clock.now = NOW + timedelta(hours=12, minutes=1)
    status, _ = await page(browser, f"{ledger.url}/admin/jobs")
    assert status == 303


async def test_a_post_without_the_csrf_token_is_refused(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    job = await insert_job(
        ledger.pool, started_at=NOW, status="failed", failures=[("d1", "Uni", "boom")]
    )
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs/{job}")
    token = csrf_token(html)
    other_sessions_token = "0" * len(token)
    for path in ("/admin/jobs/run", f"/admin/jobs/{job}/retry-failed", "/admin/logout"):
        for data in ({}, {"csrf_token": ""}, {"csrf_token": other_sessions_token}):
            async with browser.post(
                ledger.url + path, data=data, allow_redirects=False
            ) as response:
                assert response.status == 403, (path, data)
                assert "not sent from a page of this session" in await response.text()
    assert ledger.published == []


async def test_retry_from_the_page_publishes_and_shows_the_pending_request_after_a_redirect(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    job = await insert_job(
        ledger.pool,
        started_at=NOW,
        status="failed",
        processed=1,
        total=3,
        failures=[("d1", EVIL, "HTTP 502"), ("d2", "Aave", "HTTP 502")],
    )
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs/{job}")
    async with browser.post(
        f"{ledger.url}/admin/jobs/{job}/retry-failed",
        data={"csrf_token": csrf_token(html)},
        allow_redirects=False,
    ) as response:
        [command] = ledger.published
        assert (response.status, response.headers["Location"]) == (
            303,
            f"/admin/jobs/{job}?request={command.request_id}",
        )
    assert (command.trigger, command.dao_ids) == ("retry", ["d1", "d2"])
    status, html = await page(
        browser, f"{ledger.url}/admin/jobs/{job}?request={command.request_id}"
    )
    assert status == 200
    assert (
        f"Retry of 2 failed DAOs requested ({command.request_id}): waiting for the worker's answer"
        in html
    )
    assert '<meta http-equiv="refresh" content="2">' in html
    # Reloading shows the request again (its outcome, once answered) and asks for nothing.
    _, again = await page(browser, f"{ledger.url}/admin/jobs/{job}?request={command.request_id}")
    assert 'data-state="pending"' in again and len(ledger.published) == 1


async def test_a_malformed_request_id_on_a_page_is_a_400_page(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    job = await insert_job(ledger.pool, started_at=NOW)
    await log_in(browser, ledger.url)
    for url in (f"{ledger.url}/admin/jobs?request=x", f"{ledger.url}/admin/jobs/{job}?request=x"):
        status, html = await page(browser, url)
        assert status == 400 and "request must be a UUID" in html, url


async def test_values_from_events_are_escaped_everywhere(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    job = await insert_job(
        ledger.pool,
        started_at=NOW,
        status="failed",
        failures=[("d1", EVIL, "<script>alert('error')</script>")],
        fatal_error="<b>fatal</b>",
        trigger="<i>cron</i>",
    )
    await insert_event(
        ledger.pool,
        job,
        "DaoFailed",
        1,
        NOW,
        {"dao_id": "d1", "dao_name": EVIL, "error": "<svg onload=x>", "attempts": 3},
    )
    await insert_notification(ledger.pool, job, "email", "failure", "failed", NOW, "<u>bounced</u>")
    await browser.close()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await log_in(session, ledger.url)
        for url in (f"{ledger.url}/admin/jobs/{job}", f"{ledger.url}/admin/jobs"):
            _, html = await page(session, url)
            for raw in (EVIL, "<script>alert", "<b>fatal", "<i>cron", "<svg onload", "<u>bounced"):
                assert raw not in html, (url, raw)
        _, detail = await page(session, f"{ledger.url}/admin/jobs/{job}")
        assert "&lt;img src=x onerror=alert(1)&gt;" in detail
        assert "&lt;b&gt;fatal&lt;/b&gt;" in detail


async def test_a_running_job_page_refreshes_itself_and_shows_progress(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    running = await insert_job(
        ledger.pool,
        started_at=NOW - timedelta(seconds=100),
        status="running",
        processed=50,
        total=200,
    )
    done = await insert_job(ledger.pool, started_at=NOW - timedelta(days=1))
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs/{running}")
    assert '<meta http-equiv="refresh" content="5">' in html
    assert "50 of 200 DAOs done (25.0%)" in html and "0.5 DAOs/s" in html and "ETA 5m" in html
    _, html = await page(browser, f"{ledger.url}/admin/jobs/{done}")
    assert 'http-equiv="refresh"' not in html and 'id="progress"' not in html


async def test_an_unknown_or_malformed_job_id_is_a_page_not_a_crash(
    ledger: Ledger, browser: aiohttp.ClientSession
) -> None:
    await log_in(browser, ledger.url)
    status, html = await page(browser, f"{ledger.url}/admin/jobs/{uuid.uuid4()}")
    assert status == 404 and "no job with this id" in html
    status, html = await page(browser, f"{ledger.url}/admin/jobs/not-a-uuid")
    assert status == 400 and "id must be a UUID" in html


async def test_logging_out_ends_the_session(ledger: Ledger, browser: aiohttp.ClientSession) -> None:
    await log_in(browser, ledger.url)
    _, html = await page(browser, f"{ledger.url}/admin/jobs")
    async with browser.post(
        f"{ledger.url}/admin/logout", data={"csrf_token": csrf_token(html)}, allow_redirects=False
    ) as response:
        assert (response.status, response.headers["Location"]) == (303, "/admin/login")
    assert (await page(browser, f"{ledger.url}/admin/jobs"))[0] == 303

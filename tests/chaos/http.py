"""Scenarios 8-9: hostile requests at the history API, and a steady load while a run lands.

The hostile scenario's ledger believes X-Forwarded-For from 127.0.0.1, so that each phase
(schemathesis, the hand-written attacks, each brute force, the admin) is a client of its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.chaos.campaign import Context
from tests.chaos.crashes import run_timeout, started
from tests.chaos.figures import Row, measure, settle
from tests.chaos.names import StackOptions
from tests.chaos.stack import PASSWORD, Stack

FINISHED = "SELECT count(*) FROM {recalc}.jobs WHERE status <> 'running'"
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: str
    body: bytes


async def raw_request(port: int, request: bytes) -> Answer:
    """Send ``request`` as bytes (so nothing is cleaned up on the way); returns the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, _, headers = head.decode("latin-1").partition("\r\n")
    status = int(status_line.split()[1]) if status_line.startswith("HTTP/") else 0
    if "transfer-encoding: chunked" in headers.lower():
        body = _unchunk(body)
    return Answer(status, headers, body)


def _unchunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def attacks(job_id: str) -> list[tuple[str, bytes, set[int]]]:
    """(name, raw request, acceptable statuses) of the hand-written attacks."""
    listed = _attacks(job_id)
    # Each attack from an address of its own: a few wrong tokens stay within the budget.
    return [
        (
            name,
            request.replace(b"\r\n\r\n", f"\r\nX-Forwarded-For: 192.0.2.{n}\r\n\r\n".encode(), 1),
            ok,
        )
        for n, (name, request, ok) in enumerate(listed, start=1)
    ]


def _attacks(job_id: str) -> list[tuple[str, bytes, set[int]]]:
    auth = f"Authorization: Bearer {PASSWORD}"
    near = f"Authorization: Bearer {PASSWORD[:-1]}{chr(ord(PASSWORD[-1]) ^ 1)}"
    return [
        ("SQL in id", get("/api/admin/job-logs?id=1'%20OR%20'1'='1", auth), {400}),
        ("SQL in path", get("/api/admin/job-logs/1'%20OR%201=1--/events", auth), {400, 404}),
        ("UNION in limit", get("/api/admin/job-logs?limit=1%20UNION%20SELECT%201", auth), {400}),
        # The story caps the limit at 100 rather than refusing more: checked in shape_problem.
        ("huge limit", get("/api/admin/job-logs?limit=" + "9" * 40, auth), {200}),
        ("negative limit", get("/api/admin/job-logs?limit=-1", auth), {400}),
        (
            "header injection in id",
            get("/api/admin/job-logs?id=%0d%0aSet-Cookie:%20pwned=1", auth),
            {400},
        ),
        (
            "injected header line",
            get("/api/admin/job-logs", auth + "\r\nX-Forwarded-For: evil"),
            {200},
        ),
        ("token off by its last character", get(f"/api/admin/job-logs?id={job_id}", near), {401}),
        ("no token", get(f"/api/admin/job-logs/{job_id}/events"), {401}),
        ("empty bearer", get("/api/admin/job-logs", "Authorization: Bearer "), {401}),
        (
            "wrong scheme",
            get("/api/admin/job-logs", f"Authorization: Basic {PASSWORD}"),
            {401},
        ),
        ("token in the query", get(f"/api/admin/job-logs?token={PASSWORD}"), {401}),
        (
            "path traversal",
            get("/api/admin/job-logs/..%2f..%2fetc%2fpasswd/events", auth),
            {400, 404},
        ),
        ("very long URL", get("/api/admin/job-logs?id=" + "a" * 60_000, auth), {400, 414, 431}),
        (
            "unknown job",
            get(f"/api/admin/job-logs/{'0' * 8}-0000-0000-0000-{'0' * 12}/events", auth),
            {404},
        ),
    ]


def shape_problem(name: str, answer: Answer, allowed: set[int], job_id: str) -> str | None:
    """What is wrong with ``answer`` to attack ``name``, or None."""
    if answer.status >= 500 or answer.status == 0:
        return f"{name}: {answer.status}"
    if answer.status not in allowed:
        return f"{name}: {answer.status}, expected one of {sorted(allowed)}"
    if "pwned" in answer.headers.lower():
        return f"{name}: an injected header came back"
    if PASSWORD.encode() in answer.body:
        return f"{name}: the token was echoed"
    if answer.status < 300:
        meta = json.loads(answer.body).get("meta", {})
        if meta.get("limit", 0) > 100 or meta.get("count", 0) > 100:
            return f"{name}: more than 100 rows allowed: {meta}"
        return None
    if answer.status in (401, 404) and job_id.encode() in answer.body:
        return f"{name}: a refusal leaked the job id"
    try:
        error = json.loads(answer.body)["error"]
        ok = error["statusCode"] == answer.status and error["code"] == CODES.get(
            answer.status, error["code"]
        )
        ok = ok and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError):
        ok = False
    return None if ok else f"{name}: {answer.status} not in the error shape: {answer.body[:80]!r}"


async def schemathesis(stack: Stack, examples: int) -> tuple[int, str]:
    """``st run`` over the served OpenAPI; returns (exit code, its summary lines)."""
    st = Path(sys.executable).with_name("st")
    base = stack.url("ledger", "")
    process = await asyncio.create_subprocess_exec(
        str(st), "run", f"{base}/openapi.json", "--url", base, "--checks", "all",
        "--mode", "all", "--max-examples", str(examples), "--seed", "20251222",
        "--workers", "1", "--generation-database", "none", "--request-timeout", "10",
        "--header", f"Authorization: Bearer {PASSWORD}", "--header", "X-Forwarded-For: 198.18.0.1",
        "--no-color",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=stack.work,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 600)
    text = out.decode(errors="replace")
    (stack.work / "schemathesis.log").write_text(text)
    return int(process.returncode or 0), text


async def hostile_http(ctx: Context) -> Row:
    """schemathesis over ``/openapi.json`` and hand-written attacks at a ledger with data."""
    row = Row("8 hostile HTTP input")
    options = StackOptions(env={"ledger": {"TRUSTED_PROXIES": "127.0.0.1"}})
    async with ctx.stack(ctx.scale.mid_daos, options) as stack:
        await started(stack, ctx.scale.mid_daos)
        await stack.trigger(dao_ids=[f"dao-{i:05d}" for i in range(30)])
        await stack.wait_for(FINISHED, 1, 60)
        await settle(stack, row, 60)
        # Run requests that schemathesis posts must not start runs behind its back.
        await stack.processes["worker"].stop()
        job_id = str(await stack.text("SELECT id FROM {recalc}.jobs"))
        code, text = await schemathesis(stack, ctx.scale.st_examples)
        cases = sum(int(n) for n in re.findall(r"(\d+) generated", text)) or text.count("PASSED")
        summary = text.split("SUMMARY")[-1]
        row.check(code == 0 and " failed" not in summary, f"schemathesis: {summary[-400:]}")
        problems = []
        for name, request, allowed in attacks(job_id):
            answer = await raw_request(stack.ports["ledger"], request)
            if problem := shape_problem(name, answer, allowed, job_id):
                problems.append(problem)
        row.problems.extend(problems)
        row.problems.extend(await brute_force(stack.url("ledger", "")))
        await measure(stack, row)
        row.notes.append(
            f"schemathesis: {cases} generated requests, no failure; "
            f"{len(attacks(job_id))} attacks refused in the error shape; brute force "
            f"({BRUTE_TOKENS} tokens one by one, {BRUTE_TOKENS} at once, {BRUTE_LOGINS} parallel"
            " logins) answered 429 past 10 guesses while the admin got in; a logged-out"
            " session's cookie replayed was refused"
        )
        return row


async def sustained_load(ctx: Context) -> Row:
    """The history API under a steady rate from another process while a long run lands."""
    row = Row("9 sustained load")
    daos = ctx.scale.big_daos
    async with ctx.stack(daos) as stack:
        await started(stack, daos)
        await stack.trigger()
        await stack.wait_for("SELECT count(*) FROM {ledger}.job_logs", 1, 60)
        job_id = str(await stack.text("SELECT id FROM {ledger}.job_logs"))
        stored_before = await stack.stored()
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.chaos.load", stack.url("ledger", ""), PASSWORD,
            "--rate", str(ctx.scale.load_rate), "--seconds", str(ctx.scale.load_s),
            "--job", job_id, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), ctx.scale.load_s + 120)
        stored_during = await stack.stored() - stored_before
        figures: dict[str, Any] = json.loads(out)
        await stack.wait_for(FINISHED, 1, run_timeout(daos))
        await settle(stack, row, 120)
        row.check(figures["errors"] == 0, f"{figures['errors']} failed requests")
        row.check(
            figures["rate"] >= 0.9 * ctx.scale.load_rate,
            f"only {figures['rate']:.0f} req/s achieved",
        )
        row.notes.append(
            f"{figures['requests']} requests at {figures['rate']:.0f}/s over "
            f"{ctx.scale.load_s:.0f}s, {figures['errors']} errors, p50 {figures['p50_ms']:.0f} ms,"
            f" p99 {figures['p99_ms']:.0f} ms, max {figures['max_ms']:.0f} ms; "
            f"{stored_during} events stored meanwhile"
        )
        return await measure(stack, row)


BRUTE_TOKENS = 1000
BRUTE_LOGINS = 200
BUDGET = 10
"""Failed attempts a client may make before it is refused (the ledger's GuessThrottle)."""


def via(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


async def brute_force(base: str) -> list[str]:
    """Guess the Bearer token one by one and all at once, and the login form all at once,
    each from its own address; the admin then signs in from another, logs out, and the old
    cookie is replayed. Returns what went wrong."""
    problems: list[str] = []
    logs = f"{base}/api/admin/job-logs"
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100), cookie_jar=aiohttp.DummyCookieJar()
    ) as http:

        async def token(n: int, address: str) -> int:
            headers = via(address, Authorization=f"Bearer guess-{n}")
            async with http.get(logs, headers=headers) as response:
                await response.read()
                return response.status

        async def login(n: int, address: str) -> int:
            data = {"password": f"guess-{n}"}
            async with http.post(
                f"{base}/admin/login", data=data, headers=via(address), allow_redirects=False
            ) as response:
                return response.status

        one_by_one = Counter([await token(n, "203.0.113.1") for n in range(BRUTE_TOKENS)])
        at_once = Counter(
            await asyncio.gather(*(token(n, "203.0.113.2") for n in range(BRUTE_TOKENS)))
        )
        logins = Counter(
            await asyncio.gather(*(login(n, "203.0.113.3") for n in range(BRUTE_LOGINS)))
        )
        for name, answers, total in (
            ("sequential Bearer guesses", one_by_one, BRUTE_TOKENS),
            ("parallel Bearer guesses", at_once, BRUTE_TOKENS),
            ("parallel login guesses", logins, BRUTE_LOGINS),
        ):
            if answers != {401: BUDGET, 429: total - BUDGET}:
                problems.append(f"{name}: {dict(answers)}, expected {BUDGET} tries then 429")
        auth = via("198.51.100.9", Authorization=f"Bearer {PASSWORD}")
        async with http.get(logs, headers=auth) as response:
            if response.status != 200:
                problems.append(f"the admin's token from elsewhere: {response.status}")
        problems.extend(await replayed_after_logout(http, base))
    return problems


async def replayed_after_logout(http: aiohttp.ClientSession, base: str) -> list[str]:
    """Sign in, log out, replay the old session cookie: it must lead to the login form."""
    admin = via("198.51.100.9")
    async with http.post(
        f"{base}/admin/login", data={"password": PASSWORD}, headers=admin, allow_redirects=False
    ) as response:
        found = re.match(r"ledger_session=([^;]+)", response.headers.get("Set-Cookie", ""))
    if response.status != 303 or not found:
        return [f"the admin could not sign in: {response.status}"]
    cookie = {**admin, "Cookie": f"ledger_session={found.group(1)}"}
    async with http.get(f"{base}/admin/jobs", headers=cookie) as response:
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', await response.text())
    if token is None:
        return ["the signed-in history page has no logout form"]
    async with http.post(
        f"{base}/admin/logout",
        data={"csrf_token": token.group(1)},
        headers=cookie,
        allow_redirects=False,
    ) as response:
        logged_out = response.status == 303
    async with http.get(f"{base}/admin/jobs", headers=cookie, allow_redirects=False) as response:
        replay = response.status, response.headers.get("Location", "")
    if not logged_out or replay[0] != 303 or not replay[1].startswith("/admin/login"):
        return [f"a logged-out session's cookie replayed: {replay}"]
    return []

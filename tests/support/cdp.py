"""A small Chrome DevTools Protocol driver: Debian's headless Chromium, over its websocket.

Enough to drive the admin pages like a person would: navigate, fill and click (through
JavaScript), read the page by evaluating JavaScript, and take screenshots. Chromium is started
with ``--remote-debugging-port=0``; the port it chose is read from ``DevToolsActivePort`` in its
own user-data directory, so parallel test runs never collide. No browser is downloaded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
]


class CdpError(RuntimeError):
    """Chromium answered a command with an error, or a page did not load in time."""


class Page:
    """One tab: commands are sent over its websocket, answers matched by id, events listened to."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loads: list[asyncio.Future[None]] = []
        self.dialogs: list[str] = []
        """Every JavaScript dialog (alert, confirm…) the page tried to open."""
        self.console_errors: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif data.get("method") == "Page.loadEventFired":
                for waiter in self._loads:
                    if not waiter.done():
                        waiter.set_result(None)
                self._loads.clear()
            elif data.get("method") == "Page.javascriptDialogOpening":
                self.dialogs.append(data["params"].get("message", ""))
                await self._ws.send_str(
                    json.dumps(
                        {
                            "id": next(self._ids),
                            "method": "Page.handleJavaScriptDialog",
                            "params": {"accept": False},
                        }
                    )
                )
            elif data.get("method") == "Runtime.exceptionThrown":
                self.console_errors.append(str(data["params"]))
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CdpError("the DevTools websocket closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one command; return its result. Raises ``CdpError`` on an error answer."""
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params or {}}))
        answer = await asyncio.wait_for(future, timeout=30)
        if "error" in answer:
            raise CdpError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def _expect_load(self) -> asyncio.Future[None]:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._loads.append(waiter)
        return waiter

    async def navigate(self, url: str, timeout_s: float = 15) -> None:
        """Open ``url`` and wait for its load event (after any redirects)."""
        loaded = self._expect_load()
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise CdpError(f"navigating to {url}: {result['errorText']}")
        await asyncio.wait_for(loaded, timeout_s)

    async def evaluate(self, expression: str) -> Any:
        """Return the JSON value of a JavaScript expression evaluated in the page."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def text(self, selector: str) -> str:
        """Return the visible text of the first element matching ``selector``."""
        value = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " return e ? e.innerText : null; })()"
        )
        if value is None:
            raise CdpError(f"no element matches {selector}")
        return str(value)

    async def fill(self, selector: str, value: str) -> None:
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" if (!e) return false; e.value = {json.dumps(value)}; return true; }})()"
        )
        if not found:
            raise CdpError(f"no input matches {selector}")

    async def click_and_wait(self, selector: str, timeout_s: float = 15) -> None:
        """Click the element (a submit button, a link) and wait for the page it leads to."""
        loaded = self._expect_load()
        found = await self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        if not found:
            raise CdpError(f"nothing to click matches {selector}")
        await asyncio.wait_for(loaded, timeout_s)

    async def set_viewport(self, width: int, height: int, mobile: bool = False) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
        )

    async def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """Save a PNG of the page (the whole page by default) to ``path``; return it."""
        result = await self.send(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page}
        )
        data = base64.b64decode(result["data"])
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)
        return path

    async def close(self) -> None:
        await self._ws.close()
        await self._reader


async def _devtools_port(profile: Path, process: asyncio.subprocess.Process) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise CdpError(f"chromium exited with {process.returncode} before listening")
        text = await asyncio.to_thread(lambda: marker.read_text() if marker.exists() else "")
        if text.strip():
            return int(text.splitlines()[0])
        await asyncio.sleep(0.05)
    raise CdpError("chromium did not write DevToolsActivePort within 30 s")


@contextlib.asynccontextmanager
async def chromium(binary: str = CHROMIUM) -> AsyncIterator[Page]:
    """Start headless Chromium with a throw-away profile; yield its first tab as a Page.

    Raises ``CdpError`` if the binary is missing or does not start. Everything (process,
    websocket, HTTP session, profile directory) is gone when the block exits.
    """
    if not await asyncio.to_thread(Path(binary).exists):
        raise CdpError(f"{binary} is missing: apt-get install -y chromium")
    profile = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="cdp-profile-"))
    log = await asyncio.to_thread(open, profile / "chromium.log", "wb")
    process = await asyncio.create_subprocess_exec(
        binary,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=log,
        stderr=log,
    )
    try:
        port = await _devtools_port(profile, process)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            [target] = [t for t in targets if t["type"] == "page"][:1]
            ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
            page = Page(ws)
            try:
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                yield page
            finally:
                await page.close()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.to_thread(log.close)
        await asyncio.to_thread(shutil.rmtree, profile, True)

"""A real headless Chromium (Debian's package) driven over the DevTools protocol, for the status page's browser test
and the README's screenshot: no browser download, no driver, only the browser and a WebSocket.

The browser starts with a fresh profile, on a DevTools port it chooses (read from the profile's DevToolsActivePort),
with nothing in the background that would reach the network. Every console message, uncaught exception and log
entry of a page is kept (`Page.problems`), so that a test can say there were none.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

__all__ = ["CHROMIUM", "Browser", "Page", "chromium", "find_chromium"]

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/test installs it when missing, as root)
START_TIMEOUT = 20.0
# What a page reports that a test of it wants to hear of: console calls, exceptions, the browser's own log entries.
PROBLEM_EVENTS = ("Runtime.consoleAPICalled", "Runtime.exceptionThrown", "Log.entryAdded")


def find_chromium() -> str | None:
    """Debian's Chromium, or one on PATH; None when there is none."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    return shutil.which("chromium") or shutil.which("chromium-browser")


def arguments(executable: str, profile: Path) -> list[str]:
    args = [
        executable,
        "--headless=new",
        "--disable-gpu",
        "--disable-background-networking",  # a closed network: no component updates, no safe browsing lists
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--no-default-browser-check",
        "--no-first-run",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}",
        "about:blank",
    ]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
    return args


class Browser:
    """One browser over its DevTools WebSocket: commands answered in turn, events kept for whoever waits on them."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        try:
            message: dict[str, Any] = json.loads(self.socket.recv(timeout=timeout))
        except TimeoutError:
            return None
        return message

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None) -> Any:
        """Send a command and return its result, keeping the events that come meanwhile."""
        ident = next(self.ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = self._receive(deadline - time.monotonic())
            if answer is None:
                break
            if answer.get("id") == ident:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)
        raise TimeoutError(f"{method}: no answer")

    def wait_for(self, wanted: Callable[[dict[str, Any]], bool], timeout: float, *, after: int = 0) -> dict[str, Any]:
        """The first event kept from the `after`th on, or to come, for which `wanted` holds."""
        seen = after
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[seen:]:
                if wanted(event):
                    return event
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such event")
            received = self._receive(left)
            if received is not None:
                self.events.append(received)

    def new_page(self) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            page.send(domain)
        return page


@dataclass
class Page:
    browser: Browser
    session: str

    def send(self, method: str, **params: Any) -> Any:
        return self.browser.send(method, params, session=self.session)

    def _mine(self, event: dict[str, Any]) -> bool:
        return event.get("sessionId") == self.session

    def _loaded(self, event: dict[str, Any]) -> bool:
        return self._mine(event) and event.get("method") == "Page.loadEventFired"

    def goto(self, url: str, timeout: float = 15.0) -> None:
        """Load `url` and wait for its load event."""
        before = len(self.browser.events)
        answer = self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise RuntimeError(f"{url}: {answer['errorText']}")
        self.browser.wait_for(self._loaded, timeout, after=before)

    def reload(self, timeout: float = 15.0) -> None:
        before = len(self.browser.events)
        self.send("Page.reload", ignoreCache=True)
        self.browser.wait_for(self._loaded, timeout, after=before)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-serialisable values only)."""
        answer = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def until(self, expression: str, timeout: float, pause: float = 0.1) -> Any:
        """Poll `expression` until it is truthy; its value (TimeoutError with the last one otherwise)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(pause)
        raise TimeoutError(f"{expression} stayed {value!r}")

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def size(self, width: int, height: int, *, mobile: bool = False, scale: float = 1.0) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=scale, mobile=mobile
        )

    @property
    def problems(self) -> list[dict[str, Any]]:
        """Every console message, uncaught exception and log entry of this page so far."""
        return [e for e in self.browser.events if self._mine(e) and e.get("method") in PROBLEM_EVENTS]


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The browser and its helpers (its own process group, started here), SIGTERM then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def chromium(executable: str, folder: Path) -> Iterator[Browser]:
    """A headless Chromium with a fresh profile under `folder` (its log in `folder`/chromium.log), stopped on exit."""
    profile = folder / "chromium-profile"
    profile.mkdir(parents=True)
    with (folder / "chromium.log").open("wb") as log:
        process = subprocess.Popen(
            arguments(executable, profile), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + START_TIMEOUT
            while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Chromium did not start: {(folder / 'chromium.log').read_text()[-2000:]}")
                time.sleep(0.05)
            port, path = port_file.read_text().split()[:2]
            with connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=10) as socket:
                yield Browser(socket)
        finally:
            _stop(process)

"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for UI checks.

Only what the tests need: open a page, wait until its text shows something, click an element by
its text. The protocol's websocket is spoken with `websockets`, which Prefect already brings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.utils.http_stack import free_port, poll

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,3000"]
"""Without the background-networking flags Chromium keeps trying to reach Google's hosts; the tall
window lets lists that render only what is in view (runs, parameters) render everything."""


INSTALLING = "TIERFLOW_TEST_CHROMIUM_INSTALLED"
"""Set by `.ci/run`: a file that appears once its background install of Chromium has ended (it
installs while the tests already run, the install being as long as the rest of the setup)."""


def chromium() -> str | None:
    """The Chromium executable, if installed (after waiting for CI's install to end)."""
    marker = os.environ.get(INSTALLING)
    if marker:
        poll(Path(marker).exists, bool, seconds=600)
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab, evaluated into with `Runtime.evaluate`."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._next = 0

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self._socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv(timeout=30))
            if message.get("id") == self._next:
                assert "error" not in message, message
                return dict(message["result"])

    def evaluate(self, expression: str) -> Any:
        result = self._call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def goto(self, url: str) -> None:
        self._call("Page.navigate", url=url)

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def wait_for_text(self, *wanted: str, seconds: float = 30) -> str:
        """The page's text once it contains every one of `wanted` (fails after `seconds`)."""
        deadline = time.monotonic() + seconds
        while True:
            text = self.text()
            if all(w in text for w in wanted):
                return text
            assert time.monotonic() < deadline, f"page never showed {wanted}; it shows:\n{text[:3000]}"
            time.sleep(0.2)

    def click_text(self, label: str) -> None:
        """Click the innermost element whose own text is exactly `label`."""
        found = self.evaluate(
            "(() => { const all = [...document.querySelectorAll('body *')].filter("
            f"e => e.children.length === 0 && e.textContent.trim() === {json.dumps(label)});"
            " if (!all.length) return false; all[0].click(); return true; })()")
        assert found, f"nothing labelled {label!r} to click"


@contextmanager
def browser_page() -> Iterator[Page]:
    """A fresh headless Chromium with one blank tab; closed afterwards."""
    executable = chromium()
    assert executable, "chromium is not installed (Debian: apt-get install chromium)"
    port = free_port()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # Chromium's helpers exit late
        process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
                                    "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    pages = [t for t in targets if t["type"] == "page"]
                    if pages:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "chromium did not open its debugging port"
                time.sleep(0.1)
            with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as socket:
                page = Page(socket)
                page.evaluate("1")
                yield page
        finally:
            process.terminate()
            process.wait(timeout=10)

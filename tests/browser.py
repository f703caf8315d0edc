"""A headless Chromium driven over the DevTools protocol on a pipe, for the page tests.

Why this and not selenium or playwright: Chromium's ``--remote-debugging-pipe`` speaks
the DevTools protocol (NUL-terminated JSON) on file descriptors 3 and 4, so the test
needs only Debian's ``chromium`` and the standard library: no chromedriver whose version
must match the browser, no Python or npm package, no TCP port that another test or
another worker on the machine could take.  What the tests need (load a file, read the DOM,
click at a box's coordinates, see every network request, take a screenshot) is five
protocol methods.  Protocol: https://chromedevtools.github.io/devtools-protocol/ (not
fetched by anything here).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


_TRAMPOLINE = ("import os, sys\n"
               "os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4)\n"
               "os.close(int(sys.argv[1])); os.close(int(sys.argv[2]))\n"
               "os.execvp(sys.argv[3], sys.argv[3:])")


def _moved_up(fd: int) -> int:
    """``fd`` renumbered to 10 or more, so that making two of them the browser's fds 3
    and 4 overwrites neither."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium, one tab; ``requests`` lists every URL the tab asked for."""

    def __init__(self, executable: str, width: int = 1500, height: int = 1200,
                 timeout: float = 60.0):
        self.timeout = timeout
        self.requests: list[str] = []
        self.events: list[dict] = []
        self._next = 0
        self._buffer = b""
        self._profile = tempfile.mkdtemp(prefix="ofrace-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        to_browser_r, from_browser_w = _moved_up(to_browser_r), _moved_up(from_browser_w)
        args = ["--headless", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                "--no-default-browser-check", "--disable-dev-shm-usage",
                f"--user-data-dir={self._profile}",
                # the network off: every proxied request goes to a closed port
                "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-features=MediaRouter,OptimizationHints",
                f"--window-size={width},{height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(0, "--no-sandbox")    # Chromium refuses root with its sandbox
        # The browser reads commands on fd 3 and answers on fd 4 (a trampoline puts them
        # there: subprocess keeps fds by number, it does not renumber them).
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _TRAMPOLINE, str(to_browser_r), str(from_browser_w),
             executable, *args],
            pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=True)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        found = json.loads(message)
        if found.get("method") == "Network.requestWillBeSent":
            self.requests.append(found["params"]["request"]["url"])
        if "method" in found:
            self.events.append(found)
        return found

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            found = self._read(deadline)
            if found.get("id") == self._next:
                if "error" in found:
                    raise BrowserError(f"{method}: {found['error']}")
                return found["result"]

    def wait_for(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for event in self.events:
            if event["method"] == method:
                self.events.remove(event)
                return event
        while True:
            found = self._read(deadline)
            if found.get("method") == method:
                self.events.remove(found)
                return found

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        found = self.call("Runtime.evaluate", {"expression": expression,
                                               "returnByValue": True}, session=True)
        if "exceptionDetails" in found:
            raise BrowserError(f"{expression}: {found['exceptionDetails']}")
        return found["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        box = self.evaluate(
            f"(function () {{ var el = document.querySelector({json.dumps(selector)});"
            "el.scrollIntoView({block: 'center'}); var r = el.getBoundingClientRect();"
            "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1},
                      session=True)

    def screenshot(self, path, full_page: bool = False) -> None:
        params = {"format": "png"}
        if full_page:
            size = self.evaluate("[document.documentElement.scrollWidth,"
                                 " document.documentElement.scrollHeight]")
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1})
        data = self.call("Page.captureScreenshot", params, session=True)["data"]
        with open(path, "wb") as fh:
            fh.write(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        shutil.rmtree(self._profile, ignore_errors=True)

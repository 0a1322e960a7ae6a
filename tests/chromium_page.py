"""Open an HTML file in headless Chromium (Debian's `chromium`) and read what it rendered.

The DevTools protocol runs over a pipe (`--remote-debugging-pipe`: fd 3 in, fd 4 out,
NUL-separated JSON), so no port, no websocket package and nothing injected into the page:
the file is loaded as a person would open it, then asked for the verdict's text, every
image's decoded and drawn size, the console errors / exceptions / failed loads it logged,
and a full-page screenshot.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Debian's package, then other common names
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MISSING = ("headless Chromium is not installed (Debian: apt-get install chromium; "
           ".ci/run installs it)")
#: the images' sizes and the verdict's text, read from the rendered page
_PROBE = """JSON.stringify({
  verdict: (document.getElementById('verdict') || {}).textContent || null,
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete,
    natural: [i.naturalWidth, i.naturalHeight],
    drawn: [i.getBoundingClientRect().width, i.getBoundingClientRect().height]})),
  scripts: document.scripts.length,
})"""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@dataclass
class RenderedPage:
    verdict: str | None
    images: list[dict[str, Any]]
    errors: list[str]
    scripts: int
    screenshot: bytes

    def broken_images(self) -> list[str]:
        """alt text of every image that did not decode or is drawn with no area."""
        return [i["alt"] for i in self.images
                if not i["complete"] or min(i["natural"]) <= 0 or min(i["drawn"]) <= 0]


class _Pipe:
    """One DevTools client: `call(method, params, session)` waits for its answer, keeping the
    events that arrive meanwhile."""

    def __init__(self, write_fd: int, read_fd: int, timeout: float) -> None:
        self.write_fd, self.read_fd, self.timeout = write_fd, read_fd, timeout
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.write_fd, json.dumps(msg).encode() + b"\0")
        wanted = self.next_id
        reply = self.wait(lambda m: m.get("id") == wanted, method)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait(self, match: Any, what: str) -> dict[str, Any]:
        """The first message, kept or new, that `match`es (an event may have come in while
        an earlier call waited for its answer)."""
        for i, kept in enumerate(self.events):
            if match(kept):
                return self.events.pop(i)
        end = time.monotonic() + self.timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                msg = json.loads(raw)
                if match(msg):
                    return msg
                self.events.append(msg)
            ready, _, _ = select.select([self.read_fd], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError(f"Chromium did not answer {what} in {self.timeout:g} s")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise EOFError(f"Chromium closed the DevTools pipe during {what}")
            self.buffer += chunk


def render(path: str | Path, *, width: int = 1280, timeout: float = 90.0) -> RenderedPage:
    """Load file `path` in headless Chromium; what it shows, logs and looks like."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError(MISSING)
    to_chrome_r, to_chrome_w = os.pipe()
    from_chrome_r, from_chrome_w = os.pipe()
    with tempfile.TemporaryDirectory(prefix="segdeploy-chromium-") as profile, \
            tempfile.TemporaryFile() as log:  # a file: a full stderr pipe would stall Chromium
        # the pipe ends arrive as stdin / stdout; the shell moves them to fds 3 and 4, where
        # --remote-debugging-pipe looks (no preexec_fn, which is unsafe beside threads)
        proc = subprocess.Popen(
            ["sh", "-c", 'exec "$@" 3<&0 4>&1 0</dev/null 1>/dev/null', "sh", browser,
             "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--remote-debugging-pipe", f"--user-data-dir={profile}",
             f"--window-size={width},900", "about:blank"],
            stdin=to_chrome_r, stdout=from_chrome_w, stderr=log)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        pipe = _Pipe(to_chrome_w, from_chrome_r, timeout)
        try:
            return _inspect(pipe, Path(path).resolve().as_uri(), width)
        except (EOFError, TimeoutError, OSError) as exc:
            proc.kill()
            proc.wait(timeout=30)
            log.seek(0)
            stderr = log.read().decode(errors="replace")
            raise RuntimeError(f"{exc}; Chromium's stderr:\n{stderr[-2000:]}") from exc
        finally:
            if proc.poll() is None:
                try:
                    pipe.call("Browser.close")
                except (EOFError, OSError, RuntimeError, TimeoutError):
                    pass
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            os.close(to_chrome_w)
            os.close(from_chrome_r)


def _inspect(pipe: _Pipe, url: str, width: int) -> RenderedPage:
    import base64

    target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        pipe.call(f"{domain}.enable", session=session)
    pipe.call("Page.navigate", {"url": url}, session=session)
    pipe.wait(lambda m: m.get("method") == "Page.loadEventFired", "the page load")
    probe = pipe.call("Runtime.evaluate", {"expression": _PROBE, "returnByValue": True},
                      session=session)
    found = json.loads(probe["result"]["value"])
    size = pipe.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
    shot = pipe.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1}},
        session=session)
    return RenderedPage(found["verdict"], found["images"], _errors(pipe.events),
                        found["scripts"], base64.b64decode(shot["data"]))


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """Console errors and warnings, uncaught exceptions and failed loads, as lines."""
    out = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert",
                                                                          "warning"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                              for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.append("exception: " + str(details.get("exception", {}).get("description")
                                           or details.get("text")))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"log: {entry.get('text')} ({str(entry.get('url', ''))[:60]})")
    return out

"""A minimal headless-Chromium driver for the site tests: the DevTools protocol over a pipe.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol messages (JSON, each
ended by a NUL byte) on file descriptor 3 and writes replies and events on descriptor 4, so no
port is opened and no client library is needed. Every network request a page makes is recorded
from the ``Network.requestWillBeSent`` events; as a second line of defence the browser is given
an unreachable proxy (``127.0.0.1:9``), so a request that was not expected cannot leave the
machine either.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--hide-scrollbars",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
         "--remote-debugging-pipe")

# Everything a page's text shows that looks like TeX a renderer missed; KaTeX's own output, code
# and scripts are removed first (the browser evaluates this).
PAGE_PROBE = r"""
(async () => {
  await document.fonts.ready;
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('.katex, pre, code, script, style').forEach(e => e.remove());
  const text = clone.textContent;
  const raw = text.match(/\$\$|\\\(|\\\[|\$[^$\s][^$\n]{0,200}\$|\\begin\{|\\frac\{/g) || [];
  return JSON.stringify({
    title: document.title,
    katex: document.querySelectorAll('.katex').length,
    katex_display: document.querySelectorAll('.katex-display').length,
    math_errors: document.querySelectorAll(
      '.katex-error, .katex-source-error, mjx-merror, .MathJax_Error').length,
    raw_tex: raw.slice(0, 5),
    fonts_loaded: [...new Set([...document.fonts].filter(f => f.status === 'loaded')
                                                 .map(f => f.family.replace(/"/g, '')))],
    images: [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
  });
})()
"""


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_fd(fd: int) -> int:
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Chromium:
    """One headless browser; ``page(url)`` loads a page and returns what it found."""

    def __init__(self, executable: str, user_data_dir: Path, log: Path, width=1280, height=1000):
        cmd_r, cmd_w = (_high_fd(fd) for fd in os.pipe())
        evt_r, evt_w = (_high_fd(fd) for fd in os.pipe())

        def child_fds():  # runs in the child before exec: its descriptors 3 and 4 are the pipe
            os.dup2(cmd_r, 3)
            os.dup2(evt_w, 4)

        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={user_data_dir}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, close_fds=False,
            preexec_fn=child_fds)
        os.close(cmd_r)
        os.close(evt_w)
        self._out = os.fdopen(cmd_w, "wb", buffering=0)
        self._in = os.fdopen(evt_r, "rb", buffering=0)
        self._next = 0
        self._replies: dict[int, queue.Queue] = {}
        self.events: list[dict] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.width, self.height = width, height

    def _read(self):
        buf = b""
        while True:
            chunk = self._in.read(1 << 16)
            if not chunk:
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    self._replies.setdefault(msg["id"], queue.Queue()).put(msg)
                else:
                    with self._lock:
                        self.events.append(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 60.0) -> dict:
        with self._lock:
            self._next += 1
            ident = self._next
            q = self._replies.setdefault(ident, queue.Queue())
        msg = {"id": ident, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"Chromium did not answer {method} within {timeout} s") from None
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def _wait_event(self, method: str, session: str, since: int, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for ev in self.events[since:]:
                    if ev.get("method") == method and ev.get("sessionId") == session:
                        return ev
            time.sleep(0.02)
        raise TimeoutError(f"no {method} within {timeout} s")

    def page(self, url: str, screenshot: Path | None = None) -> dict:
        """Load ``url`` in a new tab; its probe result, requests and failed requests."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Network", "Page", "Runtime"):
                self.send(f"{domain}.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": self.width, "height": self.height, "deviceScaleFactor": 1,
                       "mobile": False}, session=session)
            with self._lock:
                since = len(self.events)
            self.send("Page.navigate", {"url": url}, session=session)
            self._wait_event("Page.loadEventFired", session, since)
            result = self.send("Runtime.evaluate", {"expression": PAGE_PROBE, "awaitPromise": True,
                                                    "returnByValue": True}, session=session)
            if "exceptionDetails" in result:
                raise RuntimeError(f"page probe failed on {url}: {result['exceptionDetails']}")
            found = json.loads(result["result"]["value"])
            if screenshot is not None:
                shot = self.send("Page.captureScreenshot", {"format": "png"}, session=session)
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            with self._lock:
                mine = [e for e in self.events[since:] if e.get("sessionId") == session]
            found["requests"] = [e["params"]["request"]["url"] for e in mine
                                 if e.get("method") == "Network.requestWillBeSent"]
            found["failed"] = [e["params"].get("errorText", "") for e in mine
                               if e.get("method") == "Network.loadingFailed"]
            return found
        finally:
            self.send("Target.closeTarget", {"targetId": target})

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        self.log.close()


def external(urls: list[str]) -> list[str]:
    """The URLs that would leave the machine (anything but file:, data:, about:, blob:, loopback)."""
    local = ("file:", "data:", "about:", "blob:", "chrome:", "http://127.0.0.1", "http://localhost")
    return [u for u in urls if not u.startswith(local)]

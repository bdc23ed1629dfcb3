"""Headless Chromium driven through its DevTools protocol over a pipe (no extra package):
open a page, run a script in it or in one of its frames, and list every request it made."""

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

# Requests that stay on this machine's files or in the page itself.
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def install_chromium() -> str | None:
    """Chromium found, else Debian's with apt-get, only under CI=true as root (the machine is
    CI's); apt waits for its lock, which another tier's install may hold."""
    found = find_chromium()
    if found or os.environ.get("CI") != "true" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.STDOUT, "timeout": 900}
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=600"]
    subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, **quiet)
    command = ["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    subprocess.run(command, check=True, env=env, **quiet)
    return find_chromium()


class Browser:
    """One headless Chromium whose network leads nowhere: no DNS, a proxy on a closed port
    (loopback still reachable, for a server the test starts on 127.0.0.1)."""

    def __init__(self, executable: str, limit_s: float = 60.0) -> None:
        self.limit_s = limit_s
        self.profile = tempfile.mkdtemp(prefix="chromium-")
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()

        def pipes() -> None:  # in the child: the protocol's fds 3 (commands) and 4 (answers)
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        command = [
            executable,
            "--headless=new",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "--window-size=1400,1000",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            command,
            pass_fds=(3, 4),
            preexec_fn=pipes,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable", session=self.session)

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its protocol pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and wait for its answer; events meanwhile are kept in `events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.limit_s
        while True:
            answer = self._message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_event(self, method: str | tuple[str, ...], match=lambda params: True) -> dict:
        """The first event `method` (or one of them; already received or to come) whose
        params match."""
        methods = (method,) if isinstance(method, str) else method
        deadline = time.monotonic() + self.limit_s
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") in methods and match(event.get("params", {})):
                    return self.events.pop(index)["params"]
            self.events.append(self._message(deadline))

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (or the new fragment, within one document)."""
        self.events.clear()
        self.call("Page.navigate", {"url": url}, self.session)
        self.wait_event(("Page.loadEventFired", "Page.navigatedWithinDocument"))

    def evaluate(self, expression: str, context: int | None = None):
        """The value of a JavaScript expression (promises awaited) in the page or a context."""
        params = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        found = self.call("Runtime.evaluate", params, self.session)
        if "exceptionDetails" in found:
            raise RuntimeError(f"script failed: {found['exceptionDetails']}")
        return found["result"].get("value")

    def frame_context(self, frame_id: str) -> int:
        """An execution context inside a frame (also a cross-origin one, e.g. a data: iframe)."""
        world = self.call(
            "Page.createIsolatedWorld", {"frameId": frame_id, "worldName": "test"}, self.session
        )
        return world["executionContextId"]

    def screenshot(self, path: Path) -> None:
        """The viewport as PNG."""
        import base64

        shot = self.call("Page.captureScreenshot", {"format": "png"}, self.session)
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def requests(self) -> list[str]:
        """URLs of every request the page made since it was opened."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]

    def close(self) -> None:
        """Stop Chromium (its process group, by PID) and remove its profile."""
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, 9)
            self.process.wait()
        finally:
            os.close(self._write)
            os.close(self._read)
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def leaving(urls: list[str]) -> list[str]:
    """The requests that would have left the machine's files."""
    return [url for url in urls if not url.startswith(LOCAL_SCHEMES)]


def file_url(path: Path) -> str:
    return Path(path).resolve().as_uri()

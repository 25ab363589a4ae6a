"""`zoomdream live` as a user runs it: the real command in its own process, and a page's
WebSocket talking to it (the tests' and the bench's live section's)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

URL = re.compile(r"zoomdream live: (http://\S+) \(.*OSC on UDP [^:]+:(\d+)|zoomdream live: (http://\S+)")


class LiveServer:
    """`zoomdream live ARGS` on a free loopback port, until the context ends with Ctrl-C."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None, start_timeout: float = 180):
        self.args, self.cwd, self.timeout = [str(a) for a in args], cwd, start_timeout
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.lines: list[str] = []
        self.url = ""
        self.osc_port = 0

    def __enter__(self) -> LiveServer:
        cmd = [sys.executable, "-m", "zoomdream", "live", "--port", "0", "--osc-port", "0", *self.args]
        self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        found = threading.Event()

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line.rstrip())
                m = URL.search(line)
                if m and not found.is_set():
                    self.url = m[1] or m[3]
                    self.osc_port = int(m[2] or 0)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while not found.wait(0.2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("zoomdream live did not start:\n" + "\n".join(self.lines[-20:]))
        return self

    @property
    def ws_url(self) -> str:
        base, _, query = self.url.partition("?")
        return base.replace("http://", "ws://") + "ws" + (f"?{query}" if query else "")

    def stop(self, timeout: float = 60) -> int:
        """Ctrl-C, as a user stops it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout)

    def __exit__(self, *exc: Any) -> None:
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Page:
    """One page's WebSocket: the messages and frames a browser gets."""

    def __init__(self, url: str, **kw: Any):
        self.ws = connect(url, max_size=1 << 24, **kw).__enter__()
        self.hello = self.next(lambda m: m["type"] == "hello")
        self.frame: dict | None = None  # the last frame's message
        self.jpeg = b""

    def send(self, msg: dict | str) -> None:
        self.ws.send(msg if isinstance(msg, str) else json.dumps(msg))

    def next(self, wanted: Callable[[dict], bool], timeout: float = 60) -> dict:
        """The next message `wanted` accepts (frames update .frame and .jpeg as they pass)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no such message from the live server")
            data = self.ws.recv(timeout=left)
            if isinstance(data, bytes):
                self.jpeg = data
                continue
            msg = json.loads(data)
            if msg["type"] == "frame":
                self.frame = msg
            if wanted(msg):
                return msg

    def frame_at_least(self, n: int, timeout: float = 60) -> dict:
        """The first frame numbered n or later, with its picture (.jpeg)."""
        msg = self.next(lambda m: m["type"] == "frame" and m["n"] >= n, timeout)
        data = self.ws.recv(timeout=timeout)
        assert isinstance(data, bytes)
        self.jpeg = data
        return msg

    def close(self) -> None:
        self.ws.close()

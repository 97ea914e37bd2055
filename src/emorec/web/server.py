"""Running the app: Gunicorn in production, and a child-process server for tests and benchmarks.

Gunicorn's ``gthread`` worker is what flask-sock supports without monkey patching (waitress cannot hand
over the socket at all). Each open WebSocket holds one thread, so ``threads`` bounds the live connections
plus the HTTP requests served at once; the app keeps two threads free for HTTP.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from gunicorn.app.base import BaseApplication

from emorec.web.app import create_app

HTTP_THREADS_KEPT = 2


class EmorecGunicorn(BaseApplication):
    """Gunicorn configured in code (no config file, no command-line parsing), serving ``create_app(**limits)``."""

    def __init__(self, options: dict, limits: dict):
        self.options, self.limits = options, limits
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return create_app(**self.limits)  # runs in each worker after the fork, so models load once per process


def serve(host: str = "127.0.0.1", port: int = 5000, workers: int = 1, threads: int = 8, **limits) -> None:
    """Serve the app with Gunicorn until interrupted; each worker process loads its own models."""
    limits.setdefault("max_live_streams", max(1, threads - HTTP_THREADS_KEPT))
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 120,  # a long video upload must not get its worker killed
        "graceful_timeout": 5,
        # Gunicorn's control socket sits at one path per user: a second server (tests, benchmarks) would take it over.
        "control_socket_disable": True,
    }
    EmorecGunicorn(options, limits).run()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background_server(*serve_args: str, startup_timeout_s: float = 60.0) -> Iterator[str]:
    """Run ``emorec serve`` on a free loopback port in a child process; yield its base URL, stop it on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "emorec.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *serve_args]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        try:
            _wait_until_healthy(url, process, log, startup_timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"emorec serve exited with {process.returncode}:\n{log.read().decode(errors='replace')}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"emorec serve did not answer on {url} within {timeout_s:.0f} s")

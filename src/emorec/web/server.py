"""Running the app with Gunicorn.

Gunicorn's ``gthread`` worker is what flask-sock supports without monkey patching (waitress cannot hand
over the socket at all). Each open WebSocket holds one thread, so ``threads`` bounds the live connections
plus the HTTP requests served at once; the app keeps two threads free for HTTP.
"""

from __future__ import annotations

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

"""What the app's parts share, apart from the app that assembles them: the limits, and the state the views
read through ``current_state()`` (the recognizer, the limits, the live-connection slots). The pages, the API and
the live socket import this module, never ``app.py``, so the package has no import circle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from flask import current_app


@dataclass(frozen=True)
class WebLimits:
    """What one request or one live connection may cost; every value can be changed in ``create_app``."""

    max_upload_bytes: int = 16 * 1024 * 1024
    max_image_pixels: int = 25_000_000  # a 6000x4000 photo; larger headers are refused before decoding
    max_video_frames: int = 300  # ~10 s at 30 fps: longer uploads are cut, and the page says so
    max_ws_message_bytes: int = 1024 * 1024  # one live JPEG frame; a 640x480 frame is ~30-60 KB
    max_live_fps: float = 30.0  # per connection; faster clients are slowed down, not disconnected
    max_live_streams: int = 4  # concurrent live connections; each one holds a server thread
    live_idle_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive, got {getattr(self, f.name)!r}")


@dataclass(frozen=True)
class WebState:
    """What the views share: the recognizer (models loaded once), the limits, and the live-connection slots."""

    recognizer: Any  # an emorec.engine.EmotionRecognizer, or anything with the same methods
    limits: WebLimits
    live_slots: threading.BoundedSemaphore


def current_state() -> WebState:
    return current_app.extensions["emorec"]


def body_limit_message() -> str:
    return f"the request body is larger than the {current_state().limits.max_upload_bytes / 2**20:g} MB limit"

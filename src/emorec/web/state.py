"""What the app's parts share, apart from the app that assembles them: the limits, and the state the views
read through ``current_state()`` (the recognizer, the limits, the budgets). The pages, the API and the live
socket import this module, never ``app.py``, so the package has no import circle.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from typing import Any

from flask import current_app, request

from emorec.web.media import PixelBudget


@dataclass(frozen=True)
class WebLimits:
    """What one request or one live connection may cost, and what all of them together may; every value
    can be changed in ``create_app``."""

    max_upload_bytes: int = 16 * 1024 * 1024
    max_form_parts: int = 16  # the upload form has its token and a part per file
    max_photos: int = 10  # per upload; a video goes alone
    max_image_pixels: int = 25_000_000  # a 6000x4000 photo; larger headers are refused before decoding
    # Pixels decoded at once by all requests: one full-size photo, or many small ones; the rest wait.
    max_pixels_in_flight: int = 25_000_000
    # ... and decoded per second on average (a 25-megapixel PNG takes ~1 s of CPU to decode), so that clients
    # posting huge images back to back leave the CPU to the live connections; small images do not count.
    max_large_pixels_per_s: float = 2_000_000
    busy_wait_s: float = 10.0  # how long a request waits for a decode or analysis slot before a 503
    max_analyses: int = 4  # image analyses and uploads running at once (per worker); more wait, then 503
    # Request bodies held in the worker at once, arriving or being analysed, in memory or spooled to disk (per
    # worker; raised to one upload's size at least): a client whose declared body does not fit waits up to
    # busy_wait_s, then gets 503. Without it 40 clients stalling half-way through 15 MB uploads held 300 MB.
    max_buffered_body_bytes: int = 96 * 1024 * 1024
    max_video_jobs: int = 1  # videos analysed at once (per worker); another gets 503 + Retry-After
    max_video_frames: int = 300  # ~10 s at 30 fps: longer uploads are cut, and the page says so
    max_video_seconds: float = 30.0  # of analysis per video; the page says where it stopped
    max_video_pixels: int = 2_100_000  # per frame: 1920x1080
    max_ws_message_bytes: int = 1024 * 1024  # one live JPEG frame; a 640x480 frame is ~30-60 KB
    max_live_pixels: int = 2_100_000  # per live frame: 1920x1080 (the page sends 480x360)
    max_live_fps: float = 30.0  # per connection; frames beyond it are dropped, newest kept
    max_live_bytes_per_s: int = 4 * 1024 * 1024  # read per connection; the page sends ~1.5 MB/s at 30 fps
    max_live_streams: int = 32  # concurrent live connections per worker
    live_idle_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive, got {getattr(self, f.name)!r}")


@dataclass(frozen=True)
class WebState:
    """What the views share: the recognizer (models loaded once), the limits and the budgets they bound."""

    recognizer: Any  # an emorec.engine.EmotionRecognizer, or anything with the same methods
    limits: WebLimits
    allowed_origins: tuple[str, ...]
    allowed_hosts: tuple[str, ...]  # the server's own host names, lower-case (security.origin_allowed)
    pixel_budget: PixelBudget
    video_slots: threading.BoundedSemaphore


def current_state() -> WebState:
    return current_app.extensions["emorec"]


def body_limit_message() -> str:
    return f"the request body is larger than the {current_state().limits.max_upload_bytes / 2**20:g} MB limit"


def too_large_message() -> str:
    """Why Werkzeug refused a body: its size, or a form with too many parts (which may be small)."""
    limits = current_state().limits
    if (request.content_length or 0) <= limits.max_upload_bytes and request.mimetype == "multipart/form-data":
        return f"the form has more than {limits.max_form_parts} parts"
    return body_limit_message()

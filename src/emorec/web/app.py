"""The Flask application factory: one recognizer per process, shared by the pages, the API and the live socket."""

from __future__ import annotations

import difflib
import io
import logging
import threading
from dataclasses import dataclass, fields
from typing import Any

from flask import Flask, Request, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from emorec.web import security
from emorec.web.media import MediaError, PixelBudget

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebLimits:
    """What one request or one live connection may cost, and what all of them together may; every value
    can be changed in ``create_app``."""

    max_upload_bytes: int = 16 * 1024 * 1024
    max_form_parts: int = 16  # the upload form has two
    max_image_pixels: int = 25_000_000  # a 6000x4000 photo; larger headers are refused before decoding
    # Pixels decoded at once by all requests: one full-size photo, or many small ones; the rest wait.
    max_pixels_in_flight: int = 25_000_000
    # ... and decoded per second on average (a 25-megapixel PNG takes ~1 s of CPU to decode), so that clients
    # posting huge images back to back leave the CPU to the live connections; small images do not count.
    max_large_pixels_per_s: float = 2_000_000
    busy_wait_s: float = 10.0  # how long a request waits for a decode or analysis slot before a 503
    max_analyses: int = 4  # image analyses and uploads running at once (per worker); more wait, then 503
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
    pixel_budget: PixelBudget
    video_slots: threading.BoundedSemaphore


def current_state() -> WebState:
    return current_app.extensions["emorec"]


class InMemoryRequest(Request):
    """Uploaded files stay in memory (the body is bounded by ``max_upload_bytes``): Werkzeug would spool
    any file over 500 KB to a temporary file on disk, where a killed worker would leave it behind."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def body_limit_message() -> str:
    return f"the request body is larger than the {current_state().limits.max_upload_bytes / 2**20:g} MB limit"


def too_large_message() -> str:
    """Why Werkzeug refused a body: its size, or a form with too many parts (which may be small)."""
    limits = current_state().limits
    if (request.content_length or 0) <= limits.max_upload_bytes and request.mimetype == "multipart/form-data":
        return f"the form has more than {limits.max_form_parts} parts"
    return body_limit_message()


def _limits(overrides: dict) -> WebLimits:
    known = [f.name for f in fields(WebLimits)]
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known limits: {', '.join(known)}"
            raise TypeError(f"unknown web limit {key!r}{hint}")
    return WebLimits(**overrides)


def create_app(recognizer=None, allowed_origins: tuple[str, ...] = (), **limits) -> Flask:
    """Build the app around ``recognizer`` (an ``EmotionRecognizer``; the shipped model when None).

    ``allowed_origins`` are other web origins (``https://host:port``, or ``*``) whose pages may post forms
    and open the live socket; the server's own origin always may. ``limits`` override ``WebLimits``
    fields, e.g. ``create_app(max_upload_bytes=2_000_000)``.
    """
    from emorec.web import api, pages

    settings = _limits(limits)  # before loading models, so a typo fails fast
    if recognizer is None:
        from emorec.engine import EmotionRecognizer

        recognizer = EmotionRecognizer()
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    app.json.sort_keys = False  # keep the emotions in FER2013 order, as Face.to_dict() gives them
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_upload_bytes,
        MAX_FORM_PARTS=settings.max_form_parts,
    )
    app.extensions["emorec"] = WebState(
        recognizer,
        settings,
        tuple(origin.rstrip("/") for origin in allowed_origins),
        PixelBudget(settings.max_pixels_in_flight, settings.max_large_pixels_per_s, settings.busy_wait_s),
        threading.BoundedSemaphore(settings.max_video_jobs),
    )
    security.install(app, app.extensions["emorec"].allowed_origins)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_error_handler(MediaError, _media_error)
    app.register_error_handler(Exception, _error)
    return app


def _media_error(exc: MediaError):
    """Refused input anywhere: JSON under /api/, the page's own error otherwise (pages catch theirs first)."""
    if request.path.startswith("/api/"):
        response = jsonify(error=str(exc))
    else:
        response = current_app.make_response((str(exc), {"Content-Type": "text/plain; charset=utf-8"}))
    response.status_code = exc.status
    if exc.retry_after_s is not None:
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


def _error(exc: Exception):
    """JSON errors under /api/ (clients parse them), Werkzeug's HTML pages elsewhere; bugs are logged as 500s."""
    if not isinstance(exc, HTTPException):
        log.exception("unhandled error on %s %s", request.method, request.path)
        exc = InternalServerError(f"internal error: {type(exc).__name__}")
    elif isinstance(exc, RequestEntityTooLarge):
        exc = RequestEntityTooLarge(too_large_message())
    if request.path.startswith("/api/"):
        return jsonify(error=exc.description), exc.code
    return exc

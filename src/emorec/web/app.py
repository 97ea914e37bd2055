"""The Flask application factory: one recognizer per process, shared by the pages, the API and the live socket."""

from __future__ import annotations

import difflib
import io
import logging
import threading
from dataclasses import fields

from flask import Flask, Request, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from emorec.web import api, pages, private, security
from emorec.web.media import MediaError, PixelBudget
from emorec.web.state import WebLimits, WebState, too_large_message

log = logging.getLogger(__name__)


class InMemoryRequest(Request):
    """Uploaded files stay in memory (the body is bounded by ``max_upload_bytes``): Werkzeug would spool
    any file over 500 KB to a temporary file on disk, where a killed worker would leave it behind."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def _limits(overrides: dict) -> WebLimits:
    known = [f.name for f in fields(WebLimits)]
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known limits: {', '.join(known)}"
            raise TypeError(f"unknown web limit {key!r}{hint}")
    return WebLimits(**overrides)


def create_app(recognizer=None, allowed_origins: tuple[str, ...] = (), allowed_hosts: tuple[str, ...] = (),
               **limits) -> Flask:
    """Build the app around ``recognizer`` (an ``EmotionRecognizer``; the shipped model when None).

    ``allowed_origins`` are other web origins (``https://host:port``, or ``*``) whose pages may post forms
    and open the live socket; the server's own origin always may, under an IP address, localhost or one of
    ``allowed_hosts`` (the names browsers reach it by). ``limits`` override ``WebLimits`` fields, e.g.
    ``create_app(max_upload_bytes=2_000_000)``.
    """
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
        (*security.DEFAULT_ALLOWED_HOSTS, *(host.lower().strip("[]") for host in allowed_hosts)),
        PixelBudget(settings.max_pixels_in_flight, settings.max_large_pixels_per_s, settings.busy_wait_s),
        threading.BoundedSemaphore(settings.max_video_jobs),
    )
    security.install(app, app.extensions["emorec"].allowed_origins, app.extensions["emorec"].allowed_hosts)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.extensions["emorec_private"] = private.private_mode(recognizer)
    app.register_blueprint(private.bp)
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

"""The Flask application factory: one recognizer per process, shared by the pages, the API and the live socket."""

from __future__ import annotations

import difflib
import logging
import threading
from dataclasses import fields

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from emorec.web import api, live, pages
from emorec.web.state import WebLimits, WebState, body_limit_message

log = logging.getLogger(__name__)


def _limits(overrides: dict) -> WebLimits:
    known = [f.name for f in fields(WebLimits)]
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known limits: {', '.join(known)}"
            raise TypeError(f"unknown web limit {key!r}{hint}")
    return WebLimits(**overrides)


def create_app(recognizer=None, **limits) -> Flask:
    """Build the app around ``recognizer`` (an ``EmotionRecognizer``; the shipped model when None).

    ``limits`` override ``WebLimits`` fields, e.g. ``create_app(max_upload_bytes=2_000_000)``.
    """
    settings = _limits(limits)  # before loading models, so a typo fails fast
    if recognizer is None:
        from emorec.engine import EmotionRecognizer

        recognizer = EmotionRecognizer()
    app = Flask(__name__)
    app.json.sort_keys = False  # keep the emotions in FER2013 order, as Face.to_dict() gives them
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_upload_bytes,
        SOCK_SERVER_OPTIONS={"max_message_size": settings.max_ws_message_bytes, "ping_interval": 25},
    )
    app.extensions["emorec"] = WebState(recognizer, settings, threading.BoundedSemaphore(settings.max_live_streams))
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    live.sock.init_app(app)
    app.register_error_handler(Exception, _error)
    return app


def _error(exc: Exception):
    """JSON errors under /api/ (clients parse them), Werkzeug's HTML pages elsewhere; bugs are logged as 500s."""
    if not isinstance(exc, HTTPException):
        log.exception("unhandled error on %s %s", request.method, request.path)
        exc = InternalServerError(f"internal error: {type(exc).__name__}")
    elif isinstance(exc, RequestEntityTooLarge):
        exc = RequestEntityTooLarge(body_limit_message())
    if request.path.startswith("/api/"):
        return jsonify(error=exc.description), exc.code
    return exc

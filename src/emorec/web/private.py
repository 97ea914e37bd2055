"""What the live page's private mode fetches from the server: the pipeline's numbers, the ONNX models and ONNX
Runtime Web (see :mod:`emorec.browser`). Frames never come here; the page runs the models itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from flask import Blueprint, abort, current_app, jsonify, send_file

from emorec.browser import ORT_WEB_FILES, model_files, ort_web_dir, pipeline_config, unsupported_reason
from emorec.config import EngineConfig

bp = Blueprint("private", __name__, url_prefix="/private")


class PrivateMode(NamedTuple):
    """Whether the page can run the server's pipeline itself (``reason`` says why not), and what it fetches."""

    reason: str | None
    pipeline: dict | None
    files: dict[str, Path]

    def page_config(self) -> dict:
        """What the live page's script is told: where to fetch from (relative to the page), or why it cannot."""
        return {"unavailable": self.reason} if self.reason else {"base": "private/"}


def private_mode(recognizer) -> PrivateMode:
    config = getattr(recognizer, "config", None)
    if not isinstance(config, EngineConfig):
        return PrivateMode("this server's engine is not one the page can run", None, {})
    reason = unsupported_reason(config)
    if reason:
        return PrivateMode(reason, None, {})
    ort_dir = ort_web_dir()
    files = {**model_files(recognizer.classifier.path), **{f"ort/{name}": ort_dir / name for name in ORT_WEB_FILES}}
    pipeline = pipeline_config(config, recognizer.model_info["name"], recognizer.model_sha256)
    return PrivateMode(None, pipeline, files)


def current_private() -> PrivateMode:
    return current_app.extensions["emorec_private"]


@bp.get("/pipeline.json")
def pipeline():
    mode = current_private()
    if mode.pipeline is None:
        abort(404, mode.reason)
    return jsonify(mode.pipeline)


@bp.get("/<path:name>")
def file(name: str):
    path = current_private().files.get(name)
    if path is None:
        abort(404)
    return send_file(path, max_age=3600)

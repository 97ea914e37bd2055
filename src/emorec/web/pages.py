"""The HTML pages: live camera, upload, and the API documentation."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict

from flask import Blueprint, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from emorec.labels import EMOTION_COLORS_BGR, EMOTIONS
from emorec.web.api import model_summary
from emorec.web.media import MediaError, decode_image, encode_jpeg, is_video
from emorec.web.state import body_limit_message, current_state
from emorec.web.video import annotate_video

bp = Blueprint("pages", __name__)


@bp.app_context_processor
def emotion_palette() -> dict:
    """The emotions and their display colours, from labels.py, for the templates and the live page's script."""
    colors = {name: "#{2:02x}{1:02x}{0:02x}".format(*EMOTION_COLORS_BGR[name]) for name in EMOTIONS}
    return {"emotions": EMOTIONS, "emotion_colors": colors}


@bp.get("/")
def live():
    return render_template("live.html")


@bp.get("/docs")
def api_docs():
    state = current_state()
    return render_template("api.html", limits=asdict(state.limits), model=model_summary(state.recognizer.model_info))


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    if request.method == "GET":
        return render_template("upload.html")
    try:
        return render_template("upload.html", **_analyze_upload())
    except MediaError as exc:
        return render_template("upload.html", error=str(exc)), exc.status
    except RequestEntityTooLarge:
        return render_template("upload.html", error=body_limit_message()), 413


def _analyze_upload() -> dict:
    upload = request.files.get("media")
    if upload is None or not upload.filename:
        raise MediaError("choose an image or a short video to upload")
    data = upload.read()
    state = current_state()
    if is_video(data):
        video = annotate_video(data, state.recognizer, state.limits.max_video_frames, state.limits.max_image_pixels)
        note = f"only the first {len(video.frames)} frames were analysed" if video.truncated else None
        return {
            "video_url": _data_url("video/webm", video.webm),
            "result": {"fps": video.fps, "frames": video.frames},
            "note": note,
            "filename": upload.filename,
        }
    frame = decode_image(data, state.limits.max_image_pixels)
    result = state.recognizer.process(frame)
    annotated = state.recognizer.annotate(frame, result.faces, bars=True)
    return {
        "image_url": _data_url("image/jpeg", encode_jpeg(annotated)),
        "result": result.to_dict(),
        "filename": upload.filename,
    }


def _data_url(mime: str, payload: bytes) -> str:
    """Results go back inside the page, so nothing the visitor sends is kept on the server."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    return json.dumps(value, indent=2)

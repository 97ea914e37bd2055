"""REST API, version 1: analyze an image or a short video, report health and the model. Errors are
``{"error": message}``."""

from __future__ import annotations

import io
from typing import BinaryIO

from flask import Blueprint, jsonify, request

from emorec.calibration import MAX_BASELINE_BYTES, Baseline, BaselineError
from emorec.web.media import MediaError, decode_image, is_video
from emorec.web.state import current_state
from emorec.web.video import annotate_video, peek, run_to_end

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def request_image_bytes() -> bytes:
    """The first file of a multipart form, or else the raw body whatever its declared type
    (``curl --data-binary`` calls an image ``application/x-www-form-urlencoded``)."""
    return _request_file("image", "-F image=@photo.jpg")[0].read()


def _request_file(kind: str, example: str) -> tuple[BinaryIO, str | None]:
    """(file, file name) of the first file of a multipart form (other than the baseline), or else of the raw
    body, which has no name. Not yet read: a video goes from there to disk, never whole into memory."""
    if request.mimetype == "multipart/form-data":
        files = [f for name, f in request.files.items() if name != BASELINE_FIELD]
        if not files:
            raise MediaError(f"the multipart form has no file: send the {kind} as a file field, e.g. {example}")
        return files[0].stream, files[0].filename or None
    return io.BufferedReader(request.stream), None


BASELINE_FIELD = "baseline"


def request_baseline(recognizer) -> Baseline | None:
    """A person's baseline (``emorec calibrate``'s JSON, or the live page's Calibrate's) sent as the multipart
    field ``baseline`` (a file or a plain field), checked against the served model; used for this request
    only, never stored. A form's file input left empty (no name, no bytes) is no baseline. BaselineError,
    naming the field, for anything that is not one."""
    if request.mimetype != "multipart/form-data":
        return None
    sent = request.files.get(BASELINE_FIELD)
    if sent is not None:
        text = sent.read(MAX_BASELINE_BYTES + 1)  # from_json refuses more
        if not text and not sent.filename:
            return None
    else:
        text = request.form.get(BASELINE_FIELD)
        if text is None:
            return None
    return recognizer.check_baseline(Baseline.from_json(text, source=BASELINE_FIELD))


@bp.post("/analyze")
def analyze():
    state = current_state()  # a MediaError becomes a JSON 4xx (or 503) in app._media_error
    frame = decode_image(request_image_bytes(), state.limits.max_image_pixels, state.pixel_budget)
    try:
        baseline = request_baseline(state.recognizer)
    except BaselineError as exc:
        return jsonify(error=str(exc)), 400  # names the field or says the baseline is another model's
    return jsonify(state.recognizer.process(frame, baseline=baseline).to_dict())


RAW_VIDEO_NAME = "upload"  # the summary's "source" for a video sent as the raw body
NOTE_HEADER = "Emorec-Note"  # why only part of a video was analysed (its frame or time limit)


@bp.post("/video")
def video():
    """A short video -> the summary the upload page's JSON download and ``emorec video --json`` give (per
    tracked face: frames, first and last time, dominant emotion, mean probabilities), with every frame's
    faces. One video at a time per worker (``max_video_jobs``): another gets 503 with ``Retry-After``."""
    state = current_state()
    limits = state.limits
    data, filename = _request_file("video", "-F video=@clip.mp4")
    head = peek(data)
    if not head:
        raise MediaError("the request body is empty: send a video (MP4/MOV, WebM/MKV or AVI)")
    if not is_video(head):
        raise MediaError(
            "could not open the video: corrupt file, or not a container emorec reads (MP4/MOV, WebM/MKV, AVI); "
            "send photos to /api/v1/analyze"
        )
    try:
        baseline = request_baseline(state.recognizer)
    except BaselineError as exc:
        return jsonify(error=str(exc)), 400
    if not state.video_slots.acquire(blocking=False):
        raise MediaError("the server is analysing another video; try again in a few seconds", 503, 10)
    try:
        steps = annotate_video(
            data, state.recognizer, limits.max_video_frames, limits.max_video_pixels, limits.max_video_seconds,
            draw=False, baseline=baseline,
        )
        try:
            result = run_to_end(steps)
        finally:
            steps.close()
    finally:
        state.video_slots.release()
    response = jsonify({**result.summary.to_dict(), "source": filename or RAW_VIDEO_NAME, "frames": result.frames})
    if result.stopped_because:
        response.headers[NOTE_HEADER] = result.stopped_because
    return response


@bp.get("/health")
def health():
    return jsonify(status="ok", model=current_state().recognizer.model_info.get("name"))


@bp.get("/model")
def model():
    return jsonify(model_summary(current_state().recognizer.model_info))


def model_summary(info: dict) -> dict:
    """Name, classes and the model card's held-out accuracy (None for a model exported without a card)."""
    metadata = info.get("metadata", {})
    return {
        "name": info.get("name"),
        "classes": list(info.get("classes", [])),
        "accuracy": metadata.get("accuracy"),
        "macro_f1": metadata.get("macro_f1"),
        "protocol": metadata.get("protocol"),
        "input": metadata.get("input"),
    }

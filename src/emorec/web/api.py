"""REST API, version 1: analyze an image, report health and the model. Errors are ``{"error": message}``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from emorec.calibration import Baseline, BaselineError
from emorec.web.media import MediaError, decode_image
from emorec.web.state import current_state

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def request_image_bytes() -> bytes:
    """The first file of a multipart form, or else the raw body whatever its declared type
    (``curl --data-binary`` calls an image ``application/x-www-form-urlencoded``)."""
    if request.mimetype == "multipart/form-data":
        images = [f for name, f in request.files.items() if name != BASELINE_FIELD]
        if not images:
            raise MediaError("the multipart form has no file: send the image as a file field, e.g. -F image=@photo.jpg")
        return images[0].read()
    return request.get_data(cache=False, parse_form_data=False)


BASELINE_FIELD = "baseline"


def request_baseline(recognizer) -> Baseline | None:
    """A person's baseline (``emorec calibrate``'s JSON) sent as the multipart field ``baseline`` (a file or
    a plain field), checked against the served model; used for this request only, never stored."""
    if request.mimetype != "multipart/form-data":
        return None
    sent = request.files.get(BASELINE_FIELD)
    text = sent.read() if sent is not None else request.form.get(BASELINE_FIELD)
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

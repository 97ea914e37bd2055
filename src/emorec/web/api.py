"""REST API, version 1: analyze an image, report health and the model. Errors are ``{"error": message}``."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from emorec.web.media import MediaError, decode_image
from emorec.web.state import current_state

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def request_image_bytes() -> bytes:
    """The first file of a multipart form, or else the raw body whatever its declared type
    (``curl --data-binary`` calls an image ``application/x-www-form-urlencoded``)."""
    if request.mimetype == "multipart/form-data":
        if not request.files:
            raise MediaError("the multipart form has no file: send the image as a file field, e.g. -F image=@photo.jpg")
        return next(iter(request.files.values())).read()
    return request.get_data(cache=False, parse_form_data=False)


@bp.post("/analyze")
def analyze():
    state = current_state()
    try:
        frame = decode_image(request_image_bytes(), state.limits.max_image_pixels)
    except MediaError as exc:
        return jsonify(error=str(exc)), exc.status
    return jsonify(state.recognizer.process(frame).to_dict())


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

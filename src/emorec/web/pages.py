"""The HTML pages: live camera, upload, and the API documentation."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from typing import BinaryIO

from flask import Blueprint, Response, current_app, render_template, request, stream_with_context
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from emorec.browser import emotion_colors
from emorec.calibration import Baseline, BaselineError
from emorec.labels import EMOTIONS
from emorec.summary import TrackSummary
from emorec.web.api import model_summary, request_baseline
from emorec.web.media import MediaError, decode_image, encode_jpeg, is_video, unreadable_video
from emorec.web.security import check_csrf
from emorec.web.state import current_state, too_large_message
from emorec.web.video import AnnotatedVideo, annotate_video, peek, run_to_end

bp = Blueprint("pages", __name__)
PROGRESS_STREAM = "application/x-ndjson"  # what upload.js asks for: progress lines, then the result
TIMELINE_SIZE = (360, 80)  # (width, height) of each face's timeline plot on the upload page


@bp.app_context_processor
def page_context() -> dict:
    """The emotions and their display colours (from labels.py), the limits and whether the live page can run
    the pipeline itself (private mode), for the templates and scripts."""
    return {"emotions": EMOTIONS, "emotion_colors": emotion_colors(), "limits": current_state().limits,
            "private_mode": current_app.extensions["emorec_private"].page_config()}


@bp.get("/")
def live():
    return render_template("live.html")


@bp.get("/favicon.ico")
def favicon():
    return current_app.send_static_file("favicon.svg")  # browsers ask for /favicon.ico whatever the page says


@bp.get("/docs")
def api_docs():
    state = current_state()
    return render_template("api.html", limits=asdict(state.limits), model=model_summary(state.recognizer.model_info))


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    if request.method == "GET":
        return render_template("upload.html")
    streamed = PROGRESS_STREAM in request.headers.get("Accept", "")
    try:
        check_csrf()
        files = [media for media in request.files.getlist("media") if media.filename]
        if not files:
            raise MediaError("choose photos or a short video to upload")
        limit = current_state().limits.max_photos
        if len(files) > limit:
            raise MediaError(f"{len(files)} files sent; send at most {limit} photos at a time", 413)
        try:
            baseline = request_baseline(current_state().recognizer)
        except BaselineError as exc:  # its one line names the field and what is wrong
            raise MediaError(str(exc)) from None
        heads = [peek(media.stream) for media in files]  # the type, from the content; a video is not read here
        for media, head in zip(files, heads, strict=True):
            video_error = unreadable_video(head, media.filename, media.mimetype)
            if video_error is not None:
                raise video_error
        if len(files) == 1 and is_video(heads[0]):
            return _analyse_video(files[0].stream, files[0].filename, streamed, baseline)
        if any(is_video(head) for head in heads):
            raise MediaError("a video is analysed alone: send it by itself, or send only photos")
        named = len(files) > 1
        result = {
            "photos": [_analyse_photo(media.read(), media.filename, named, baseline) for media in files],
            "calibrated": baseline is not None,
        }
        return _stream_result(iter(()), lambda _: result) if streamed else render_template("upload.html", **result)
    except MediaError as exc:
        return _error_page(str(exc), exc.status, exc.retry_after_s)
    except RequestEntityTooLarge:
        return _error_page(too_large_message(), 413)
    except BadRequest as exc:  # a missing CSRF token, a malformed form
        return _error_page(exc.description, 400)


def _error_page(message: str, status: int, retry_after_s: int | None = None):
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else {}
    return render_template("upload.html", error=message), status, headers


def _analyse_photo(data: bytes, filename: str, named: bool, baseline: Baseline | None) -> dict:
    """One photo's result; where it is one of several (``named``), its error names it."""
    try:
        return _analyse_image(data, filename, baseline)
    except MediaError as exc:
        if not named:
            raise
        raise MediaError(f"{filename}: {exc}", exc.status, exc.retry_after_s) from None


def _analyse_image(data: bytes, filename: str, baseline: Baseline | None) -> dict:
    state = current_state()
    frame = decode_image(data, state.limits.max_image_pixels, state.pixel_budget)
    result = state.recognizer.process(frame, baseline=baseline)
    annotated = state.recognizer.annotate(frame, result.faces, bars=True)
    return {
        "filename": filename,
        "image_url": _data_url("image/jpeg", encode_jpeg(annotated)),
        "faces": [face.to_dict() for face in result.faces],
        "json_url": _data_url("application/json", json.dumps(result.to_dict()).encode()),
    }


def _analyse_video(data: BinaryIO, filename: str, streamed: bool, baseline: Baseline | None):
    """One video at a time per worker (``max_video_jobs``): the next visitor gets a 503 that says when to
    retry, rather than a page that takes minutes."""
    state = current_state()
    limits = state.limits
    if not state.video_slots.acquire(blocking=False):
        raise MediaError("the server is analysing another video; try again in a few seconds", 503, 10)
    steps = annotate_video(
        data, state.recognizer, limits.max_video_frames, limits.max_video_pixels, limits.max_video_seconds,
        baseline=baseline,
    )
    calibrated = baseline is not None
    try:
        next(steps)  # the upload goes to disk now: the form's file closes when this view returns
    except BaseException:  # a video that cannot be opened, or is too large: said on the page, with its status
        steps.close()
        state.video_slots.release()
        raise
    if not streamed:
        try:
            return render_template("upload.html", **_video_result(run_to_end(steps), filename, calibrated))
        finally:
            steps.close()
            state.video_slots.release()
    response = _stream_result(steps, lambda video: _video_result(video, filename, calibrated))
    response.call_on_close(state.video_slots.release)  # also when the visitor leaves half-way
    return response


def _stream_result(steps, result_of) -> Response:
    """Progress lines while ``steps`` runs, then the result section (or the error) as one last line."""

    def lines():
        try:
            while True:
                try:
                    done, total = next(steps)
                except StopIteration as finished:
                    html = render_template("_result.html", **result_of(finished.value))
                    yield json.dumps({"html": html}) + "\n"
                    return
                yield json.dumps({"progress": [done, total]}) + "\n"
        except MediaError as exc:
            yield json.dumps({"error": str(exc), "status": exc.status}) + "\n"
        finally:
            if hasattr(steps, "close"):
                steps.close()

    return Response(stream_with_context(lines()), mimetype=PROGRESS_STREAM, headers={"Cache-Control": "no-store"})


def _video_result(video: AnnotatedVideo, filename: str, calibrated: bool) -> dict:
    return {
        "filename": filename,
        "calibrated": calibrated,
        "video_url": _data_url("video/webm", video.webm),
        "note": video.stopped_because,
        "duration_s": video.duration_s,
        "frame_count": len(video.frames),
        "tracks": [_track(track, video.duration_s) for track in video.summary.tracks],
        # The summary of `emorec video --json`, and every frame's faces.
        "json_url": _data_url(
            "application/json",
            json.dumps({**video.summary.to_dict(), "source": filename, "frames": video.frames}).encode(),
        ),
        "csv_url": _data_url("text/csv", video.timeline_csv.encode()),  # the rows of `emorec video --csv`
    }


def _track(track: TrackSummary, duration_s: float) -> dict:
    """What the page shows of one tracked face: its summary and an SVG polyline per emotion."""
    width, height = TIMELINE_SIZE
    span = max(duration_s, 1e-6)
    xs = [t / span * width for t in track.times_s]
    lines = {
        name: " ".join(f"{x:.1f},{(1 - row[i]) * height:.1f}" for x, row in zip(xs, track.scores, strict=True))
        for i, name in enumerate(EMOTIONS)
    }
    return {**track.to_dict(), "lines": lines}


def _data_url(mime: str, payload: bytes) -> str:
    """Results go back inside the page, so nothing the visitor sends is kept on the server."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


@bp.app_template_filter("pretty_json")
def pretty_json(value) -> str:
    return json.dumps(value, indent=2)

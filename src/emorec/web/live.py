"""The live WebSocket: JPEG frames in, one JSON answer per frame out, with tracking per connection.

The browser sends its next frame only after the answer to the previous one arrives, so nothing queues
up; the server still bounds each message's size (``SOCK_SERVER_OPTIONS``), the frame rate and the number
of connections, since any client can talk to the socket.
"""

from __future__ import annotations

import json
import logging
import time

from flask_sock import Sock
from simple_websocket import ConnectionClosed

from emorec.web.media import MediaError, decode_image
from emorec.web.state import current_state

log = logging.getLogger(__name__)
sock = Sock()
TRY_AGAIN_LATER = 1013  # WebSocket close code for "server overloaded"
GOING_AWAY = 1001
# simple_websocket (1.1) wakes a waiting receive() just before it marks a connection closed for an over-size
# message, so a receive() with a long timeout could sleep through the close and hold its slot; short waits
# that re-check the connection end the handler within a second.
RECEIVE_POLL_S = 1.0


@sock.route("/ws/live")
def live(ws) -> None:
    state = current_state()
    if not state.live_slots.acquire(blocking=False):
        ws.close(
            TRY_AGAIN_LATER, f"server busy: the limit of {state.limits.max_live_streams} live connections is reached"
        )
        return
    try:
        _answer_frames(ws, state)
    finally:
        state.live_slots.release()


def _answer_frames(ws, state) -> None:
    limits = state.limits
    stream = state.recognizer.new_stream(smoothing=True)
    interval = 1.0 / limits.max_live_fps
    next_allowed = time.monotonic()
    while True:
        message = _next_message(ws, limits.live_idle_timeout_s)
        if message is None:
            ws.close(GOING_AWAY, f"no frame for {limits.live_idle_timeout_s:.0f} s")
            return
        # Over-eager clients are slowed to max_live_fps rather than dropped: a sleep costs no CPU.
        now = time.monotonic()
        if next_allowed > now:
            time.sleep(next_allowed - now)
        next_allowed = max(now, next_allowed) + interval
        started = time.perf_counter()
        if isinstance(message, str):
            ws.send(json.dumps({"error": "send each frame as a binary JPEG message"}))
            continue
        try:
            frame = decode_image(message, limits.max_image_pixels)
        except MediaError as exc:
            ws.send(json.dumps({"error": str(exc)}))
            continue
        try:
            answer = stream.process(frame).to_dict()
        except Exception:  # a bug on one frame is logged and answered; the connection goes on
            log.exception("live frame failed")
            ws.send(json.dumps({"error": "internal error while analysing the frame"}))
            continue
        answer["server_ms"] = round((time.perf_counter() - started) * 1000, 2)
        ws.send(json.dumps(answer))


def _next_message(ws, idle_timeout_s: float) -> bytes | str | None:
    """The next message, or None after ``idle_timeout_s`` without one; ConnectionClosed once the peer is gone."""
    waited = 0.0
    while waited < idle_timeout_s:
        message = ws.receive(timeout=RECEIVE_POLL_S)
        if message is not None:
            return message
        if not ws.connected:
            raise ConnectionClosed(ws.close_reason, ws.close_message)
        waited += RECEIVE_POLL_S
    return None

"""The live WebSocket (ASGI): JPEG frames in, one JSON answer per frame out, with tracking per connection.

The page sends its next frame only after the answer to the previous one arrives, but any client can talk
to the socket, so the server bounds what each connection may cost: messages are read as they arrive and
only the newest frame is kept (a client that sends faster than it is answered loses frames, it does not
queue them), at most ``max_live_fps`` frames a second are analysed, each message and frame is size-capped,
the connection count is capped, and the frames of all connections share a few engine threads in turn, those
of clients that flood last.
A frame that cannot be decoded closes the connection with a reason; the server never answers with a 500.
So do other abuses: text messages faster than ``COMMANDS`` allows or longer than ``MAX_COMMAND_CHARS``, and
answers left unread for ``live_idle_timeout_s`` (pings are policed by the server, ``server.EmorecWebSocket``).

Text messages are commands, run as they arrive (never dropped like frames): ``{"calibrate": {"seconds": 3}}``
reads the largest face for that long as the person's neutral face, then calibrates every following answer
to it; ``{"calibrate": "reset"}`` goes back. The baseline lives in the connection only and is never stored.
Each answer says where calibration stands (``"calibration": {"state": "off" | "capturing" | "on", ...}``);
a valid command gets no answer of its own, so the page's one-frame-in-flight rhythm is kept.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import queue
import threading
import time

from emorec.calibration import LiveCalibration
from emorec.web.media import MediaError, decode_image
from emorec.web.security import origin_allowed
from emorec.web.state import WebState

log = logging.getLogger(__name__)

# WebSocket close codes (RFC 6455, section 7.4.1)
GOING_AWAY = 1001
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
MAX_REASON_BYTES = 123  # a close frame carries at most 125 bytes, 2 of them the code
CLOSE_CODE_BY_STATUS = {413: MESSAGE_TOO_BIG, 503: TRY_AGAIN_LATER}
CALIBRATION_SECONDS = (1.0, 10.0)  # the shortest and longest capture a client may ask for
# The page's commands are a few dozen bytes; a longer text message is no command, and "[" * 100000 made the
# JSON parser raise RecursionError, which silently ended the connection's reader.
MAX_COMMAND_CHARS = 1024


class RateLimit:
    """A token bucket that refuses rather than waits: ``take()`` is False once more than ``burst`` events came
    faster than ``per_s``. One per connection and kind of message, so one client's flood costs only itself."""

    def __init__(self, per_s: float, burst: int):
        self.per_s, self.burst = per_s, burst
        self._tokens = float(burst)
        self._refilled = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.per_s)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


# Text messages per connection: the page sends one when the person starts or resets calibration. A flood of
# invalid ones grew a worker by 356 MB in 100 s (each queued an answer) and kept resetting the idle timer.
COMMANDS = (2.0, 10)  # RateLimit(per_s, burst)


def _close(code: int, reason: str) -> dict:
    reason = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
    return {"type": "websocket.close", "code": code, "reason": reason}


class FramePool:
    """Threads that analyse live frames, in turn, well-behaved connections first.

    Each connection has at most one frame waiting, so the threads serve the connections in turn and no client
    takes more than its share; a connection that sends frames before its answers come (frames were dropped)
    waits until no well-behaved connection's frame does, so a flooding client gets only the time left over.
    """

    def __init__(self, threads: int):
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # first come, first served within a priority
        self._threads = [threading.Thread(target=self._work, name=f"live_{i}", daemon=True) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def run(self, flooding: bool, fn, *args) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.put((int(flooding), next(self._order), future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            _, _, future, fn, args = self._queue.get()
            if future is None:
                return
            loop = future.get_loop()
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the connection, which decides
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put((2, next(self._order), None, None, ()))


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.done():  # the connection went away meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class LiveHub:
    """The live connections of one worker process and the threads that analyse their frames."""

    def __init__(self, state: WebState, engine_threads: int):
        self.state = state
        self.pool = FramePool(engine_threads)
        self.open = 0

    async def __call__(self, scope: dict, receive, send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        headers = {name.decode("latin1"): value.decode("latin1") for name, value in scope["headers"]}
        origin = headers.get("origin")
        if not origin_allowed(origin, scope["scheme"], headers.get("host"), self.state.allowed_origins,
                              self.state.allowed_hosts):
            log.warning("live connection from origin %s refused", origin)
            await send(_close(POLICY_VIOLATION, "origin not allowed"))  # before accepting: an HTTP 403
            return
        await send({"type": "websocket.accept"})
        limit = self.state.limits.max_live_streams
        if self.open >= limit:
            await send(_close(TRY_AGAIN_LATER, f"server busy: the limit of {limit} live connections is reached"))
            return
        self.open += 1
        try:
            await _Connection(self, receive, send).run()
        except OSError:  # the peer went away while we were sending
            pass
        finally:
            self.open -= 1

    def close(self) -> None:
        self.pool.shutdown()


class _Connection:
    def __init__(self, hub: LiveHub, receive, send):
        self.hub, self.receive, self.send = hub, receive, send
        self.limits = hub.state.limits
        self.stream = hub.state.recognizer.stream(smoothing=True)
        self.calibration = self.stream.calibration
        self.replies: list[dict] = []  # answers to bad commands, sent before the next frame's answer
        self.newest: bytes | str | None = None  # the one message kept; older unanswered ones are dropped
        self.dropped = 0
        self.arrived = asyncio.Event()
        self.last_frame = asyncio.get_running_loop().time()  # the idle timeout counts from here; commands don't
        self.closed = False

    async def run(self) -> None:
        reader = asyncio.create_task(self._read())
        answerer = asyncio.create_task(self._answer())
        try:
            # The reader ends first when the client leaves, or when it closes the connection itself.
            done, _ = await asyncio.wait((reader, answerer), return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            answerer.cancel()
        failure = reader.exception() if reader in done else None
        if failure is not None and not isinstance(failure, OSError):  # a bug: logged, and the client told
            log.error("live connection's reader failed", exc_info=failure)
            await self.send(_close(INTERNAL_ERROR, "internal error while reading a message"))
            return
        for task in done:
            task.result()  # OSError: the client left while we were sending (LiveHub's to handle)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        next_read = loop.time()
        commands = RateLimit(*COMMANDS)
        while True:
            message = await self.receive()
            if message["type"] == "websocket.disconnect":
                self.closed = True
                self.arrived.set()
                return
            if message.get("bytes") is None:
                text = message.get("text") or ""
                if len(text) > MAX_COMMAND_CHARS:
                    await self.send(_close(MESSAGE_TOO_BIG, f"a text message (a command) is at most "
                                                            f"{MAX_COMMAND_CHARS} characters; send frames as binary"))
                    return
                if not commands.take():
                    await self.send(_close(POLICY_VIOLATION, f"more than {COMMANDS[0]:g} commands a second"))
                    return
                problem = _command(text, self.calibration)
                if problem:
                    self.replies.append({"error": problem})
                    self.arrived.set()
                continue
            if self.newest is not None:
                self.dropped += 1
            self.newest = message["bytes"]
            self.last_frame = loop.time()
            self.arrived.set()
            # Read no faster than max_live_bytes_per_s: a flooding client is then held back by TCP (the server
            # stops reading the socket while messages wait) instead of costing CPU for frames that are dropped.
            next_read = max(next_read, loop.time()) + len(self.newest) / self.limits.max_live_bytes_per_s
            await asyncio.sleep(max(0.0, next_read - loop.time()))

    async def _answer(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.limits.max_live_fps
        next_allowed = loop.time()
        idle_s = self.limits.live_idle_timeout_s
        while True:
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, self.last_frame + idle_s - loop.time()))
            except asyncio.TimeoutError:
                await self.send(_close(GOING_AWAY, f"no frame for {idle_s:.0f} s"))
                return
            # Over-eager clients wait here; frames arriving meanwhile replace the one kept.
            await asyncio.sleep(max(0.0, next_allowed - loop.time()))
            next_allowed = max(loop.time(), next_allowed + interval)
            if self.closed:
                return
            message, self.newest = self.newest, None
            self.arrived.clear()
            replies, self.replies = self.replies, []
            for reply in replies:
                await self._send_json(reply)
            if message is None:  # woken by a reply only
                continue
            flooding = self.dropped > 0
            try:
                answer = await self.hub.pool.run(flooding, self._analyse, message)
            except MediaError as exc:
                await self.send(_close(CLOSE_CODE_BY_STATUS.get(exc.status, INVALID_DATA), str(exc)))
                return
            except Exception:  # a bug: logged, and the client is told, never sent a raw 500
                log.exception("live frame failed")
                await self.send(_close(INTERNAL_ERROR, "internal error while analysing the frame"))
                return
            answer["dropped"], self.dropped = self.dropped, 0
            await self._send_json(answer)

    def _analyse(self, message: bytes) -> dict:
        started = time.perf_counter()
        state = self.hub.state
        frame = decode_image(message, self.limits.max_live_pixels, state.pixel_budget)
        result = self.stream.process(frame)
        answer = {**result.to_dict(), "calibration": self.calibration.state()}
        answer["server_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return answer

    async def _send_json(self, answer: dict) -> None:
        # The server waits while the client's unread answers fill its buffers; one that reads nothing for the
        # idle time is closed, instead of holding its connection (and the frame kept for it) for good.
        try:
            await asyncio.wait_for(self.send({"type": "websocket.send", "text": json.dumps(answer)}),
                                   self.limits.live_idle_timeout_s)
        except asyncio.TimeoutError:
            await self.send(_close(POLICY_VIOLATION, f"answers left unread for "
                                                     f"{self.limits.live_idle_timeout_s:.0f} s"))
            raise ConnectionAbortedError("the client reads nothing of its answers") from None


def _command(text: str, calibration: LiveCalibration) -> str | None:
    """Run a text command; what is wrong with it, or None."""
    try:
        command = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: brackets nested deeper than Python's stack allows
        command = None
    if not isinstance(command, dict) or "calibrate" not in command:
        return ('send each frame as a binary JPEG message; text messages are commands: '
                '{"calibrate": {"seconds": 3}} or {"calibrate": "reset"}')
    if command["calibrate"] == "reset":
        calibration.reset()
        return None
    seconds = command["calibrate"].get("seconds", 3) if isinstance(command["calibrate"], dict) else None
    low, high = CALIBRATION_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not low <= seconds <= high:
        return f"calibrate: seconds must be a number from {low:g} to {high:g}"
    calibration.start(float(seconds))
    return None

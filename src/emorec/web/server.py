"""Running the app: Gunicorn's asyncio (ASGI) worker (tests/web_server.py runs it in a child process for the
tests and benchmarks).

Why this setup (measured with benchmarks/web_load.py, see docs/web.md): in Gunicorn's threaded worker each
open WebSocket, and each client that sends half a request and stalls, holds one of a few threads, so eight
stalled clients stopped the server; an asyncio worker holds a waiting client as a small object and keeps
threads for work. The front door below routes the requests: the live socket is served natively
(``live.LiveHub``), the Flask pages and API run in threads through a2wsgi. Cheap requests (GET) and
analyses (POST) get separate thread pools, and a POST gets an analysis slot only once its whole body has
arrived, so slow or stalled uploads hold no thread and ``/api/v1/health`` never waits behind analyses. The
bodies so held are bounded together (``BodyBudget``); beyond its first ``SPOOL_AFTER_BYTES`` a body goes to
an unnamed temporary file as it arrives, so a large upload costs the worker disk, not memory.
Some of this reaches into Gunicorn's own classes, which are not a public API: pyproject.toml pins the web
extra to Gunicorn 27, where the tests ran, so a new major version is taken on only after they pass with it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import json
import logging
import os
import shutil
import ssl
import sys
import tempfile

import numpy as np
from a2wsgi import WSGIMiddleware
from a2wsgi.wsgi import WSGIResponder
from flask import Flask
from gunicorn import sock as gunicorn_sock
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.asgi import websocket as gunicorn_websocket
from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.asgi.websocket import OPCODE_CLOSE, OPCODE_PING, WebSocketDisconnected, WebSocketProtocol
from gunicorn.workers import gasgi

from emorec.config import EngineConfig
from emorec.errors import EmorecError
from emorec.recording import MIN_FREE_BYTES
from emorec.web.app import create_app
from emorec.web.live import POLICY_VIOLATION, LiveHub, RateLimit
from emorec.web.security import SECURITY_HEADERS
from emorec.web.state import WebLimits
from emorec.web.video import remove_stale_workdirs

log = logging.getLogger(__name__)
LIGHT_THREADS = 4  # pages, static files, health: each takes a millisecond or two
BODY_TIMEOUT_S = 60.0  # for a whole request body to arrive: a 16 MB upload at 2 Mbit/s
# A body larger than this is written to a temporary file as it arrives (a photo usually fits in memory, a video
# does not), and handed to the app from there in chunks of REPLAY_CHUNK_BYTES.
SPOOL_AFTER_BYTES = 1024 * 1024
REPLAY_CHUNK_BYTES = 256 * 1024
# Such a body is on disk up to three times at once (the front door's file, the form parser's, a video's working
# copy); one declared larger than what the temporary folder can take so, with MIN_FREE_BYTES to spare, is
# refused before it is read.
DISK_COPIES = 3
NO_ROOM = "the server has no room on its disk for this upload; try again later"
SEND_TIMEOUT_S = 60.0  # a client that reads nothing of its answer for this long has its request ended
# What a WebSocket client may leave unread in the worker: the live answers wait for room (the page's are ~2 KB
# each), but Gunicorn writes pongs without waiting, and a ping flood whose pongs were never read grew a worker
# by 570 MB in 60 s.
MAX_UNREAD_WS_BYTES = 256 * 1024
PINGS = (2.0, 10)  # RateLimit(per_s, burst) per WebSocket: clients ping every few seconds to keep it open
FRAMES_AFTER_CLOSE = 16  # read while waiting for the client's answer to our close frame; then stop reading


class FrontDoor:
    """The ASGI application: routes, admission control, and the body read before any thread is used."""

    def __init__(self, flask_app: Flask, engine_threads: int = 2):
        self.state = flask_app.extensions["emorec"]
        limits = self.state.limits
        self.live = LiveHub(self.state, engine_threads)
        self.light = WSGIThreads(flask_app, workers=LIGHT_THREADS)
        self.heavy = WSGIThreads(flask_app, workers=limits.max_analyses)
        self.analysis_slots: asyncio.Semaphore | None = None  # made in the worker's event loop
        self.body_budget = BodyBudget(max(limits.max_buffered_body_bytes, limits.max_upload_bytes))

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await (self._post(scope, receive, send) if scope["method"] == "POST" else self.light(scope, receive, send))
        elif kind == "websocket":
            if scope["path"] == "/ws/live":
                await self.live(scope, receive, send)
            else:
                await send({"type": "websocket.close", "code": 1008, "reason": "no WebSocket here; try /ws/live"})
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.analysis_slots = asyncio.Semaphore(self.state.limits.max_analyses)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.live.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _post(self, scope: dict, receive, send) -> None:
        limits = self.state.limits
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_upload_bytes):
            # Flask says why (413 page or JSON) without reading the body.
            await self.heavy(scope, _no_body, send)
            return
        if declared is not None and not _disk_has_room_for(int(declared)):
            await _send_json(send, 503, {"error": NO_ROOM}, retry_after_s=60)
            return
        budget = self.body_budget
        held = [int(declared) if declared is not None else 0]  # bytes of the budget this request holds
        if not await budget.reserve(held[0], limits.busy_wait_s):
            await _send_json(send, 503, {"error": "the server is receiving too many uploads; try again shortly"},
                             retry_after_s=max(1, round(limits.busy_wait_s / 2)))
            return
        try:
            await self._post_within_budget(scope, receive, send, held)
        finally:
            budget.release(held[0])

    async def _post_within_budget(self, scope: dict, receive, send, held: list[int]) -> None:
        # Deleted however the request ends (answered, refused, or its client gone and the task cancelled); the
        # file has no name, so a worker that is killed leaves nothing behind either.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_AFTER_BYTES) as body:
            await self._answer(scope, receive, send, held, body)

    async def _answer(self, scope: dict, receive, send, held: list[int], body) -> None:
        limits = self.state.limits
        try:
            size = await asyncio.wait_for(
                _read_body(receive, body, limits.max_upload_bytes, self.body_budget, held), BODY_TIMEOUT_S
            )
        except asyncio.TimeoutError:
            size = None
        except BodyBudget.Full:
            await _send_json(send, 503, {"error": "the server is receiving too many uploads; try again shortly"},
                             retry_after_s=max(1, round(limits.busy_wait_s / 2)))
            return
        except OSError:  # the temporary folder filled up under a body (one without a declared length, say)
            await _send_json(send, 503, {"error": NO_ROOM}, retry_after_s=60)
            return
        if size is None:
            await _send_json(send, 408, {"error": f"the request body did not arrive within {BODY_TIMEOUT_S:.0f} s"})
            return
        slots = self.analysis_slots or asyncio.Semaphore(limits.max_analyses)
        self.analysis_slots = slots
        try:
            await asyncio.wait_for(slots.acquire(), limits.busy_wait_s)
        except asyncio.TimeoutError:
            await _send_json(send, 503, {"error": "the server is busy with other analyses; try again shortly"},
                             retry_after_s=max(1, round(limits.busy_wait_s / 2)))
            return
        try:
            await self.heavy(_with_length(scope, size), _replay(body, size), send)
        finally:
            slots.release()


class ClientGone(ConnectionError):
    """Raised in a request's thread when it writes to a client that left (or read nothing for
    ``SEND_TIMEOUT_S``): the response's iteration stops there, and WSGI's close frees what it holds."""


class WSGIThreads(WSGIMiddleware):
    """a2wsgi's bridge to the Flask app, whose threads stop writing once their request is over."""

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        try:
            await _Responder(self.app, self.executor, self.send_queue_size)(scope, receive, send)
        except ClientGone:
            pass  # a client that stopped reading: its request ends here, as one that left, without a traceback


class _Responder(WSGIResponder):
    """When a client leaves, Gunicorn cancels its request (3 s later); a2wsgi then stops the task that sends
    the thread's writes, and the thread's next write waited forever for room in the queue between them. The
    response was never closed, so a streamed video held its video slot, its upload and a thread until the
    worker restarted. Here a write after the request ended, or one that waits ``SEND_TIMEOUT_S``, raises
    ``ClientGone`` in the thread instead."""

    over = False  # the request's task has ended: nothing the thread writes goes anywhere

    async def __call__(self, scope: dict, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.over = True
            while not self.send_queue.empty():  # room for a write already waiting; the next one raises
                self.send_queue.get_nowait()

    def send(self, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(self._put(message), self.loop).result()

    async def _put(self, message: dict) -> None:
        # The status line still goes in (it never waits: the queue is empty then), so that the app returns
        # its response, whose body write raises; raising in start_response would lose the response unclosed.
        if self.over and message["type"] == "http.response.body":
            raise ClientGone("the client left before the response was written")
        try:
            await asyncio.wait_for(self.send_queue.put(message), SEND_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ClientGone(f"the client read nothing of the response for {SEND_TIMEOUT_S:.0f} s") from None


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin1").strip()
    return None


class BodyBudget:
    """The bytes of request bodies one worker holds at once, all clients together. A body with a declared
    length reserves it before a byte is read (a client that does not fit waits for room, its body held back
    by TCP, then gets 503); one without reserves each chunk as it comes, and gets 503 at once if it does not
    fit. A body comes back to the budget when its request ends, however it ends; once large bodies were
    freed, the C heap is trimmed, since bodies arrive in small chunks that glibc keeps for reuse: 40
    clients stalling half-way through 15 MB uploads left a worker 280 MB larger for good."""

    class Full(Exception):
        pass

    TRIM_AFTER_BYTES = 4 * 1024 * 1024  # freed since the last trim
    TRIM_DELAY_S = 0.5  # one trim for a burst of frees

    def __init__(self, limit: int):
        self.limit, self.held, self._freed = limit, 0, 0
        self._room: asyncio.Event | None = None  # made in the worker's event loop
        self._trim_pending = False

    async def reserve(self, size: int, wait_s: float) -> bool:
        """Holds ``size`` bytes, waiting up to ``wait_s`` for room; False if there was none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        self._room = self._room or asyncio.Event()
        while self.held + size > self.limit:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        self.held += size
        return True

    def take(self, size: int) -> None:
        """Holds ``size`` more bytes now, or raises ``Full``."""
        if self.held + size > self.limit:
            raise BodyBudget.Full
        self.held += size

    def release(self, size: int) -> None:
        if size <= 0:
            return
        self.held -= size
        if self._room is not None:
            self._room.set()
        self._freed += size
        if self._freed >= self.TRIM_AFTER_BYTES and not self._trim_pending:
            self._trim_pending = True
            asyncio.get_running_loop().call_later(self.TRIM_DELAY_S, self._trim)

    def _trim(self) -> None:
        self._trim_pending, self._freed = False, 0
        trim_the_c_heap()


async def _read_body(receive, body, limit: int, budget: BodyBudget | None = None, held: list[int] | None = None
                     ) -> int | None:
    """Writes the whole body into ``body`` (a file) and returns its size; None when the client went away or
    stalled (Gunicorn ends a body that stops arriving for ``timeout`` seconds). A body without a declared
    length stops once it passes ``limit``: Flask then refuses it with its 413 page or JSON. Bytes beyond
    ``held[0]`` (what the request already holds of ``budget``) are taken from it as they come, and added to
    ``held[0]``; ``BodyBudget.Full`` if they do not fit."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if budget is not None and held is not None and size + len(chunk) > held[0]:
            extra = size + len(chunk) - held[0]
            budget.take(extra)
            held[0] += extra
        body.write(chunk)
        size += len(chunk)
        if size > limit or not message.get("more_body", False):
            return size


def _disk_has_room_for(size: int) -> bool:
    """Whether the temporary folder can take a body of ``size`` bytes (``DISK_COPIES`` times over, with
    ``recording.MIN_FREE_BYTES`` left); a body that stays in memory always fits."""
    if size <= SPOOL_AFTER_BYTES:
        return True
    try:
        free = shutil.disk_usage(tempfile.gettempdir()).free
    except OSError:
        return True  # the writes themselves will say
    return free >= DISK_COPIES * size + MIN_FREE_BYTES


def _with_length(scope: dict, length: int) -> dict:
    """The request as the app sees it once its whole body has arrived: with a Content-Length, since WSGI
    reads a body without one (a chunked upload) as empty."""
    headers = [(key, value) for key, value in scope["headers"]
               if key.lower() not in (b"content-length", b"transfer-encoding")]
    return {**scope, "headers": [*headers, (b"content-length", str(length).encode())]}


def _replay(body, size: int):
    """The ASGI ``receive`` of a body read into the file ``body`` (``size`` bytes), in chunks as the app reads
    them: the app's parser takes it from there (Werkzeug writes a form's files to temporary files of its own)."""
    body.seek(0)
    left, ended = size, False

    async def receive() -> dict:
        nonlocal left, ended
        if body.closed:  # the request ended (its client left) while the app was still reading
            return {"type": "http.disconnect"}
        if not ended:
            chunk = body.read(min(left, REPLAY_CHUNK_BYTES)) if left > 0 else b""  # memory or page cache: no wait
            left -= len(chunk)
            ended = left <= 0 or not chunk
            return {"type": "http.request", "body": chunk, "more_body": not ended}
        await asyncio.Event().wait()  # nothing more: like a client that keeps the connection open
        return {"type": "http.disconnect"}

    return receive


async def _no_body() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send_json(send, status: int, payload: dict, retry_after_s: int | None = None) -> None:
    """The front door's own answers (408, 503), with the headers the Flask app puts on every response."""
    headers = [(b"content-type", b"application/json")]
    headers += [(name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items()]
    if retry_after_s is not None:
        headers.append((b"retry-after", str(retry_after_s).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


def trim_the_c_heap() -> None:
    """glibc's ``malloc_trim(0)``: gives the free pages inside its heaps back to the OS (the small blocks a
    body arrives in are freed there, among blocks still in use, and the heap never shrinks by itself)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def return_freed_memory_to_the_os() -> None:
    """glibc keeps freed large blocks for reuse by raising its mmap threshold as they are freed, so one
    25-megapixel image left a worker hundreds of MB larger for good; a fixed threshold makes every block of
    1 MB or more its own mapping, given back when freed. No-op on other C libraries."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_mmap_threshold = -3
    libc.mallopt(m_mmap_threshold, 1024 * 1024)


class EmorecProtocol(ASGIProtocol):
    """Gunicorn's asyncio protocol (one per connection) with two limits it lacks.

    Gunicorn's asyncio worker counts its open connections but admits every one, whatever ``worker_connections``
    (``--max-clients``) says: with 200, it held 1,000. One beyond the limit gets a 503 and is closed at once.
    And it gives a kept-alive connection ``keepalive`` seconds to send its next request's headers, but waits
    forever for the first: a client that connects and stalls would hold its connection for good. Arming the
    same timer on connect closes such clients too (it is cancelled as soon as the headers are complete, as
    for later requests)."""

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.worker.nr_conns > self.worker.worker_connections:
            transport.write(SERVER_FULL_RESPONSE)
            self._close_transport()  # connection_lost still counts it out
        elif hasattr(self, "_arm_keepalive_timer") and not self._closed:
            self._arm_keepalive_timer()


_SERVER_FULL = json.dumps({"error": "the server is full; try again in a few seconds"}).encode()
SERVER_FULL_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_SERVER_FULL), _SERVER_FULL)
)


class EmorecWebSocket(WebSocketProtocol):
    """Gunicorn's WebSocket connection, with the bounds every client gets: pings rate-limited (``PINGS``; more
    close it with 1008), at most ``MAX_UNREAD_WS_BYTES`` left unread (more drop it: such a client reads
    nothing, not even a close frame), and payloads unmasked four bytes at a time in numpy. Gunicorn unmasks
    one byte at a time in a Python generator on the event loop: a client flooding 0.9 MB frames froze every
    other connection (/api/v1/health took 2 s at p95 with four attackers)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pings = RateLimit(*PINGS)
        self._ignored_after_close = 0

    async def _read_frame(self):
        frame = await super()._read_frame()
        if frame is None:
            return None
        if self._close_sent and frame[0] != OPCODE_CLOSE:
            # Gunicorn reads on until the client's close frame arrives (or 5 s pass); a flooding client that
            # ignores ours kept the event loop parsing its frames all that time.
            self._ignored_after_close += 1
            return None if self._ignored_after_close > FRAMES_AFTER_CLOSE else frame
        if frame[0] == OPCODE_PING and not self._pings.take():
            await self._send_close(POLICY_VIOLATION, f"more than {PINGS[0]:g} pings a second")
            return None  # ends the reading: the connection closes
        return frame

    async def _send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport.get_write_buffer_size() > MAX_UNREAD_WS_BYTES:
            self.closed = True
            self._close_event.set()
            self.transport.abort()
            raise WebSocketDisconnected(f"the client left more than {MAX_UNREAD_WS_BYTES} bytes unread")
        await super()._send_frame(opcode, payload)

    def _unmask(self, payload: bytes, masking_key: bytes) -> bytes:
        size = len(payload)
        padded = payload + bytes(-size % 4)
        words = np.frombuffer(padded, np.uint32) ^ np.frombuffer(masking_key, np.uint32)[0]
        return words.tobytes()[:size]


class EmorecWorker(gasgi.ASGIWorker):
    """Gunicorn's ASGI worker, with the connection and WebSocket classes above, and TLS that fails closed."""

    def _get_ssl_context(self):
        # Gunicorn logs a certificate it cannot load and serves plain HTTP instead; ``serve`` checks the pair
        # before starting, and a worker that still cannot load it (a file changed since) stops the server.
        if not self.cfg.is_ssl:
            return None
        try:
            return gunicorn_sock.ssl_context(self.cfg)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.log.error("refusing to serve without TLS: %s", exc)
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None

    def run(self) -> None:
        # The worker builds its connections, and they their WebSockets, from these names.
        gasgi.ASGIProtocol = EmorecProtocol
        gunicorn_websocket.WebSocketProtocol = EmorecWebSocket
        # Gunicorn stops reading a WebSocket once this many messages wait for the app; its 32 let one client
        # park 32 MB here. The live socket reads each message as it comes, or holds the client back on purpose.
        gunicorn_websocket.RECEIVE_QUEUE_HIGH_WATER = 2
        super().run()
        # Shut down cleanly (connections closed, lifespan shutdown done); skip the interpreter's teardown, in
        # which native libraries' thread pools were seen to abort the worker ("terminate called after throwing
        # an instance of std::system_error").
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


class EmorecGunicorn(BaseApplication):
    """Gunicorn configured in code (no config file, no command-line parsing), serving the front door."""

    def __init__(self, options: dict, app_options: dict):
        self.options, self.app_options = options, app_options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Runs in each worker after the fork, so models load once per process.
        return_freed_memory_to_the_os()
        remove_stale_workdirs()
        from emorec.engine import EmotionRecognizer

        options = dict(self.app_options)
        engine_threads = options.pop("engine_threads")
        recognizer = EmotionRecognizer(options.pop("engine_config"))
        return FrontDoor(create_app(recognizer, **options), engine_threads)


def engine_problem(config: EngineConfig) -> str | None:
    """Why ``EmotionRecognizer(config)`` fails, or None. Checked in a fresh process: models
    loaded in Gunicorn's master would be inherited by the forked workers with thread pools that do not
    exist there, and abort them when they exit."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_engine_problem, (config,))


def _engine_problem(config: EngineConfig) -> str | None:
    from emorec.engine import EmotionRecognizer

    try:
        EmotionRecognizer(config)
    except EmorecError as exc:
        return str(exc)
    return None


def tls_problem(certfile: str, keyfile: str) -> str | None:
    """Why ``certfile`` and ``keyfile`` cannot serve TLS (unreadable, not PEM, a key of another certificate),
    in one line; None when they can."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        why = "the key belongs to another certificate" if exc.reason == "KEY_VALUES_MISMATCH" else "not PEM files"
        return f"--certfile {certfile} and --keyfile {keyfile} cannot serve TLS: {why}"
    except OSError as exc:
        return f"cannot read --certfile {certfile} or --keyfile {keyfile} ({exc.strerror})"
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    max_clients: int = 200,
    certfile: str | None = None,
    keyfile: str | None = None,
    engine_config: EngineConfig | None = None,
    engine_threads: int = 2,
    allowed_origins: tuple[str, ...] = (),
    allowed_hosts: tuple[str, ...] = (),
    **limits,
) -> None:
    """Serve the app until interrupted; each worker process loads its own models.

    ``engine_config`` is the engine every worker builds (``EmotionRecognizer(engine_config)``);
    ``engine_threads`` analyse the live frames; ``allowed_hosts`` are the names browsers reach the server by,
    besides its IP addresses, localhost and ``host``; ``limits`` override ``WebLimits`` fields.
    """
    settings = WebLimits(**limits)  # a bad limit or TLS pair fails here, before any worker starts
    problem = tls_problem(certfile, keyfile) if certfile else None
    if problem:
        raise ValueError(problem)
    if not is_loopback(host):
        _warn_exposed(host, port, tls=certfile is not None)
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": f"{__name__}.EmorecWorker",
        "worker_connections": max_clients,  # open connections per worker; more wait in the listen backlog
        "timeout": 30,  # also how long a request body may stall between chunks
        "keepalive": 10,  # seconds a connection may wait, idle or half-way through its request headers
        "graceful_timeout": 5,
        "websocket_max_message_size": settings.max_ws_message_bytes,
        # Gunicorn's control socket sits at one path per user: a second server (tests, benchmarks) would take it over.
        "control_socket_disable": True,
    }
    if certfile:
        options.update(certfile=certfile, keyfile=keyfile)
    options["when_ready"] = lambda _arbiter: _say_where(host, port, tls=certfile is not None)
    app_options = {
        "engine_threads": engine_threads,
        "engine_config": engine_config or EngineConfig(),
        "allowed_origins": allowed_origins,
        "allowed_hosts": (host, *allowed_hosts),
        **limits,
    }
    EmorecGunicorn(options, app_options).run()


def page_url(host: str, port: int, tls: bool) -> str:
    """The address to open in a browser on this machine: a server bound to every interface is reached through
    the loopback one, which browsers also trust with the camera over plain http."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


def _say_where(host: str, port: int, tls: bool) -> None:
    print(f"emorec serve: open {page_url(host, port, tls)} in a browser (Ctrl-C stops the server)",
          file=sys.stderr, flush=True)


def _warn_exposed(host: str, port: int, tls: bool) -> None:
    bar = "!" * 78
    lines = [
        bar,
        f"WARNING: emorec serve is listening on {host}:{port}, reachable from other machines.",
        "It has no login: anyone who can reach this port can use the camera page, upload files and use the API.",
    ]
    if not tls:
        lines.append("Without --certfile/--keyfile, browsers on other machines will not give the page their camera.")
    lines.append("Pages reached by a host name (not an IP address) work once it is given with --allowed-host NAME.")
    lines.append(bar)
    print("\n".join(lines), file=sys.stderr, flush=True)

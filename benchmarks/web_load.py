"""Load on the web app: honest clients beside hostile ones, with the server's cost and the machine's load.

Honest clients behave like the pages: a live client sends one 480-px JPEG frame, waits for the answer and
sends the next (--mode live), a REST client posts a photo and waits (--mode rest), a video client uploads a
short clip through the upload form (--mode video). Attackers, if any, take turns among the kinds given with
--attacks: a client that sends half a request and stalls (reconnecting when closed), one that stalls half-way
through a request body, one that sends half of a 15 MB upload and stalls (stalled-large-body), a live client
that floods 0.9 MB frames without reading answers, one that posts
5000x5000 PNGs (24 KB each) in a loop, one that posts a JPEG of 20,000 scans (scan-bomb), live clients that
flood pings, invalid commands or 100,000-bracket texts without reading (ping-flood, text-flood, deep-text),
one that uploads a video through the page and leaves, half-way through sending it or once its analysis has
begun (leave-upload), and, only when asked for, one that opens 1,000 idle connections (connections: it
takes every place the server admits that is free). Honest clients connect first; the attackers follow a
second later. A prober asks /api/v1/health ten times a second throughout.

    python benchmarks/web_load.py --clients 16 --attackers 8 --seconds 20 --compare   # own server, loopback
    python benchmarks/web_load.py --clients 16 --attackers 11 --attacks all --seconds 30 --compare  # all at once
    python benchmarks/web_load.py --mode rest --clients 4 --url http://127.0.0.1:5000  # a running server

Prints per-client rates, latency and health percentiles, the worker's peak memory and CPU, the machine's
load, files left on disk, whether the worker was replaced, how long after the attack a video upload was
taken again (every video slot free), and the tracebacks in the server's log (own server only); exits 1 when
an honest client failed. Only ever point it at a server on this machine.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from emorec.web.video import WORKDIR_PREFIX, workdir_root

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from web_server import background_server, server_processes, video_form  # noqa: E402  (the test suite's child-process server)

ANSWER_TIMEOUT_S = 10.0
CSRF_TOKEN = "web-load-benchmark-token"  # the upload form's double-submit pair: this cookie, this field


class ConnectionClosed(Exception):
    def __init__(self, reason: int, message: str):
        super().__init__(f"{reason} {message}")
        self.reason, self.message = reason, message


@dataclass
class LoadReport:
    mode: str
    clients: int
    attackers: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    per_client: list[int] = field(default_factory=list)  # answers of each honest client
    faces_found: int = 0
    busy: int = 0  # 503 answers (video mode: another video was being analysed)
    failures: list[str] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    health_failures: int = 0
    attacks: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    rss_after_mb: float = 0.0  # once the attackers left: when it came under SETTLED_RSS_MB, or after SETTLE_S
    rss_settle_s: float = 0.0  # how long after the attackers left that took
    worker_cpu_s: float = 0.0
    machine_busy: float = 0.0  # share of all cores busy during the run, every process counted
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    left_on_disk: int = 0
    worker_replaced: bool = False
    upload_taken_after_s: float | None = None  # after the attack: until a video upload got 200, not 503
    tracebacks: int | None = None  # in the server's log during the run; None when it cannot be read
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def rate_per_client(self) -> float:
        return float(np.mean(self.per_client)) / self.seconds if self.per_client else 0.0

    def summary(self) -> str:
        answered = len(self.latencies_ms)
        lines = [
            f"{self.mode}: {self.clients} honest clients, {self.attackers} attackers, {self.seconds:.1f} s: "
            f"{answered} answers ({answered / self.seconds:.1f}/s in all, {self.rate_per_client:.2f}/s per client, "
            f"slowest client {min(self.per_client or [0]) / self.seconds:.2f}/s), {self.faces_found} with a face, "
            f"{self.busy} busy (503), {len(self.failures)} failures"
        ]
        if answered:
            p50, p95, p99 = np.percentile(self.latencies_ms, [50, 95, 99])
            worst = max(self.latencies_ms)
            lines.append(f"round trip ms: p50 {p50:.1f}  p95 {p95:.1f}  p99 {p99:.1f}  max {worst:.1f}")
        if self.health_ms:
            p50, p95 = np.percentile(self.health_ms, [50, 95])
            lines.append(
                f"health ms: p50 {p50:.1f}  p95 {p95:.1f}  max {max(self.health_ms):.1f} "
                f"({len(self.health_ms)} probes, {self.health_failures} failed)"
            )
        if self.attacks:
            lines.append("attacks made: " + ", ".join(f"{kind} {n}" for kind, n in sorted(self.attacks.items())))
        lines.append(
            f"worker RSS peak {self.peak_rss_mb:.0f} MB, worker CPU {self.worker_cpu_s:.1f} s "
            f"({100 * self.worker_cpu_s / self.seconds:.0f}% of one core), machine {100 * self.machine_busy:.0f}% busy "
            f"({os.cpu_count()} cores; load average before {self.load_before[0]:.2f}), "
            f"{self.left_on_disk} upload folders left on disk, "
            + (f"worker RSS {self.rss_after_mb:.0f} MB {self.rss_settle_s:.0f} s after the attackers left, "
               if self.attackers else "") +
            f"worker replaced: {'yes' if self.worker_replaced else 'no'}"
        )
        if self.upload_taken_after_s is not None:
            lines.append(f"a video upload was taken {self.upload_taken_after_s:.1f} s after the attackers left")
        if self.tracebacks is not None:
            lines.append(f"tracebacks in the server's log: {self.tracebacks}")
        lines += [f"failure: {failure}" for failure in self.failures[:20]]
        return "\n".join(lines)


def cpu_description() -> str:
    """The CPU model and which of the vector extensions that matter here it has."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    present = [flag for flag in ("avx2", "avx512f", "avx512_vnni", "amx_tile") if flag in flags]
    return f"{model}, {os.cpu_count()} cores, {' '.join(present) or 'none of avx2/avx512f/avx512_vnni/amx_tile'}"


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def astronaut_jpeg(width: int = 480) -> bytes:
    """scikit-image's astronaut portrait, downscaled as the live page does and JPEG-encoded."""
    bgr = astronaut_bgr()
    frame = cv2.resize(bgr, (width, width * bgr.shape[0] // bgr.shape[1]), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def astronaut_clip(frames: int = 30, fps: int = 15) -> bytes:
    """A 2-s 480x480 MP4 of the astronaut drifting right, as a phone clip would be uploaded."""
    frame = cv2.resize(astronaut_bgr(), (480, 480), interpolation=cv2.INTER_AREA)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (480, 480))
        for shift in range(frames):
            writer.write(np.roll(frame, 3 * shift, axis=1))
        writer.release()
        return path.read_bytes()


def _connection(base_url: str, timeout: float = 60.0) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


def _upload_body(clip: bytes) -> tuple[bytes, dict]:
    body, content_type = video_form(CSRF_TOKEN, clip)
    return body, {"Content-Type": content_type, "Cookie": f"emorec_csrf={CSRF_TOKEN}"}


class RawLiveSocket:
    """A minimal live-socket client that masks each frame once and sends the same bytes again: wsproto (under
    simple_websocket) masks every byte in Python, which made this benchmark's own process, not the server,
    the bottleneck on a 2-core machine."""

    def __init__(self, base_url: str, frame: bytes, timeout: float = ANSWER_TIMEOUT_S):
        parts = urlsplit(base_url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.sock.sendall(
            f"GET /ws/live HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        self.message = self._masked(frame)

    @staticmethod
    def _masked(payload: bytes, opcode: int = 0x2) -> bytes:
        """A client frame: FIN, ``opcode`` (2 binary, 1 text, 9 ping), masked ``payload``."""
        key = os.urandom(4)
        size = len(payload)
        first = 0x80 | opcode
        if size < 126:
            header = bytes([first, 0x80 | size])
        elif size < 65536:
            header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
        masked = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(key, np.uint8), size)
        return header + key + masked.tobytes()

    def send_frame(self) -> None:
        self.sock.sendall(self.message)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(1006, "connection lost")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self) -> dict:
        """The next answer; ConnectionClosed for a close frame."""
        first, second = self._read(2)
        size = second & 0x7F
        if size == 126:
            size = int.from_bytes(self._read(2), "big")
        elif size == 127:
            size = int.from_bytes(self._read(8), "big")
        payload = self._read(size)
        if first & 0x0F == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            raise ConnectionClosed(code, payload[2:].decode(errors="replace"))
        return json.loads(payload)

    def close(self) -> None:
        self.sock.close()


# --- honest clients ---------------------------------------------------------------------------------------------


def _live_client(base_url: str, frame: bytes, deadline: float, report: LoadReport) -> None:
    answers = 0
    try:
        ws = RawLiveSocket(base_url, frame)
    except (OSError, ConnectionError) as exc:  # any refusal is a failure to report, not a crash of the benchmark
        with report.lock:
            report.failures.append(f"connect: {exc!r}")
            report.per_client.append(0)
        return
    try:
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            ws.send_frame()
            answer = ws.receive()
            latency_ms = (time.perf_counter() - sent) * 1000
            with report.lock:
                if "faces" not in answer:
                    report.failures.append(answer.get("error", f"unexpected answer {answer!r}"))
                    return
                report.latencies_ms.append(latency_ms)
                report.faces_found += bool(answer["faces"])
            answers += 1
    except ConnectionClosed as exc:
        with report.lock:
            report.failures.append(f"closed by server: {exc.reason} {exc.message}")
    except OSError as exc:
        with report.lock:
            report.failures.append(f"live: {exc!r}")
    finally:
        ws.close()
        with report.lock:
            report.per_client.append(answers)


def _rest_client(base_url: str, photo: bytes, deadline: float, report: LoadReport) -> None:
    answers = 0
    while time.monotonic() < deadline:
        connection = _connection(base_url)
        sent = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/analyze", body=photo)
            response = connection.getresponse()
            answer = json.loads(response.read())
        except (OSError, http.client.HTTPException, ValueError) as exc:
            with report.lock:
                report.failures.append(f"analyze: {exc!r}")
            break
        finally:
            connection.close()
        if response.status == 503:
            with report.lock:
                report.busy += 1
            time.sleep(float(response.headers.get("Retry-After", 1)))  # not under the lock: the others report on
            continue
        with report.lock:
            if response.status != 200:
                report.failures.append(f"analyze: {response.status} {answer}")
                break
            report.latencies_ms.append((time.perf_counter() - sent) * 1000)
            report.faces_found += bool(answer["faces"])
        answers += 1
    with report.lock:
        report.per_client.append(answers)


def _video_client(base_url: str, clip: bytes, deadline: float, report: LoadReport) -> None:
    body, headers = _upload_body(clip)
    answers = 0
    while time.monotonic() < deadline:
        connection = _connection(base_url, timeout=120)
        sent = time.perf_counter()
        try:
            connection.request("POST", "/upload", body=body, headers=headers)
            response = connection.getresponse()
            page = response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            with report.lock:
                report.failures.append(f"upload: {exc!r}")
            break
        finally:
            connection.close()
        with report.lock:
            if response.status == 503:
                report.busy += 1
            elif response.status != 200 or "analysed" not in page:
                report.failures.append(f"upload: {response.status}")
                break
            else:
                report.latencies_ms.append((time.perf_counter() - sent) * 1000)
                report.faces_found += "mostly" in page
                answers += 1
        if response.status == 503:
            time.sleep(min(float(response.headers.get("Retry-After", 1)), max(0.0, deadline - time.monotonic())))
    with report.lock:
        report.per_client.append(answers)


# --- attackers -----------------------------------------------------------------------------------------------------


def _count(report: LoadReport, kind: str) -> None:
    with report.lock:
        report.attacks[kind] = report.attacks.get(kind, 0) + 1


def _stalled(request: bytes, what: str, base_url: str, deadline: float, report: LoadReport) -> None:
    """Sends the start of a request and waits; connects again whenever the server closes it."""
    parts = urlsplit(base_url)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1) as connection:
                connection.sendall(request)
                _count(report, what)
                while time.monotonic() < deadline:
                    try:
                        if not connection.recv(100):
                            break
                    except TimeoutError:
                        continue
        except OSError:
            time.sleep(0.2)


# Half a header block; a body that never comes.
_stalled_headers = functools.partial(_stalled, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", "stalled headers")
_stalled_body = functools.partial(
    _stalled, b"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 999999\r\n\r\nxy", "stalled bodies"
)


def _stalled_large_body(base_url: str, deadline: float, report: LoadReport, size: int = 15 * 2**20) -> None:
    """Sends half of a ``size`` upload and waits; connects again whenever the server answers or closes it."""
    parts = urlsplit(base_url)
    head = (b"POST /api/v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % size)
    half = bytes(size // 2)
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=1) as connection:
                connection.sendall(head)
                _count(report, "stalled large bodies")
                sent = 0
                connection.setblocking(False)
                while time.monotonic() < deadline:
                    if sent < len(half):
                        try:
                            sent += connection.send(half[sent : sent + 256 * 1024])
                        except BlockingIOError:
                            pass
                    try:
                        connection.recv(100)
                        break  # answered (503) or closed: start again
                    except BlockingIOError:
                        time.sleep(0.05)
        except OSError:
            time.sleep(0.2)


def _flooder(base_url: str, frame: bytes, deadline: float, report: LoadReport) -> None:
    """A live client that sends 0.9 MB frames as fast as the socket takes them and never reads an answer."""
    heavy = frame + bytes(900_000 - len(frame))
    while time.monotonic() < deadline:
        try:
            ws = RawLiveSocket(base_url, heavy, timeout=1)
            try:
                while time.monotonic() < deadline:
                    ws.send_frame()
                    _count(report, "flood frames (0.9 MB)")
            finally:
                ws.close()
        except (OSError, ConnectionError):  # refused, or closed by the server: try again, as an attacker would
            time.sleep(0.2)


def huge_png() -> bytes:
    """A 24 KB PNG of 5000x5000 pixels (25 MP, inside the limit)."""
    return cv2.imencode(".png", np.zeros((5000, 5000, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def _poster(label: str) -> Callable[[str, bytes, float, LoadReport], None]:
    """An attacker that posts one body to the REST endpoint again and again, counting answers under ``label``."""

    def post(base_url: str, body: bytes, deadline: float, report: LoadReport) -> None:
        while time.monotonic() < deadline:
            connection = _connection(base_url)
            try:
                connection.request("POST", "/api/v1/analyze", body=body)
                response = connection.getresponse()
                response.read()
                _count(report, f"{label} ({response.status})")
            except (OSError, http.client.HTTPException):
                time.sleep(0.2)
            finally:
                connection.close()

    return post


def scan_bomb(scans: int = 20_000, size: int = 1448) -> bytes:
    """A progressive JPEG with ``scans`` near-empty scans spliced in (233 KB): 2.8 s of CPU to decode, were it
    decoded (the server refuses more than 100 scans from the headers)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (90, 120, 200)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    last = data.rindex(b"\xff\xda")
    header = data[last : last + 2 + int.from_bytes(data[last + 2 : last + 4], "big")]
    return data[:-2] + (header + b"\x00") * scans + b"\xff\xd9"


def _socket_flooder(message: bytes, what: str, base_url: str, deadline: float, report: LoadReport) -> None:
    """A live connection that sends ``message`` (a masked frame) as fast as the socket takes it and never reads
    what the server sends back; connects again whenever the server closes it."""
    while time.monotonic() < deadline:
        try:
            ws = RawLiveSocket(base_url, b"", timeout=1)
            _count(report, f"{what} connections")
            try:
                while time.monotonic() < deadline:
                    ws.sock.sendall(message)
                    _count(report, what)
            finally:
                ws.close()
        except (OSError, ConnectionError):
            time.sleep(0.2)


_ping_flooder = functools.partial(_socket_flooder, RawLiveSocket._masked(b"ping", opcode=0x9), "pings")
_text_flooder = functools.partial(_socket_flooder, RawLiveSocket._masked(b"not a command", opcode=0x1),
                                  "invalid commands")
_deep_text = functools.partial(_socket_flooder, RawLiveSocket._masked(b"[" * 100_000, opcode=0x1),
                               "100,000-bracket texts")


def _connection_hoarder(base_url: str, deadline: float, report: LoadReport, count: int = 1000) -> None:
    """Opens ``count`` connections that send nothing, and counts those the server admits (it closes them
    after its first-request deadline) and those it refuses at once with a 503 (beyond --max-clients)."""
    parts = urlsplit(base_url)
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            try:
                held.append(socket.create_connection((parts.hostname, parts.port), timeout=1))
            except OSError:
                _count(report, "connections not accepted")
        time.sleep(1)
        for connection in held:
            connection.setblocking(False)
            try:
                refused = connection.recv(12).startswith(b"HTTP/1.1 503")
            except BlockingIOError:
                refused = False
            except OSError:
                refused = True
            _count(report, "connections refused (503)" if refused else "connections admitted")
        while time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for connection in held:
            connection.close()


def _upload_leaver(base_url: str, clip: bytes, deadline: float, report: LoadReport) -> None:
    """Uploads ``clip`` through the upload page as its script does (progress lines streamed back) and leaves:
    half-way through sending it, then, the next time, once the first progress line came, and so on."""
    parts = urlsplit(base_url)
    body, headers = _upload_body(clip)
    head = (f"POST /upload HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/x-ndjson\r\n"
            f"Content-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    half_way = True
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((parts.hostname, parts.port), timeout=10) as connection:
                if half_way:
                    connection.sendall(head.encode() + body[: len(body) // 2])
                    _count(report, "uploads left half-sent")
                else:
                    connection.sendall(head.encode() + body)
                    answer = b""  # read until the first progress line, or a refusal's status line
                    while b"progress" not in answer and (len(answer) < 12 or answer.startswith(b"HTTP/1.1 200")):
                        chunk = connection.recv(4096)
                        if not chunk:
                            break
                        answer += chunk
                    _count(report, "uploads left mid-analysis" if b"progress" in answer else
                           f"uploads refused ({answer[9:12].decode(errors='replace')})")
        except OSError:
            pass
        half_way = not half_way
        time.sleep(0.5)


def _upload_taken_after(base_url: str, clip: bytes, since: float, limit_s: float = 60.0) -> float:
    """Seconds from ``since`` (a ``time.monotonic()``) until the server takes a video upload (200) rather than
    refusing it (503: its video slots are held), up to ``limit_s``."""
    body, headers = _upload_body(clip)
    while time.monotonic() - since < limit_s:
        connection = _connection(base_url, timeout=120)
        try:
            connection.request("POST", "/upload", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                break
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    return time.monotonic() - since


ATTACKS = {
    "stalled-headers": _stalled_headers,
    "flood": _flooder,
    "stalled-body": _stalled_body,
    "stalled-large-body": _stalled_large_body,
    "oversized": _poster("5000x5000 PNGs"),
    "scan-bomb": _poster("scan bombs"),
    "ping-flood": _ping_flooder,
    "text-flood": _text_flooder,
    "deep-text": _deep_text,
    "leave-upload": _upload_leaver,
    # Takes every place the server admits that is free, so that new connections get 503 (the health prober's
    # too) until the server closes its idle ones: not among the defaults (--attacks connections, or all).
    "connections": _connection_hoarder,
}
DEFAULT_ATTACKS = [kind for kind in ATTACKS if kind != "connections"]


def _attack(
    base_url: str, frame: bytes, png: bytes, attackers: int, deadline: float, counts, kinds: list[str]
) -> None:
    """``attackers`` hostile clients, taking turns among ``kinds``, until ``deadline``; puts the count of
    each kind of attack made on ``counts``."""
    payloads = {"flood": (frame,), "oversized": (png,), "scan-bomb": (scan_bomb(),),
                "leave-upload": (astronaut_clip(frames=90),)}
    kinds = [(ATTACKS[kind], payloads.get(kind, ())) for kind in kinds]
    report = LoadReport("attack", 0, attackers, 0)
    threads = []
    for i in range(attackers):
        attack, extra = kinds[i % len(kinds)]
        threads.append(threading.Thread(target=attack, args=(base_url, *extra, deadline, report), daemon=True))
        threads[-1].start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
    counts.put(report.attacks)


# --- the run -------------------------------------------------------------------------------------------------------


def _prober(base_url: str, stop: threading.Event, report: LoadReport) -> None:
    while not stop.is_set():
        connection = _connection(base_url, timeout=5)
        started = time.perf_counter()
        try:
            connection.request("GET", "/api/v1/health")
            ok = connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        finally:
            connection.close()
        with report.lock:
            if ok:
                report.health_ms.append((time.perf_counter() - started) * 1000)
            else:
                report.health_failures += 1
        stop.wait(0.1)


SETTLED_RSS_MB, SETTLE_S = 300, 60  # issue 25's target: the worker back under 300 MB within 60 s


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def run_load(
    base_url: str,
    mode: str = "live",
    clients: int = 4,
    attackers: int = 0,
    seconds: float = 10.0,
    attack_kinds: list[str] | None = None,
    log_path: Path | None = None,
) -> LoadReport:
    """``clients`` honest clients and ``attackers`` hostile ones against ``base_url`` for ``seconds``;
    ``log_path`` is the server's log, whose new tracebacks are counted."""
    report = LoadReport(mode, clients, attackers, seconds, load_before=os.getloadavg())
    frame = astronaut_jpeg()
    honest = {
        "live": (_live_client, frame),
        "rest": (_rest_client, cv2.imencode(".jpg", astronaut_bgr())[1].tobytes()),
        "video": (_video_client, astronaut_clip()),
    }[mode]
    png = huge_png() if attackers else b""  # made before the clock starts: it takes a second of CPU
    _, workers = server_processes(base_url)
    worker_pids = [pid for pid, _ in workers]
    ticks = sum(_cpu_ticks(pid) for pid in worker_pids)
    busy_before, total_before = _machine_ticks()
    started = time.monotonic()
    deadline = started + seconds
    stop = threading.Event()
    threads = [threading.Thread(target=_prober, args=(base_url, stop, report))]
    client, payload = honest
    threads += [threading.Thread(target=client, args=(base_url, payload, deadline, report)) for _ in range(clients)]
    # Attackers run in their own process so that their work does not slow the honest clients' Python.
    attack_counts = multiprocessing.get_context("fork").Queue()
    attacker_process = multiprocessing.get_context("fork").Process(
        target=_attack,
        args=(base_url, frame, png, attackers, deadline, attack_counts, attack_kinds or DEFAULT_ATTACKS),
    )
    log_start = log_path.stat().st_size if log_path else 0
    for thread in threads:
        thread.start()
    if attackers:
        time.sleep(1)  # the honest clients connect first: the connection hoarder takes what is left
        attacker_process.start()
    while time.monotonic() < deadline:
        try:
            report.peak_rss_mb = max(report.peak_rss_mb, sum(rss for _, rss in server_processes(base_url)[1]) / 1024)
        except (StopIteration, OSError):
            pass
        time.sleep(0.1)
    for thread in threads[1 : 1 + clients]:
        thread.join()
    report.seconds = time.monotonic() - started  # the honest clients' time, not the attackers' wind-down
    stop.set()
    threads[0].join()
    if attackers:
        report.attacks = attack_counts.get(timeout=30)
        attacker_process.join()
    attackers_left = time.monotonic()
    busy_after, total_after = _machine_ticks()
    report.machine_busy = (busy_after - busy_before) / max(1, total_after - total_before)
    live_workers = [pid for pid, _ in server_processes(base_url)[1]]
    report.worker_replaced = live_workers != worker_pids
    report.worker_cpu_s = (
        (sum(_cpu_ticks(pid) for pid in worker_pids if pid in live_workers) - ticks) / os.sysconf("SC_CLK_TCK")
    )
    if attackers:  # the memory the attack took should come back
        left = time.monotonic()
        while True:
            report.rss_after_mb = sum(rss for _, rss in server_processes(base_url)[1]) / 1024
            report.rss_settle_s = time.monotonic() - left
            if report.rss_after_mb < SETTLED_RSS_MB or report.rss_settle_s > SETTLE_S:
                break
            time.sleep(0.5)
    if attackers and "leave-upload" in (attack_kinds or DEFAULT_ATTACKS):
        # Measured after the memory settled (the upload's own analysis would be counted in it), from the
        # moment the attackers left.
        report.upload_taken_after_s = _upload_taken_after(base_url, astronaut_clip(), since=attackers_left)
    time.sleep(1)  # let attackers' last requests finish before counting leftovers
    report.left_on_disk = len(list(workdir_root().glob(f"{WORKDIR_PREFIX}*")))
    if log_path:
        with log_path.open("rb") as log:
            log.seek(log_start)
            report.tracebacks = log.read().count(b"Traceback (most recent call last)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a server on this machine, e.g. http://127.0.0.1:5000 (default: start one)")
    parser.add_argument("--mode", choices=["live", "rest", "video"], default="live")
    parser.add_argument("--clients", type=int, default=4, help="honest clients")
    parser.add_argument("--attackers", type=int, default=0, help="hostile clients (stalled, flooding, oversized)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--attacks", default=",".join(DEFAULT_ATTACKS),
                        help=f"kinds of attackers, in turn, of {', '.join(ATTACKS)}, or all (default: %(default)s)")
    parser.add_argument("--compare", action="store_true", help="run without attackers first and compare")
    args = parser.parse_args(argv)
    if args.url and urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("--url must be a server on this machine (127.0.0.1)")
    print(f"CPU: {cpu_description()}")

    def runs(url: str) -> list[LoadReport]:
        # --compare runs unattacked, attacked, unattacked again: the machine's other load drifts, and the
        # attacked run is compared with the mean of the two around it.
        plan = [0, args.attackers, 0] if args.compare and args.attackers else [args.attackers]
        kinds = list(ATTACKS) if args.attacks == "all" else args.attacks.split(",")
        unknown = set(kinds) - set(ATTACKS)
        if unknown:
            parser.error(f"unknown attacks: {', '.join(sorted(unknown))}; known: {', '.join(ATTACKS)}")
        return [run_load(url, args.mode, args.clients, attackers, args.seconds, kinds, log_path)
                for attackers in plan]

    log_path = None
    if args.url:
        reports = runs(args.url.rstrip("/"))
    else:
        with tempfile.TemporaryDirectory() as folder:
            log_path = Path(folder) / "server.log"
            with background_server("--max-live-streams", str(args.clients + args.attackers + 4),
                                   log_path=log_path) as url:
                reports = runs(url)
    for report in reports:
        print(report.summary())
    if len(reports) == 3:
        unattacked = (reports[0].rate_per_client + reports[2].rate_per_client) / 2
        ratio = reports[1].rate_per_client / max(unattacked, 1e-9)
        print(f"honest clients under attack: {100 * ratio:.0f}% of their unattacked rate (mean of the runs before "
              f"and after)")
    return 1 if any(report.failures for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())

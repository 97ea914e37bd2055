"""Load on the live WebSocket: several concurrent clients send a real face photo for a few seconds.

Each client behaves like the live page: it sends one 480-px JPEG frame, waits for the answer, sends the next.

    python benchmarks/web_load.py --clients 4 --seconds 10          # starts its own server on loopback
    python benchmarks/web_load.py --url http://127.0.0.1:5000       # or loads a running one

Prints answered frames per second, round-trip latency percentiles and every failure.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from simple_websocket import Client, ConnectionClosed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from web_server import background_server  # noqa: E402  (the test suite's child-process server)

ANSWER_TIMEOUT_S = 10.0


@dataclass
class LoadReport:
    clients: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    faces_found: int = 0
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        answered = len(self.latencies_ms)
        lines = [
            f"{self.clients} clients, {self.seconds:.1f} s: {answered} answers "
            f"({answered / self.seconds:.1f} frames/s in all), {self.faces_found} with a face, "
            f"{len(self.failures)} failures"
        ]
        if answered:
            p50, p90, p99 = np.percentile(self.latencies_ms, [50, 90, 99])
            lines.append(
                f"round trip ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {max(self.latencies_ms):.1f}"
            )
        lines += [f"failure: {failure}" for failure in self.failures[:20]]
        return "\n".join(lines)


def astronaut_jpeg(width: int = 480) -> bytes:
    """scikit-image's astronaut portrait, downscaled as the live page does and JPEG-encoded."""
    from skimage import data

    rgb = data.astronaut()
    frame = cv2.resize(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
        (width, width * rgb.shape[0] // rgb.shape[1]),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def _client(ws_url: str, frame: bytes, deadline: float, report: LoadReport, lock: threading.Lock) -> None:
    try:
        ws = Client.connect(ws_url)
    except Exception as exc:  # any refusal is a failure to report, not a crash of the benchmark
        with lock:
            report.failures.append(f"connect: {exc!r}")
        return
    try:
        while time.monotonic() < deadline:
            sent = time.perf_counter()
            ws.send(frame)
            message = ws.receive(timeout=ANSWER_TIMEOUT_S)
            latency_ms = (time.perf_counter() - sent) * 1000
            answer = json.loads(message) if message is not None else {"error": f"no answer in {ANSWER_TIMEOUT_S} s"}
            with lock:
                if "faces" not in answer:
                    report.failures.append(answer.get("error", f"unexpected answer {answer!r}"))
                    return
                report.latencies_ms.append(latency_ms)
                report.faces_found += bool(answer["faces"])
    except ConnectionClosed as exc:
        with lock:
            report.failures.append(f"closed by server: {exc.reason} {exc.message}")
    finally:
        ws.close()


def run_load(base_url: str, clients: int = 4, seconds: float = 10.0, frame: bytes | None = None) -> LoadReport:
    """``clients`` concurrent live connections to ``base_url`` for ``seconds``; failures are collected, not raised."""
    frame = frame if frame is not None else astronaut_jpeg()
    ws_url = base_url.replace("http", "ws", 1) + "/ws/live"
    report, lock = LoadReport(clients, seconds), threading.Lock()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=_client, args=(ws_url, frame, deadline, report, lock)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server, e.g. http://127.0.0.1:5000 (default: start one)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.url:
        report = run_load(args.url.rstrip("/"), args.clients, args.seconds)
    else:
        with background_server("--threads", str(args.clients + 2)) as url:
            report = run_load(url, args.clients, args.seconds)
    print(report.summary())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

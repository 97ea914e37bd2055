"""A real ``emorec serve`` in a child process on a free loopback port, for the web tests and benchmarks/web_load.py."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def background_server(*serve_args: str, startup_timeout_s: float = 60.0, scheme: str = "http",
                      log_path: Path | None = None) -> Iterator[str]:
    """Run ``emorec serve`` on a free loopback port in a child process; yield its base URL, stop it on exit.
    Its output goes to ``log_path`` where given, else to a file that has no name."""
    port = free_port()
    url = f"{scheme}://127.0.0.1:{port}"
    command = [sys.executable, "-m", "emorec.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *serve_args]
    with open(log_path, "w+b") if log_path else tempfile.TemporaryFile() as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        try:
            _wait_until_healthy(url, process, log_file, startup_timeout_s)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_healthy(url: str, process: subprocess.Popen, log_file, timeout_s: float) -> None:

    context = ssl._create_unverified_context() if url.startswith("https") else None  # a self-signed test cert
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_file.seek(0)
            output = log_file.read().decode(errors="replace")
            raise RuntimeError(f"emorec serve exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2, context=context) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"emorec serve did not answer on {url} within {timeout_s:.0f} s")


def video_form(
    token: str, clip: bytes, *, filename: str = "clip.mp4", baseline: bytes | None = None,
    baseline_name: str = "me.json",
) -> tuple[bytes, str]:
    """The upload form posting ``clip`` as ``filename`` (a video, or a photo) with its CSRF ``token``, and the
    file ``baseline`` in its baseline field where given (``b""`` with ``baseline_name=""`` is what a browser
    sends for the field left empty): (body, Content-Type)."""
    boundary = "emorecboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="media"; filename="{filename}"\r\n\r\n'
    ).encode() + clip
    if baseline is not None:
        body += (
            f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="baseline"; filename="{baseline_name}"\r\n'
            "Content-Type: application/json\r\n\r\n"
        ).encode() + baseline
    return body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def server_processes(url: str) -> tuple[int, list[tuple[int, int]]]:
    """The master's pid and each worker's (pid, resident memory in KB) of the ``emorec serve`` on ``url``'s
    port, read from /proc (Linux): for tests and benchmarks that watch what the server costs."""
    port = str(urlsplit(url).port).encode()
    parent, rss = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
        except OSError:  # gone meanwhile
            continue
        if b"serve" in command and b"--port" in command[:-1] and command[command.index(b"--port") + 1] == port:
            parent[int(entry.name)] = int(status["PPid"])
            rss[int(entry.name)] = int(status.get("VmRSS", "0 kB").split()[0])
    # Workers are the master's forks; a wrapper that started the master (timeout, a shell) matches too.
    workers = [pid for pid in parent if parent[pid] in parent and pid not in parent.values()]
    master = parent[workers[0]] if workers else next(pid for pid in parent if pid not in parent.values())
    return master, sorted((pid, rss[pid]) for pid in workers)


def self_signed_certificate(folder: Path, name: str, alt_names: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key in ``folder``, made as docs/web.md says (skips without openssl)."""
    import shutil

    import pytest

    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName={alt_names}", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key

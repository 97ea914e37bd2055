"""Batch analysis of video collections: every face of every frame of many files, as Parquet.

The work is split by file, never by frame, because tracking and smoothing need a video's frames in order; a
file is analysed by :func:`analyze_file`, which runs the engine's one frame loop (``EmotionRecognizer.stream``)
over it. The same function runs in a local process pool (the default) or on a Ray cluster: only the executor
differs. Each worker process loads the models once and runs ONNX Runtime with its share of the cores.

Output folder (:func:`schemas` lists and explains the columns)::

    OUT/faces/KEY.parquet   one row per face per frame of one file (KEY: its path, content hash and settings)
    OUT/files/KEY.json      that file's summary row, written last: a file is done when it exists
    OUT/summary.parquet     one row per input of the latest run: frames, faces, tracks, errors
    OUT/videos/NAME.mp4     annotated videos, with ``annotate=True``

Every file is written under a temporary name and renamed, so a killed job leaves no half-written output and
loses at most the files in flight; a rerun skips every file whose path, content and settings are unchanged,
and replaces the results of a file analysed again under other settings, so OUT holds one result per input. A
file that cannot be read becomes an error row in the summary and the job goes on. The driver writes the
Parquet and JSON files, so on a cluster only the inputs (and ``OUT/videos`` for annotated videos) need to
be on storage the workers can reach.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emorec.calibration import load_baseline
from emorec.config import EngineConfig
from emorec.errors import ConfigError, EmorecError, InputError
from emorec.labels import EMOTIONS
from emorec.outputs import is_inside, write_atomic
from emorec.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES, open_file
from emorec.summary import RecordingSummary

__all__ = ["BatchSettings", "analyze", "analyze_file", "expand_inputs", "schemas"]

LIST_SUFFIXES = {".txt", ".lst", ".list"}  # a text file of inputs, one per line
# ONNX Runtime threads per worker process, with one worker per core: one thread is the engine's fastest
# setting end to end (BlazeFace's small convolutions gain nothing from a second), and on a busy machine a
# second spinning thread per worker only fights the other workers for the cores.
WORKER_THREADS = 1
PROGRESS_EVERY = 25  # frames between two progress reports from a worker
RESULT_FOLDERS = ("faces", "files", "videos")  # in OUT, beside summary.parquet


def schemas():
    """The Parquet schemas (pyarrow) of OUT/faces/*.parquet and OUT/summary.parquet; each column is described
    beside it. pyarrow is imported here, not at import time."""
    import pyarrow as pa

    faces = pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),  # the input path as given
            pa.field("sha256", pa.string(), nullable=False),  # of the file's content
            pa.field("model", pa.string(), nullable=False),  # the classifier file that read the faces
            pa.field("frame_index", pa.int64(), nullable=False),  # from 0, in decoding order
            pa.field("time_s", pa.float64(), nullable=False),  # frame_index / the container's frame rate
            pa.field("track_id", pa.int64(), nullable=False),  # stable while the face stays in view, from 1
            pa.field("x1", pa.int32(), nullable=False),  # box in pixels of the frame, x to the right, y down
            pa.field("y1", pa.int32(), nullable=False),
            pa.field("x2", pa.int32(), nullable=False),
            pa.field("y2", pa.int32(), nullable=False),
            pa.field("detection_score", pa.float32(), nullable=False),
            pa.field("emotion", pa.string(), nullable=False),  # the most probable of the seven
            pa.field("confidence", pa.float32(), nullable=False),  # its probability
            *(pa.field(name, pa.float32(), nullable=False) for name in EMOTIONS),  # smoothed if smoothing is on
            # The calibration baseline applied (the first 16 hex digits of its file's SHA-256); null: none.
            pa.field("baseline_id", pa.string(), nullable=True),
        ]
    )
    track = pa.struct([("track_id", pa.int64()), ("frames", pa.int64()), ("dominant", pa.string())])
    files = pa.schema(
        [
            pa.field("source", pa.string(), nullable=False),
            pa.field("sha256", pa.string(), nullable=True),  # null when the file could not be read at all
            pa.field("status", pa.string(), nullable=False),  # "done", "skipped" (done before) or "error"
            pa.field("error", pa.string(), nullable=True),  # why, for errors
            pa.field("frames", pa.int64(), nullable=False),
            pa.field("frames_with_faces", pa.int64(), nullable=False),
            pa.field("faces", pa.int64(), nullable=False),  # rows in faces/
            pa.field("duration_s", pa.float64(), nullable=False),  # frames / frame rate; 0 for a still image
            # Per track: frames seen and the dominant emotion (emorec.summary.dominant_emotion's rule).
            pa.field("tracks", pa.list_(track), nullable=False),
            pa.field("seconds", pa.float64(), nullable=False),  # wall time of the analysis (decoding included)
            pa.field("peak_rss_mib", pa.float64(), nullable=False),  # the worker process's peak memory so far
            pa.field("faces_file", pa.string(), nullable=True),  # the Parquet file of its faces, in OUT
            pa.field("video_file", pa.string(), nullable=True),  # its annotated video, in OUT
            pa.field("settings", pa.string(), nullable=True),  # JSON: the BatchSettings the file was analysed with
        ]
    )
    return faces, files


@dataclass(frozen=True)
class BatchSettings:
    """What decides a file's result; a file is analysed again only when its content or these change."""

    engine: EngineConfig = field(default_factory=EngineConfig)  # its threads are the workers' (WORKER_THREADS)
    model_sha256: str = ""  # filled in by :func:`analyze` from the classifier file the engine runs
    model_file: str = ""  # filled in by :func:`analyze`: that file's name (the int8 twin where the engine runs it)
    version: str = ""  # filled in by :func:`analyze`: emorec's version, since the pipeline's code shapes results
    annotate: bool = False
    baseline: str | None = None  # a person's calibration baseline file (``emorec calibrate``), for every face
    baseline_sha256: str = ""  # filled in by :func:`analyze` from that file

    def key(self, path: str | os.PathLike, sha256: str) -> str:
        """The file's output name: its absolute path, content hash and these settings, hashed together (a copy
        of a file elsewhere is another input, with its own result)."""
        text = json.dumps({"path": str(Path(path).resolve()), "sha256": sha256, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders searched recursively for videos and images, glob patterns, and text files
    (``.txt``/``.lst``/``.list``) listing more of these one per line; each path once, in order."""
    found: list[Path] = []
    for item in inputs:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            suffixes = VIDEO_SUFFIXES | IMAGE_SUFFIXES
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes))
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            lines = path.read_text(encoding="utf-8").splitlines()
            found.extend(expand_inputs(line.strip() for line in lines if line.strip() and not line.startswith("#")))
        elif glob.has_magic(text):
            found.extend(expand_inputs(sorted(glob.glob(text, recursive=True))))
        else:
            found.append(path)  # missing or unreadable files become error rows
    return list(dict.fromkeys(found))


def file_sha256(path: Path) -> str:
    with open_file(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ----------------------------------------------------------------- the per-file work (in a worker process)

_ENGINE: dict[EngineConfig, Any] = {}  # per worker process: the engine for these settings, loaded once


def worker_engine(settings: BatchSettings):
    from emorec.engine import EmotionRecognizer

    config = settings.engine.replace(threads=WORKER_THREADS)
    if config not in _ENGINE:
        _ENGINE.clear()
        _ENGINE[config] = EmotionRecognizer(config)
    return _ENGINE[config]


def analyze_file(
    path: str | os.PathLike,
    settings: BatchSettings,
    done: frozenset[str],
    out: str | os.PathLike,
    on_frames: Callable[[int], Any] | None = None,
) -> dict:
    """One file through the engine's frame loop. Returns its summary row (see :func:`schemas`) and, when it was
    analysed, its faces as a pyarrow Table under ``"faces_table"``; ``status`` "skipped" when its key is in
    ``done``.

    ``on_frames(n)`` hears every ``PROGRESS_EVERY`` frames how many more are done (for the driver's progress
    bar). Runs in a worker process; only annotated videos are written here (into ``out/videos``)."""
    source = str(path)
    started = time.perf_counter()
    row = {"source": source, "sha256": None, "status": "error", "error": None, "frames": 0,
           "frames_with_faces": 0, "faces": 0, "duration_s": 0.0, "tracks": [], "seconds": 0.0,
           "peak_rss_mib": 0.0, "faces_file": None, "video_file": None}
    try:
        row["sha256"] = file_sha256(Path(path))
    except InputError as exc:  # missing, a folder, a FIFO...
        return {**row, "error": str(exc)}
    except OSError as exc:
        return {**row, "error": f"{source}: cannot read ({exc.strerror or exc})"}
    key = settings.key(path, row["sha256"])
    if key in done:
        return {**row, "status": "skipped", "key": key}
    columns: dict[str, list] = defaultdict(list)
    video_file = Path(out) / "videos" / f"{Path(path).stem}-{key[:8]}.mp4" if settings.annotate else None
    writer = None
    try:
        engine = worker_engine(settings)
        baseline = engine.check_baseline(load_baseline(settings.baseline)) if settings.baseline else None
        with engine.stream(path, baseline=baseline) as stream:
            summary = RecordingSummary(stream.fps, source)
            for result in stream:
                row["frames"] += 1
                if on_frames is not None and row["frames"] % PROGRESS_EVERY == 0:
                    on_frames(PROGRESS_EVERY)
                row["frames_with_faces"] += bool(result.faces)
                summary.add(result, _time_s(result))
                for face in result.faces:
                    _add_face(columns, source, row["sha256"], settings.model_file, result, face,
                              settings.baseline_sha256[:16] or None)
                if video_file is not None:
                    writer = writer or _video_writer(video_file, stream.fps or 1.0, result.frame_size)
                    writer.write(engine.annotate(result))
            row["duration_s"] = row["frames"] / stream.fps if stream.fps else 0.0
            if on_frames is not None and row["frames"] % PROGRESS_EVERY:
                on_frames(row["frames"] % PROGRESS_EVERY)
        if writer is not None:
            writer.close()
            row["video_file"] = str(video_file.relative_to(out))
    except EmorecError as exc:  # unreadable, corrupt, not a video: the message names the file
        if writer is not None:
            writer.discard()
        return {**row, "error": str(exc), "seconds": time.perf_counter() - started, "peak_rss_mib": _peak_rss_mib()}
    tracks = [{"track_id": t.track_id, "frames": t.frames, "dominant": t.emotion}
              for t in sorted(summary.tracks, key=lambda t: t.track_id)]
    import pyarrow as pa

    faces_schema = schemas()[0]
    # An Arrow table travels to the driver far cheaper than lists of Python objects (Ray: zero-copy).
    table = pa.Table.from_pydict({f.name: columns.get(f.name, []) for f in faces_schema}, schema=faces_schema)
    return {**row, "status": "done", "faces": table.num_rows, "tracks": tracks,
            "seconds": time.perf_counter() - started, "peak_rss_mib": _peak_rss_mib(), "key": key,
            "faces_table": table}


def _results_by_path(out: Path) -> dict[Path, list[str]]:
    """The keys of the results already in ``out``, by the absolute path of the file each one analysed."""
    found: dict[Path, list[str]] = defaultdict(list)
    for summary in (out / "files").glob("*.json"):
        try:
            found[Path(json.loads(summary.read_text(encoding="utf-8"))["source"]).resolve()].append(summary.stem)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours: left alone
    return found


def _remove_result(out: Path, key: str) -> None:
    """Delete one result: its summary JSON first (so a kill in between leaves faces that no JSON claims, which
    the next rerun of that file overwrites, never a JSON whose faces are gone), then its faces and video."""
    summary = out / "files" / f"{key}.json"
    video = json.loads(summary.read_text(encoding="utf-8")).get("video_file")
    summary.unlink(missing_ok=True)
    (out / "faces" / f"{key}.parquet").unlink(missing_ok=True)
    if video:
        (out / video).unlink(missing_ok=True)


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _time_s(result) -> float:
    return 0.0 if result.time_s is None else result.time_s  # a still image: its one frame at 0 s


def _add_face(columns: dict[str, list], source: str, sha256: str, model: str, result, face,
              baseline_id: str | None) -> None:
    x1, y1, x2, y2 = face.box
    values = {"source": source, "sha256": sha256, "model": model, "frame_index": result.frame_index,
              "time_s": _time_s(result), "track_id": face.track_id, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
              "detection_score": float(face.detection_score), "emotion": face.emotion,
              "confidence": face.confidence, **dict(zip(EMOTIONS, map(float, face.scores), strict=True)),
              "baseline_id": baseline_id}
    for name, value in values.items():
        columns[name].append(value)


def _video_writer(target: Path, fps: float, size: tuple[int, int]):
    from emorec.recording import AnnotatedVideoWriter

    return AnnotatedVideoWriter(target, fps, size)


# ----------------------------------------------------------------- executors: where analyze_file runs


class LocalPool:
    """A process pool on this machine: one engine per worker process. The workers die with the driver: killed
    (SIGKILL), it left them re-parented to PID 1, still working and then blocked for good, 263 MB each."""

    def __init__(self, workers: int):
        import multiprocessing

        self.workers = workers
        # spawn: a fresh interpreter per worker, never a fork of a driver that holds threads (tqdm, Ray...).
        self._context = multiprocessing.get_context("spawn")

    def queue(self):
        """A queue the workers put on, handed to each as it starts. Not a manager's: its socket lay in a
        ``pymp-*`` folder of the temp directory that a killed driver left behind, with the manager running."""
        return self._context.Queue()

    def map(self, job: Callable[..., dict], paths: list[Path], frames: Any = None) -> Iterator[dict]:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_start_local_worker,
                                 initargs=(os.getpid(), frames)) as pool:
            futures = [pool.submit(job, path) for path in paths]
            for future in as_completed(futures):
                yield future.result()


_worker_frames = None  # in a LocalPool worker: the queue its frame counts go on (None: no progress bar)


def _start_local_worker(driver: int, frames: Any) -> None:
    global _worker_frames
    _worker_frames = frames
    _die_with_parent(driver)


def _die_with_parent(parent: int) -> None:
    """End this process as soon as ``parent`` (its parent's pid) ends, however it ends. On Linux the kernel
    sends SIGKILL (prctl PR_SET_PDEATHSIG: also when this process is stuck in native code); elsewhere a
    thread watches for the re-parenting once a second."""
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="emorec-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # it ended before the line above took effect
        os._exit(1)


class RayPool:
    """Ray actors, each a worker process holding one engine; files go to whichever actor is free."""

    def __init__(self, workers: int | None, address: str | None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'emorec[batch]'") from None
        if not ray.is_initialized():
            _check_ray_address(address)
            try:
                # address None starts a local Ray (or joins $RAY_ADDRESS); "auto" joins the cluster `ray start` made.
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except (ConnectionError, RuntimeError, TimeoutError, ValueError) as exc:
                if address == "auto":
                    raise ConfigError("--ray auto: no Ray cluster is running on this machine (start one with "
                                      "`ray start --head`, or give --ray alone for a Ray of this job's own)") from None
                why = (str(exc).strip() or type(exc).__name__).splitlines()[0]  # Ray's messages run to pages
                raise ConfigError(f"--ray {address or 'local'}: cannot start or join Ray ({why})") from None
        self.workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)) // WORKER_THREADS)

    def queue(self):
        """Ray's queue: an actor that takes no CPU slot from the workers."""
        from ray.util.queue import Queue

        return Queue(actor_options={"num_cpus": 0})

    def map(self, job: Callable[..., dict], paths: list[Path], frames: Any = None) -> Iterator[dict]:
        import ray
        from ray.util import ActorPool

        actor = ray.remote(num_cpus=WORKER_THREADS)(_RayWorker)
        actors = [actor.remote(job, frames) for _ in range(min(self.workers, len(paths)))]
        try:
            yield from ActorPool(actors).map_unordered(lambda a, path: a.run.remote(path), paths)
        finally:
            for a in actors:
                ray.kill(a)


RAY_CONNECT_TIMEOUT_S = 5.0  # for a cluster's port to answer; Ray itself kept retrying for over a minute


def ray_endpoint(address: str) -> tuple[str, int] | None:
    """The (host, port) of a Ray cluster's address, ``HOST:PORT`` or Ray Client's ``ray://HOST:PORT``; None for
    anything else (such as an input file that the command line took for ``--ray``'s value)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.removeprefix("[").removesuffix("]")  # [IPv6]:PORT
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        return None
    return host, int(port)


def _check_ray_address(address: str | None) -> None:
    """Refuse, in one line, an address that is none, or where nothing answers within RAY_CONNECT_TIMEOUT_S."""
    import socket

    if address in (None, "auto"):
        return
    endpoint = ray_endpoint(address)
    if endpoint is None:
        raise ConfigError(f"--ray {address}: not a cluster address (expected auto or HOST:PORT)")
    try:
        socket.create_connection(endpoint, timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else exc.strerror or type(exc).__name__
        raise ConfigError(f"--ray {address}: no Ray cluster there ({why} within "
                          f"{RAY_CONNECT_TIMEOUT_S:.0f} s)") from None


class _RayWorker:
    """One Ray worker process: the job (settings, done keys) and the frames queue arrive once; the engine loads
    on the first file."""

    def __init__(self, job: Callable[..., dict], frames: Any):
        self.job, self.frames = job, frames

    def run(self, path: Path) -> dict:
        return self.job(path, self.frames)


@dataclass(frozen=True)
class _Job:
    """analyze_file with everything but the path and the frames queue bound, picklable for both executors."""

    settings: BatchSettings
    done: frozenset[str]
    out: str

    def __call__(self, path: Path, frames: Any = None) -> dict:
        """``frames``: the queue (Ray's) the worker puts frame counts on; a LocalPool worker has its own."""
        frames = frames or _worker_frames
        return analyze_file(path, self.settings, self.done, self.out, frames.put if frames else None)


# ----------------------------------------------------------------- the driver


def analyze(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    settings: BatchSettings | None = None,
    progress: bool = True,
):
    """Analyse files, folders, globs or list files (see :func:`expand_inputs`) into ``out``; files in its
    result folders are left out (where ``out`` lies in an input folder, its annotated videos would be read back).

    ``executor`` is "local" (a process pool of ``workers`` processes, default: one per core) or "ray" (Ray
    actors on the cluster at ``ray_address``: None starts Ray on this machine, "auto" joins a running one).
    Returns the summary as a pyarrow Table (also written to ``out/summary.parquet``).
    """
    import pyarrow as pa
    from tqdm import tqdm

    import emorec
    from emorec.classifier import model_file
    from emorec.engine import int8_twin

    found = expand_inputs(paths)
    # OUT may lie inside an input folder (or be one): what it writes is this job's results, never its inputs.
    results = [Path(out, folder) for folder in RESULT_FOLDERS]
    files = [path for path in found if not any(is_inside(path, folder) for folder in results)]
    if not files:
        raise ConfigError("no input files found" + (f" outside the results folders of {out}" if found else ""))
    settings = settings or BatchSettings()
    model = model_file(settings.engine.model)
    model = int8_twin(model) or model  # the file the engine will run: see EmotionRecognizer(quantized=None)
    if settings.baseline:
        load_baseline(settings.baseline)  # a bad file is one error here, not an error row for every input
    settings = replace(settings, engine=settings.engine.replace(threads=WORKER_THREADS),
                       model_sha256=file_sha256(model), model_file=model.name, version=emorec.__version__,
                       baseline_sha256=file_sha256(Path(settings.baseline)) if settings.baseline else "")
    out = Path(out)
    for folder in RESULT_FOLDERS if settings.annotate else ("faces", "files"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    done = frozenset(p.stem for p in (out / "files").glob("*.json"))
    earlier = _results_by_path(out)
    if executor == "local":
        pool = LocalPool(workers or max(1, (os.cpu_count() or 1) // WORKER_THREADS))
    elif executor == "ray":
        pool = RayPool(workers, ray_address)
    else:
        raise ConfigError(f"unknown executor {executor!r}; expected 'local' or 'ray'")
    files_schema = schemas()[1]
    rows = []
    with tqdm(total=len(files), unit="file", disable=not progress, position=0) as file_bar, \
            tqdm(unit="frame", disable=not progress, position=1) as frame_bar, \
            _FrameCounter(pool.queue() if progress else None, frame_bar) as frames:
        for result in pool.map(_Job(settings, done, str(out)), files, frames):
            key = result.pop("key", None)
            table = result.pop("faces_table", None)
            if result["status"] == "skipped":
                result = {**json.loads((out / "files" / f"{key}.json").read_text()), "status": "skipped"}
            elif result["status"] == "done":
                result["faces_file"] = f"faces/{key}.parquet"
                result["settings"] = json.dumps(asdict(settings), sort_keys=True)
                write_atomic(out / result["faces_file"], lambda tmp, t=table: _write_parquet(t, tmp))
                # The JSON is written last: it marks the file as done for a rerun.
                write_atomic(out / "files" / f"{key}.json",
                              lambda tmp, r=result: tmp.write_text(json.dumps(r), encoding="utf-8"))
                # Only now that the new result is complete do the file's results under other settings go.
                for old in earlier.get(Path(result["source"]).resolve(), []):
                    if old != key:
                        _remove_result(out, old)
            rows.append(result)
            file_bar.update()
            file_bar.set_postfix(errors=sum(r["status"] == "error" for r in rows))
    order = {str(path): i for i, path in enumerate(files)}
    rows.sort(key=lambda r: order.get(r["source"], len(order)))
    summary = pa.Table.from_pylist(rows, schema=files_schema)
    write_atomic(out / "summary.parquet", lambda tmp: _write_parquet(summary, tmp))
    return summary


class _FrameCounter:
    """Moves the workers' frame counts from ``queue`` to the progress bar, in a thread of the driver; the
    context value is the queue (None without a progress bar)."""

    def __init__(self, queue, bar):
        import threading

        self.queue, self.bar = queue, bar
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="emorec-batch-progress", daemon=True)

    def _drain(self) -> None:
        import queue as stdlib_queue

        while not self._done.is_set():
            try:
                self.bar.update(self.queue.get(timeout=0.2))
            except (stdlib_queue.Empty, EOFError, OSError):  # Ray's Empty subclasses queue.Empty
                continue

    def __enter__(self):
        if self.queue is not None:
            self._thread.start()
        return self.queue

    def __exit__(self, *exc) -> None:
        if self.queue is None:
            return
        self._done.set()
        self._thread.join()
        while not self.queue.empty():  # counts put just before the last results came back
            self.bar.update(self.queue.get())
        getattr(self.queue, "shutdown", lambda: None)()  # Ray's queue is an actor: end it


def _write_parquet(table, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(table, path)

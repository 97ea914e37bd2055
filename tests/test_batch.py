"""`emorec batch` on real face videos (scikit-image's astronaut photo moving across the frame, written with
OpenCV): the local process pool, a real local Ray cluster, resuming after SIGKILL, and bad files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="batch needs the 'batch' extra: pip install 'emorec[batch]'")
pq = pytest.importorskip("pyarrow.parquet")

from emorec.batch import BatchSettings, analyze, expand_inputs, file_sha256, schemas  # noqa: E402
from emorec.cli import main  # noqa: E402
from emorec.config import EngineConfig  # noqa: E402
from emorec.errors import ConfigError  # noqa: E402
from emorec.labels import EMOTIONS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FPS = 10.0


def write_face_video(path: Path, photo: np.ndarray, frames: int, size=(320, 240), shift: int = 4) -> Path:
    """The photo, shrunk to the frame's height, drifting right across a grey frame."""
    width, height = size
    face = cv2.resize(photo, (height, height))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, size)
    for i in range(frames):
        frame = np.full((height, width, 3), 100, np.uint8)
        x = min(shift * i, width - height)
        frame[:, x : x + height] = face
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def videos(astronaut_bgr, tmp_path_factory) -> Path:
    """Three good videos of 12, 16 and 20 frames (one mirrored, one in a sub-folder) and three bad files:
    a truncated MP4, a zero-byte file and a text file named like a video; a note the folder search skips."""
    folder = tmp_path_factory.mktemp("videos")
    (folder / "day2").mkdir()
    write_face_video(folder / "a.avi", astronaut_bgr, 12)
    write_face_video(folder / "b.avi", cv2.flip(astronaut_bgr, 1), 16)
    write_face_video(folder / "day2" / "c.avi", astronaut_bgr, 20)
    good = folder / "good.mp4"
    writer = cv2.VideoWriter(str(good), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (320, 240))
    for _ in range(10):
        writer.write(np.full((240, 320, 3), 100, np.uint8))
    writer.release()
    (folder / "corrupt.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])  # no index: unopenable
    good.unlink()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.avi").write_text("this is not a video\n" * 50)
    (folder / "README.txt").write_text("not an input: folders are searched for videos and images only")
    return folder


GOOD = {"a.avi": 12, "b.avi": 16, "c.avi": 20}
BAD = {"corrupt.mp4", "empty.mp4", "notes.avi"}


def faces_table(out: Path, summary=None):
    """Every face in ``out``, or only those of the files in ``summary``."""
    if summary is None:
        return pa.concat_tables(pq.read_table(p) for p in sorted((out / "faces").glob("*.parquet")))
    return pa.concat_tables(pq.read_table(out / row["faces_file"]) for row in summary.to_pylist() if row["faces_file"])


def by_name(summary) -> dict[str, dict]:
    return {Path(row["source"]).name: row for row in summary.to_pylist()}


@pytest.fixture(scope="module")
def local_run(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    return out, analyze([videos], out=out, workers=2, progress=False)


def test_local_pool_analyses_every_good_file_and_reports_the_bad_ones(local_run, videos):
    out, summary = local_run
    rows = by_name(summary)
    assert set(rows) == set(GOOD) | BAD
    for name, frames in GOOD.items():
        row = rows[name]
        assert row["status"] == "done" and row["error"] is None
        assert row["frames"] == frames and row["frames_with_faces"] == frames
        assert row["duration_s"] == pytest.approx(frames / FPS)
        assert row["tracks"] == [{"track_id": 1, "frames": frames, "dominant": "happy"}]
        assert pq.read_table(out / row["faces_file"]).num_rows == frames
    for name in BAD:
        assert rows[name]["status"] == "error" and name in rows[name]["error"], rows[name]
    assert "empty file (0 bytes)" in rows["empty.mp4"]["error"]
    table = faces_table(out)
    assert table.num_rows == sum(GOOD.values())
    assert set(table.column("emotion").to_pylist()) <= set(EMOTIONS)
    probs = np.stack([table.column(e).to_numpy() for e in EMOTIONS], axis=1)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-3)
    # The face drifts right by 4 px a frame: its box follows, frame after frame.
    a = table.filter(pa.compute.match_substring(table.column("source"), "a.avi")).to_pandas()
    assert (a.sort_values("frame_index")["x1"].diff().dropna() > 0).mean() > 0.7
    assert a["time_s"].tolist() == pytest.approx([i / FPS for i in a["frame_index"]])


def test_parquet_schemas_are_the_documented_ones(local_run):
    out, summary = local_run
    faces_schema, files_schema = schemas()
    for path in (out / "faces").glob("*.parquet"):
        assert pq.read_schema(path).equals(faces_schema, check_metadata=False)
    assert pq.read_schema(out / "summary.parquet").equals(files_schema, check_metadata=False)
    assert summary.schema.equals(files_schema)
    assert [f.name for f in faces_schema][:6] == ["source", "sha256", "model", "frame_index", "time_s", "track_id"]
    assert faces_schema.field("baseline_id").nullable and not faces_schema.field("angry").nullable
    documented = (REPO / "docs" / "batch.md").read_text()
    for field in (*faces_schema, *files_schema):
        assert f"`{field.name}`" in documented, f"docs/batch.md documents the column {field.name}"


def test_the_documented_line_reads_the_results_into_pandas(local_run):
    pd = pytest.importorskip("pandas")
    out, _ = local_run
    faces = pd.read_parquet(out / "faces")  # the one line of the README and docs/batch.md
    assert len(faces) == sum(GOOD.values()) and faces.groupby("source")["track_id"].nunique().eq(1).all()


def test_rerun_skips_what_is_done_and_retries_errors(local_run, videos):
    out, _ = local_run
    written = {p: p.stat().st_mtime_ns for p in (out / "faces").glob("*.parquet")}
    rows = by_name(analyze([videos], out=out, workers=2, progress=False))
    assert {n for n, r in rows.items() if r["status"] == "skipped"} == set(GOOD)
    assert {n for n, r in rows.items() if r["status"] == "error"} == BAD
    assert {p: p.stat().st_mtime_ns for p in (out / "faces").glob("*.parquet")} == written
    assert rows["a.avi"]["frames"] == 12  # the summary row comes back from the first run


def test_other_settings_replace_the_result_so_out_holds_one_per_input(videos, tmp_path):
    first = by_name(analyze([videos / "a.avi"], out=tmp_path, workers=1, progress=False))["a.avi"]
    for settings in (BatchSettings(engine=EngineConfig(smoothing=False)),
                     BatchSettings(engine=EngineConfig(smoothing=False, detect_every=1))):
        row = by_name(analyze([videos / "a.avi"], out=tmp_path, settings=settings, workers=1, progress=False))["a.avi"]
        assert row["status"] == "done", "other settings are analysed again, not skipped"
        assert json.loads(row["settings"])["engine"]["detect_every"] == settings.engine.detect_every
    assert [p.name for p in (tmp_path / "faces").glob("*.parquet")] == [Path(row["faces_file"]).name]
    assert len(list((tmp_path / "files").glob("*.json"))) == 1 and row["faces_file"] != first["faces_file"]
    faces = faces_table(tmp_path)
    assert faces.num_rows == 12 and set(faces.column("model").to_pylist()) == {"emonet_fast_int8.onnx"}


def test_a_copy_of_a_file_elsewhere_is_its_own_input(videos, tmp_path):
    copy = tmp_path / "copies" / "a.avi"
    copy.parent.mkdir()
    copy.write_bytes((videos / "a.avi").read_bytes())
    summary = analyze([videos / "a.avi", copy], out=tmp_path / "out", workers=1, progress=False).to_pylist()
    assert [r["source"] for r in summary] == [str(videos / "a.avi"), str(copy)]
    assert summary[0]["sha256"] == summary[1]["sha256"] and summary[0]["faces_file"] != summary[1]["faces_file"]
    faces = faces_table(tmp_path / "out")
    assert sorted(set(faces.column("source").to_pylist())) == sorted([str(videos / "a.avi"), str(copy)])
    assert faces.num_rows == 24


def test_a_baseline_is_applied_and_named_in_every_row(videos, astronaut_bgr, tmp_path):
    from emorec.engine import EmotionRecognizer

    baseline = EmotionRecognizer().calibrate([astronaut_bgr]).save(tmp_path / "person.json")
    settings = BatchSettings(baseline=str(baseline))
    rows = by_name(analyze([videos / "a.avi"], out=tmp_path / "out", settings=settings, workers=1, progress=False))
    faces = pq.read_table(tmp_path / "out" / rows["a.avi"]["faces_file"]).to_pylist()
    assert len(faces) == 12 and {f["baseline_id"] for f in faces} == {file_sha256(baseline)[:16]}
    # Calibrated to this very face, the happy astronaut reads less happy than uncalibrated.
    assert max(f["happy"] for f in faces) < 0.9


@pytest.mark.slow
@pytest.mark.ray
def test_a_local_ray_cluster_gives_the_same_results(local_run, videos, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'emorec[batch]'")
    out, local_summary = local_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray_summary = analyze([videos], out=tmp_path, executor="ray", workers=2)  # with progress bars
        assert len(ray.nodes()) == 1 and ray.cluster_resources()["CPU"] == 2
    finally:
        ray.shutdown()
    keep = ["source", "status", "frames", "frames_with_faces", "faces", "tracks"]
    assert ray_summary.select(keep).to_pylist() == local_summary.select(keep).to_pylist()
    order = [("source", "ascending"), ("frame_index", "ascending"), ("track_id", "ascending")]
    local_faces, ray_faces = faces_table(out, local_summary), faces_table(tmp_path, ray_summary)
    assert local_faces.num_rows == sum(GOOD.values())
    assert local_faces.sort_by(order).equals(ray_faces.sort_by(order))


@pytest.mark.slow
def test_resume_after_sigkill_loses_nothing_already_written(astronaut_bgr, tmp_path):
    folder, out = tmp_path / "videos", tmp_path / "out"
    folder.mkdir()
    count = 8
    for i in range(count):  # 640x480, 60 frames each: long enough to kill the job between files
        photo = np.roll(astronaut_bgr, 8 * i, axis=0)
        write_face_video(folder / f"clip{i}.avi", photo, 60, size=(640, 480), shift=2)
    command = [sys.executable, "-m", "emorec.cli", "batch", str(folder), "--out", str(out), "--workers", "1",
               "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    job = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list((out / "files").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)  # the job and its worker processes, at once
    job.wait()
    done = {p.stem: json.loads(p.read_text()) for p in (out / "files").glob("*.json")}
    assert 1 <= len(done) < count, "killed mid-run"
    before = {}
    for key, row in done.items():  # everything marked done is complete and readable
        table = pq.read_table(out / row["faces_file"])
        assert table.num_rows == row["faces"] == 60
        before[key] = (out / row["faces_file"]).read_bytes()

    assert main(["batch", str(folder), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    summary = pq.read_table(out / "summary.parquet").to_pylist()
    assert len(summary) == count and all(r["status"] in ("done", "skipped") for r in summary)
    assert sum(r["status"] == "skipped" for r in summary) == len(done)
    for key, content in before.items():
        assert (out / done[key]["faces_file"]).read_bytes() == content, "kept, not redone"
    assert faces_table(out).num_rows == 60 * count


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
def test_workers_die_with_a_killed_driver_and_leave_no_temp_folders(astronaut_bgr, tmp_path):
    """Issue 25, finding 4: a SIGKILL of the driver left its workers (re-parented to PID 1, 263 MB each) and
    the manager running, and a pymp-* folder in the temp directory."""
    folder, temp = tmp_path / "videos", tmp_path / "temp"
    folder.mkdir()
    temp.mkdir()
    for i in range(3):
        write_face_video(folder / f"clip{i}.avi", np.roll(astronaut_bgr, 8 * i, axis=0), 200)
    command = [sys.executable, "-m", "emorec.cli", "batch", str(folder), "--out", str(tmp_path / "out"),
               "--workers", "2"]  # with the progress bars, whose frame counts come back on a queue
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TMPDIR": str(temp)}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(children) < 3 and time.monotonic() < deadline:  # two workers and the resource tracker
            time.sleep(0.2)
            children = _children(driver.pid)
        assert len(children) >= 3, children
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 10
        while (alive := [pid for pid in children if Path(f"/proc/{pid}").exists()]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive, "orphaned: " + ", ".join(Path(f"/proc/{pid}/cmdline").read_text()[:80] for pid in alive)
        assert not list(temp.glob("pymp-*"))
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_results_inside_an_input_folder_are_never_read_as_inputs(astronaut_bgr, tmp_path):
    write_face_video(tmp_path / "clip.avi", astronaut_bgr, 6)
    out = tmp_path / "results"
    settings = BatchSettings(annotate=True)
    first = analyze([tmp_path], out=out, settings=settings, workers=1, progress=False)
    assert [r["status"] for r in first.to_pylist()] == ["done"] and list((out / "videos").glob("*.mp4"))
    again = analyze([tmp_path], out=out, settings=settings, workers=1, progress=False).to_pylist()
    assert [(Path(r["source"]).name, r["status"]) for r in again] == [("clip.avi", "skipped")]
    with pytest.raises(ConfigError, match="outside the results folders"):
        analyze([out], out=out, settings=settings, workers=1, progress=False)


def test_inputs_are_files_folders_globs_and_lists(videos, tmp_path):
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"# my videos\n{videos / 'a.avi'}\n\n{videos / 'day2'}\n")
    found = expand_inputs([listing, str(videos / "*.avi"), videos / "a.avi", tmp_path / "missing.mp4"])
    names = [p.name for p in found]
    assert names == ["a.avi", "c.avi", "b.avi", "notes.avi", "missing.mp4"]


def test_cli_reports_errors_and_exits_1(videos, tmp_path, capsys):
    assert main(["batch", str(videos), "--out", str(tmp_path), "--workers", "1"]) == 1
    captured = capsys.readouterr()
    assert "3 files analysed" in captured.out and "3 failed" in captured.out
    assert captured.err.count("error: ") == 3 and "Traceback" not in captured.err
    assert f"{sum(GOOD.values())}frame" in captured.err.replace(" ", ""), "the frame bar counted every frame"
    assert main(["batch", str(tmp_path / "nothing-here"), "--out", str(tmp_path)]) == 1
    assert "nothing-here: no such file" in capsys.readouterr().err

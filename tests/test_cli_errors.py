"""Every command-line error is one line on stderr and exit status 2, never a traceback; and the defaults that
used to surprise users (export over the shipped model, train's run folder, the data path) do what they say."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from emorec.classifier import shipped_model_path
from emorec.cli import main

REPO = Path(__file__).resolve().parents[1]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("emorec ")


def test_export_needs_out_or_install_and_leaves_the_shipped_model_alone(tmp_path, capsys):
    before = hashlib.sha256(shipped_model_path().read_bytes()).hexdigest()
    assert main(["export", str(tmp_path / "any.pt")]) == 2
    err = one_line_error(capsys)
    assert "--out" in err and "--install" in err
    assert hashlib.sha256(shipped_model_path().read_bytes()).hexdigest() == before
    with pytest.raises(SystemExit):  # both at once is refused by the parser
        main(["export", str(tmp_path / "any.pt"), "--out", str(tmp_path / "m.onnx"), "--install"])


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "--workers", "-1"], "argument --workers: expected a whole number >= 1, got '-1'"),
        (["serve", "--workers", "0"], "--workers: expected a whole number >= 1"),
        (["serve", "--port", "70000"], "--port: expected a whole number from 1 to 65535, got '70000'"),
        (["serve", "--max-upload-mb", "nan"], "--max-upload-mb: expected a finite number > 0, got 'nan'"),
        (["serve", "--max-upload-mb", "0"], "--max-upload-mb: expected a finite number > 0"),
        (["serve", "--max-clients", "0"], "--max-clients: expected a whole number >= 1"),
        (["train", "--epochs", "0"], "--epochs: expected a whole number >= 1"),
        (["train", "--lr", "inf"], "--lr: expected a finite number > 0"),
        (["train", "--ema", "1"], "--ema: expected a finite number >= 0 and < 1"),
        (["train", "--occlusion", "2"], "--occlusion: expected a finite number >= 0 and <= 1"),
        (["train", "--logit-adjustment", "-1"], "--logit-adjustment: expected a finite number >= 0"),
        (["train", "--teacher-prior-correction", "1.5"], "--teacher-prior-correction: expected a finite number >= 0 "
                                                         "and <= 1"),
        (["predict", "x.jpg", "--max-faces", "-1"], "--max-faces: expected a whole number >= 1"),
        (["predict", "x.jpg", "--max-faces", "0"], "--max-faces: expected a whole number >= 1"),
        (["predict", "x.jpg", "--min-score", "5"], "--min-score: expected a finite number >= 0 and <= 1, got '5'"),
        (["predict", "x.jpg", "--min-score", "nan"], "--min-score: expected a finite number >= 0 and <= 1"),
        (["predict", "x.jpg", "--min-score", "-1"], "--min-score: expected a finite number >= 0 and <= 1"),
        (["video", "x.mp4", "--threads", "0"], "--threads: expected a whole number >= 1"),
        (["stream", "--max-frames", "-2"], "--max-frames: expected a whole number >= 0"),
        (["batch", "x.mp4", "--out", "o", "--workers", "0"], "--workers: expected a whole number >= 1"),
        (["batch", "--ray", "clip.mp4", "b.mp4", "--out", "o"], "--ray: expected auto or a cluster's HOST:PORT, "
                                                                "got 'clip.mp4'"),
        (["batch", "x.mp4", "--out", "o", "--ray", "host:99999"], "--ray: expected auto or a cluster's HOST:PORT"),
        (["evaluate", "--limit", "-5"], "--limit: expected a whole number >= 0, got '-5'"),
        (["evaluate", "--limit", "9" * 5000], "--limit: expected a whole number >= 0, got '9999"),
        (["export", "a.pt", "--out", "a.onnx", "--prior-correction", "nan"], "--prior-correction: expected a finite"),
        (["calibrate", "me.jpg", "--out", "b.json", "--strength", "1e308"], "--strength: expected a finite number "
                                                                            ">= 0 and <= 10, got '1e308'"),
        (["calibrate", "me.jpg", "--out", "b.json", "--strength", "nan"], "--strength: expected a finite number"),
        (["calibrate", "me.jpg", "--out", "b.json", "--margin", "-1"], "--margin: expected a finite number >= 0"),
        (["video", "x.mp4", "--detect-every", "0"], "--detect-every: expected a whole number of frames >= 1"),
    ],
    ids=lambda value: " ".join(value)[:50] if isinstance(value, list) else None,
)
def test_option_ranges_are_checked_by_the_parser(argv, words, capsys):
    """Issue 25: these were tracebacks (exit 1) or silently wrong results; each is now one line and exit 2,
    before any work."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = one_line_error(capsys)
    assert err.startswith(f"emorec {argv[0]}: ") and words in err and err.endswith(f"(see emorec {argv[0]} --help)")


@pytest.fixture
def read_only_folder(tmpfs):
    """A folder on a read-only filesystem (root writes anywhere else)."""
    return tmpfs("read-only", "ro,size=64k")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["batch", "{image}", "--out", "{file}", "--quiet"], "{file} is a file, not a folder"),
        (["batch", "{image}", "--out", "{file}/out", "--quiet"], "{file}/out: {file} is a file, not a folder"),
        (["batch", "{image}", "--out", "{ro}/out", "--quiet"], "{ro}/out: cannot write into {ro} (read-only"),
        (["predict", "{image}", "--out", "{file}"], "{file} is a file, not a folder"),
        (["predict", "{image}", "--out", "{ro}/out"], "cannot write into {ro} (read-only"),
        (["predict", "{image}", "--json", "{folder}"], "{folder} is a folder: give the name of the file to write"),
        (["predict", "{image}", "--csv", "{file}/faces.csv"], "{file}/faces.csv: cannot create its folder"),
        (["predict", "{image}", "--json", "{ro}/faces.json"], "cannot write into {ro} (read-only"),
        (["video", "{video}", "--out", "{ro}/out.mp4", "--quiet"], "cannot write into {ro} (read-only"),
        (["video", "{video}", "--csv", "{file}/faces.csv", "--quiet"], "{file}/faces.csv: cannot create its folder"),
        (["video", "{video}", "--plot", "{folder}", "--quiet"], "{folder} is a folder"),
        (["calibrate", "{image}", "--out", "{folder}"], "{folder} is a folder"),
        (["calibrate", "{image}", "--out", "{ro}/me.json"], "cannot write into {ro} (read-only"),
        (["evaluate", "--out", "{file}"], "{file} is a file, not a folder"),
        (["export", "{folder}/any.pt", "--out", "{folder}"], "{folder} is a folder"),
        (["export", "{folder}/any.pt", "--out", "{ro}/m.onnx"], "cannot write into {ro} (read-only"),
        (["train", "--out", "{file}"], "{file} is a file, not a folder"),
        (["train", "--out", "{ro}/run"], "cannot write into {ro} (read-only"),
    ],
    ids=lambda value: " ".join(value)[:50] if isinstance(value, list) else None,
)
def test_output_paths_are_checked_before_the_work(argv, words, tmp_path, read_only_folder, capsys):
    """Issue 25: output paths that were files, folders or unwritable gave tracebacks (exit 1) once the work was
    done (batch, train, evaluate, export, predict --out, video --out/--csv/--plot); each is now one line and
    exit 2 before any work."""
    image, video, file, folder = tmp_path / "astronaut.jpg", tmp_path / "clip.avi", tmp_path / "a-file", tmp_path / "f"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    video.write_bytes(b"not read: the outputs are checked first")
    file.write_text("not a folder")
    folder.mkdir()
    names = {"{image}": image, "{video}": video, "{file}": file, "{folder}": folder, "{ro}": read_only_folder}

    def filled(text: str) -> str:
        for name, path in names.items():
            text = text.replace(name, str(path))
        return text

    if argv[0] in ("train", "export"):
        pytest.importorskip("torch", reason="training extra (torch) not installed")
    assert main([filled(arg) for arg in argv]) == 2
    err = one_line_error(capsys)
    assert err.startswith(f"emorec {argv[0]}: ") and filled(words) in err, err
    assert file.read_text() == "not a folder" and not any(folder.iterdir())


def test_train_refuses_cuda_where_pytorch_finds_none_before_loading_data(tmp_path, capsys, monkeypatch):
    """Issue 25: `train --device cuda` on a machine without CUDA loaded the data, then failed in a traceback."""
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on this CPU-only machine, on any machine
    missing = tmp_path / "never-read.csv"
    assert main(["train", "--device", "cuda", "--data", str(missing), "--out", str(tmp_path / "run")]) == 2
    err = one_line_error(capsys)
    assert err.startswith("emorec train: --device cuda: PyTorch finds no CUDA GPU here") and "--device cpu" in err
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--device", "gpu"])
    assert exit_info.value.code == 2 and "--device: invalid choice: 'gpu'" in one_line_error(capsys)


@pytest.mark.needs_fer2013
def test_train_refuses_a_run_too_short_to_schedule_and_a_damaged_last_checkpoint(fer2013_path, tmp_path, capsys):
    """Issue 25 audit: `--limit 10 --epochs 1` (one step) was a traceback from the learning-rate schedule; a
    damaged last.pt on --resume is one line too."""
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    base = ["train", "--data", str(fer2013_path), "--model", "emonet", "--epochs", "1"]
    assert main([*base, "--limit", "10", "--out", str(tmp_path / "short")]) == 2
    assert "make fewer than 3 steps" in one_line_error(capsys)
    assert not (tmp_path / "short").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"half a checkpoint")
    assert main([*base, "--limit", "400", "--out", str(run), "--resume"]) == 2
    assert one_line_error(capsys) == f"emorec train: {run / 'last.pt'}: not a PyTorch checkpoint"


def test_ray_that_cannot_be_joined_is_one_line_and_quick(tmp_path, capsys, monkeypatch):
    """Issue 25: --ray auto without a cluster was a 27-line traceback, and an address where nothing listens
    was waited on for more than 60 s."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'emorec[batch]'")
    import socket
    import time

    if ray.is_initialized():
        pytest.skip("a Ray of this test session is running")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read: the cluster is joined first")
    with socket.socket() as listener:  # a port nothing listens on
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    for address, words in [("auto", "--ray auto: no Ray cluster is running on this machine"),
                           (f"127.0.0.1:{port}", f"--ray 127.0.0.1:{port}: no Ray cluster there")]:
        started = time.monotonic()
        assert main(["batch", str(video), "--out", str(tmp_path / "out"), "--ray", address, "--quiet"]) == 2
        assert time.monotonic() - started < 30
        err = one_line_error(capsys)
        assert err.startswith(f"emorec batch: {words}"), err


def test_train_run_folder_follows_the_model(monkeypatch, tmp_path):
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    import emorec.training.train

    seen = {}
    monkeypatch.setattr(emorec.training.train, "train", lambda config, resume: seen.setdefault("out", config.out))
    assert main(["train", "--model", "shallow", "--data", str(tmp_path)]) == 0
    assert seen["out"] == "runs/shallow"


def test_default_data_path_honours_emorec_fer2013(tmp_path):
    target = tmp_path / "elsewhere" / "fer2013.csv"
    env = {**os.environ, "EMOREC_FER2013": str(target), "PYTHONPATH": str(REPO / "src")}
    for command in ("train", "evaluate"):
        out = subprocess.run([sys.executable, "-m", "emorec.cli", command, "--help"], env=env,
                             capture_output=True, text=True, check=True).stdout
        assert str(target) in out.replace("\n", "").replace(" ", ""), command


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "emonet_wid"], "did you mean emonet_wide"),
        (["--data", "{tmp}/missing.csv.gz"], "missing.csv.gz: no such file"),
        (["--drop-augment", "blurr"], "unknown augmentation(s) blurr; expected some of geometry, flip"),
    ],
    ids=["misspelt-model", "missing-data", "unknown-augmentation"],
)
def test_train_errors_are_one_line(tmp_path, capsys, args, message):
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["train", "--out", str(tmp_path / "run"), *args]) == 2
    assert message in one_line_error(capsys)


def test_train_without_torch_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.delitem(sys.modules, "emorec.training.train", raising=False)
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "needs PyTorch" in one_line_error(capsys)


@pytest.mark.slow
@pytest.mark.needs_fer2013
def test_a_one_epoch_run_then_every_resume_error_is_one_line(fer2013_path, tmp_path, capsys):
    """A real one-epoch run: it says where it trains, its curves show the single epoch, and rerunning it
    without --resume, or resuming it with another --limit, are one-line errors."""
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    out = tmp_path / "run"
    base = ["train", "--data", str(fer2013_path), "--out", str(out), "--model", "emonet", "--epochs", "1",
            "--batch-size", "64", "--precision", "fp32"]
    assert main([*base, "--limit", "320"]) == 0
    printed = capsys.readouterr().out
    assert "training emonet on cpu" in printed and "fp32" in printed and "CPU threads" in printed
    assert curve_marker_pixels(out / "curves.png") > 100

    assert main([*base, "--limit", "320"]) == 2
    assert "already holds a run" in one_line_error(capsys)
    assert main([*base, "--limit", "640", "--resume"]) == 2
    assert "--limit=320 (now 640)" in one_line_error(capsys)


def curve_marker_pixels(png: Path) -> int:
    """Pixels in matplotlib's first two colours (the train and PublicTest curves). The legends' line samples
    count too, so a single epoch drawn as a bare line (invisible) still scores their few dozen pixels."""
    image = cv2.imread(str(png))
    blue = (abs(image.astype(int) - (180, 119, 31)).sum(axis=2) < 40).sum()  # C0 #1f77b4 in BGR
    orange = (abs(image.astype(int) - (14, 127, 255)).sum(axis=2) < 40).sum()  # C1 #ff7f0e in BGR
    return int(blue + orange)


def test_one_epoch_curves_show_the_epoch(tmp_path):
    pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.training.train import _write_metrics

    _write_metrics([{"epoch": 1, "train_loss": 1.8, "train_acc": 0.25, "val_loss": 1.7, "val_acc": 0.3,
                     "lr": 0.01, "seconds": 1.0}], tmp_path)
    assert curve_marker_pixels(tmp_path / "curves.png") > 200


def test_predict_writes_json_and_csv_into_folders_that_do_not_exist_yet(tmp_path):
    image = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    report, table = tmp_path / "new" / "deeper" / "faces.json", tmp_path / "other" / "faces.csv"
    assert main(["predict", str(image), str(tmp_path / "missing.jpg"), "--json", str(report),
                 "--csv", str(table)]) == 1
    assert len(json.loads(report.read_text())) == 2
    rows = list(csv.reader(table.open()))
    assert {len(row) for row in rows} == {len(rows[0])}, "every row has as many fields as the header"
    assert rows[-1][0].endswith("missing.jpg") and "no such file" in rows[-1][-1]


def test_predict_chooses_a_shipped_model_by_name_and_refuses_unknown_ones(tmp_path, capsys):
    image = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    report = tmp_path / "faces.json"
    assert main(["predict", str(image), "--model", "emonet_fast", "--json", str(report)]) == 0
    (result,) = json.loads(report.read_text())
    assert result["faces"][0]["emotion"] == "happy"
    assert main(["predict", str(image), "--model", "emonet_small"]) == 2
    assert "did you mean 'emonet_fast'? shipped models: emonet_fast, emonet_wide" in one_line_error(capsys)


def test_predict_refuses_an_image_too_large_to_decode_safely(tmp_path, capsys):
    """A 1 KB PNG that declares 9000x12000 pixels (330 MB decoded): refused from its header, before decoding."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 9000, 12000, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (3 * 9000 + 1) * 20)  # a few rows of a real image; the rest is missing
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    assert main(["predict", str(bomb)]) == 1
    assert "9000x12000 (108.0 megapixels); the limit is 100 megapixels" in capsys.readouterr().err


def test_project_license_is_an_spdx_string():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"


class _RunsCodeWhenUnpickled:
    """What a hostile checkpoint holds: unpickling it calls ``os.mkdir(marker)``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_checkpoints_that_would_run_code_are_refused(tmp_path, capsys):
    """Issue 25: `emorec export evil.pt` and `evaluate --model evil.pt` unpickled the file, running its code."""
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from emorec.evaluate import load_predictor

    marker, evil = tmp_path / "code-ran", tmp_path / "evil.pt"
    torch.save({"model_name": "emonet", "spec": {}, "model": {}, "payload": _RunsCodeWhenUnpickled(marker)}, evil)
    assert main(["export", str(evil), "--out", str(tmp_path / "evil.onnx")]) == 2
    assert "refused: it holds a Python object (posix.mkdir)" in one_line_error(capsys)
    with pytest.raises(ValueError, match="refused"):
        load_predictor(evil)  # what `emorec evaluate --model evil.pt` loads
    assert not marker.exists()
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(evil.read_bytes()[:200])
    for path, words in ((damaged, "damaged or truncated"), (tmp_path / "missing.pt", "no such file")):
        assert main(["export", str(path), "--out", str(tmp_path / "m.onnx")]) == 2
        assert words in one_line_error(capsys)


def test_a_checkpoint_as_train_writes_it_loads_as_data_only(tmp_path):
    """Every part of last.pt (weights, optimiser, one-cycle schedule, weight average, random generators,
    history, settings) is tensors, numbers, strings, lists and dicts, which ``weights_only`` loading accepts."""
    torch = pytest.importorskip("torch", reason="training extra (torch) not installed")
    from dataclasses import asdict

    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from emorec.training.checkpoint import load_checkpoint, read_checkpoint, save_atomic
    from emorec.training.models import create_model, get_spec
    from emorec.training.train import TrainConfig

    model = create_model("emonet")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    optimizer.step()
    scheduler.step()
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    last = {"model_name": "emonet", "spec": get_spec("emonet").to_dict(), "model": model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "ema": ema.state_dict(),
            "generator": torch.Generator().manual_seed(0).get_state(), "torch_rng": torch.get_rng_state(),
            "epoch": 1, "best_acc": 0.25, "history": [{"epoch": 1, "val_acc": 0.25}],
            "config": asdict(TrainConfig(data="fer2013.csv"))}
    save_atomic(last, tmp_path / "last.pt")
    loaded = read_checkpoint(tmp_path / "last.pt", tuple(last))
    assert loaded["scheduler"] == scheduler.state_dict() and loaded["config"] == last["config"]
    assert torch.equal(loaded["generator"], last["generator"])
    _, spec, _ = load_checkpoint(tmp_path / "last.pt")
    assert spec == get_spec("emonet")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_fifos_are_refused_not_waited_on(tmp_path, capsys):
    """Issue 25: a FIFO as an input or as --baseline hung predict, calibrate and batch for good (opening one
    waits for a writer). Each command runs in a thread; should it hang, a writer is connected so it ends."""
    import threading

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    image = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    out = tmp_path / "out"
    for command, status, says in (
        (["predict", str(fifo)], 1, f"{fifo}: is a pipe, device or socket, not a file"),
        (["predict", str(image), "--baseline", str(fifo)], 2, f"baseline {fifo}: is a pipe"),
        (["calibrate", str(fifo), "--out", str(tmp_path / "me.json")], 1, f"{fifo}: is a pipe"),
        (["batch", str(image), "--out", str(out), "--baseline", str(fifo)], 2, f"baseline {fifo}: is a pipe"),
        (["batch", str(fifo), "--out", str(out), "--workers", "1", "--quiet"], 1, f"{fifo}: is a pipe"),
    ):
        result: list[int] = []
        thread = threading.Thread(target=lambda c=command, r=result: r.append(main(c)), daemon=True)
        thread.start()
        thread.join(60)
        if thread.is_alive():  # give it a writer and an end, so the test fails instead of hanging
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(10)
        assert result == [status], (command, capsys.readouterr().err)
        assert says in capsys.readouterr().err, command


@pytest.fixture
def full_disk(tmpfs):
    """A 64 KB tmpfs filled to the last byte."""
    folder = tmpfs("full", "size=64k")
    with open(folder / "filler", "wb") as filler:
        try:
            filler.write(bytes(65536))
        except OSError:  # ENOSPC: full, as wanted
            pass
    return folder


def test_a_full_disk_is_one_line_and_leaves_no_partial_files(full_disk, tmp_path, capsys, monkeypatch):
    """Issue 25: `emorec video clip --out` on a full disk segfaulted in libavformat (exit 139), and calibrate
    left a 0-byte baseline."""
    from emorec import recording
    from emorec.errors import RecordingError

    clip = tmp_path / "clip.avi"
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(20):
        writer.write(cv2.resize(np.roll(photo, i, axis=1), (320, 240)))
    writer.release()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for name in ("out.mp4", "out.avi"):
        done = subprocess.run([sys.executable, "-m", "emorec.cli", "video", str(clip), "--out",
                               str(full_disk / name), "--json", str(full_disk / "s.json"), "--quiet"],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
        errors = [line for line in done.stderr.splitlines() if line.startswith("emorec video: ")]
        assert "Traceback" not in done.stderr and len(errors) == 1 and "cannot write" in errors[0], done.stderr
        assert sorted(os.listdir(full_disk)) == ["filler"]
    # Past the free-space check, PyAV's own write error is caught, and PyAV is not used again.
    monkeypatch.setattr(recording, "MIN_FREE_BYTES", 0)
    video = recording.AnnotatedVideoWriter(full_disk / "x.mp4", 10, (320, 240))
    with pytest.raises(RecordingError, match="No space left"):
        for _ in range(30):
            video.write(np.zeros((240, 320, 3), np.uint8))
    video.close()  # nothing left to close: no crash, no file
    assert sorted(os.listdir(full_disk)) == ["filler"]
    image = tmp_path / "me.jpg"
    cv2.imwrite(str(image), photo)
    assert main(["calibrate", str(image), "--out", str(full_disk / "b.json")]) == 1
    assert capsys.readouterr().err.splitlines()[-1].endswith("b.json (No space left on device)")
    assert sorted(os.listdir(full_disk)) == ["filler"]


def test_scorecard_checks_its_output_before_scoring_and_never_writes_over_an_input(fer2013_path, tmp_path, capsys):
    model = shipped_model_path("emonet_fast")
    before = model.read_bytes()
    assert main(["scorecard", "--model", str(model), "--out", str(model)]) == 2
    assert "would overwrite the input" in one_line_error(capsys)
    assert model.read_bytes() == before
    assert main(["scorecard", "--out", str(tmp_path), "--dev", str(tmp_path / "none")]) == 2
    assert one_line_error(capsys) == f"emorec scorecard: {tmp_path} is a folder: give the name of the file to write"
    assert main(["scorecard", "--data", str(fer2013_path), "--dev", str(tmp_path / "none"),
                 "--out", str(tmp_path / "s.json")]) == 2
    assert "lfw_expressions/labels.csv: no such file" in one_line_error(capsys)
    assert not (tmp_path / "s.json").exists()

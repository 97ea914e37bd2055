"""ONNX export with the preprocessing inside the graph, checked against PyTorch.

The exported graph takes ``faces``: float32 (N, 1, 48, 48) grayscale pixels 0-255, and
returns ``probs``: float32 (N, 7) softmax probabilities in FER2013 order. Scaling,
normalisation, the centre crop and optional flip averaging live in the graph, so the
engine only has to cut out and resize faces. The model's spec and card travel as
ONNX metadata (keys prefixed ``emorec.``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from emorec.classifier import read_metadata
from emorec.labels import EMOTIONS, FACE_SIZE
from emorec.outputs import write_atomic
from emorec.training.models.registry import ModelSpec

INPUT_NAME = "faces"
OUTPUT_NAME = "probs"


class InferenceWrapper(nn.Module):
    """0-255 faces in, probabilities out: normalise, centre-crop, classify, softmax.

    With several models (an ensemble sharing one input size and normalisation) or ``flip_tta``, the
    probabilities of every model and view are averaged. ``logit_shift`` (7,) is subtracted from every logit
    vector before the softmax (see :func:`prior_shift`).
    """

    def __init__(self, models: Sequence[nn.Module], spec: ModelSpec, flip_tta: bool = False,
                 logit_shift: np.ndarray | None = None):
        super().__init__()
        self.models = nn.ModuleList(models).eval()
        self.spec = spec
        self.flip_tta = flip_tta
        shift = np.zeros(len(EMOTIONS), np.float32) if logit_shift is None else np.asarray(logit_shift, np.float32)
        self.register_buffer("logit_shift", torch.from_numpy(shift))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        x = (faces / 255.0 - self.spec.mean) / self.spec.std
        offset = (FACE_SIZE - self.spec.input_size) // 2
        x = x[:, :, offset:offset + self.spec.input_size, offset:offset + self.spec.input_size]
        views = [x, torch.flip(x, dims=[3])] if self.flip_tta else [x]
        probs = [torch.softmax(model(view) - self.logit_shift, dim=1) for model in self.models for view in views]
        return torch.stack(probs).mean(0)


def prior_shift(prior: np.ndarray, strength: float) -> np.ndarray:
    """The logit shift that divides each class's probability by its training prior to the power ``strength``.

    A classifier learns its training set's class frequencies along with the faces; photos in use do not
    share FER2013's (a quarter happy, 1.5% disgust), so rare classes are under-called. strength 0 leaves the
    model as trained, 1 removes the prior entirely (balanced "logit adjustment").
    """
    return (strength * np.log(np.asarray(prior, np.float64))).astype(np.float32)


def export_onnx(models: Sequence[nn.Module], spec: ModelSpec, path: str | os.PathLike, flip_tta: bool = False,
                metadata: dict | None = None, check_images: np.ndarray | None = None,
                logit_shift: np.ndarray | None = None) -> float:
    """Export one model or an ensemble to ``path``; return the largest probability difference to PyTorch.

    Raises ``AssertionError`` if ONNX Runtime and PyTorch disagree by more than 1e-4 on ``check_images``.
    """
    import onnx
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    models = [model.float().to(memory_format=torch.contiguous_format) for model in models]
    wrapper = InferenceWrapper(models, spec, flip_tta, logit_shift).eval()
    example = torch.zeros(2, 1, FACE_SIZE, FACE_SIZE)
    batch = torch.export.Dim("batch", min=1, max=4096)
    onnx_program = torch.onnx.export(wrapper, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                     dynamic_shapes={"faces": {0: batch}}, dynamo=True, verbose=False)
    onnx_program.optimize()
    proto = onnx_program.model_proto
    meta = {"model": spec.name if len(models) == 1 else f"{spec.name} x{len(models)}", "ensemble": len(models),
            "spec": spec.to_dict(), "classes": list(EMOTIONS), "flip_tta": flip_tta,
            "input": f"{INPUT_NAME}: float32 (N,1,48,48) grayscale 0-255", "output": f"{OUTPUT_NAME}: (N,7) softmax"}
    meta.update(metadata or {})
    _set_metadata(proto, meta)
    def save_checked(partial: Path) -> None:
        onnx.save(proto, partial)
        onnx.checker.check_model(str(partial))

    write_atomic(path, save_checked)

    if check_images is None:
        check_images = np.random.default_rng(0).integers(0, 256, (16, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    faces = check_images.astype(np.float32)[:, None]
    with torch.no_grad():
        expected = wrapper(torch.from_numpy(faces)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], {INPUT_NAME: faces})[0]
    diff = float(np.abs(got - expected).max())
    assert diff <= 1e-4, f"ONNX Runtime and PyTorch differ by {diff:.2e} (> 1e-4)"
    return diff


def _set_metadata(proto, meta: dict) -> None:
    del proto.metadata_props[:]
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key = f"emorec.{key}"
        entry.value = json.dumps(value)


def update_metadata(path: str | os.PathLike, updates: dict) -> None:
    """Merge ``updates`` into the ``emorec.*`` metadata of an exported model, in place."""
    import onnx

    proto = onnx.load(str(path))
    meta = read_metadata(path)
    meta.update(updates)
    _set_metadata(proto, meta)
    write_atomic(path, lambda partial: onnx.save(proto, partial))


def graph_cost(onnx_path: str | os.PathLike) -> dict[str, int]:
    """Multiply-adds per face and parameters, counted from an exported float graph's convolutions and
    matrix products and its weight tensors. Output shapes are counted without their batch dimension, which
    shape inference leaves unknown after a layer whose size is computed at run time (a Resize)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    proto = onnx.load(str(onnx_path))
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 1
    graph = shape_inference.infer_shapes(proto).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.value_info, *graph.input, *graph.output]}
    weights = {w.name: numpy_helper.to_array(w).shape for w in graph.initializer}
    macs = 0
    for node in graph.node:
        if node.op_type == "Conv":
            kernel = weights[node.input[1]]  # (C_out, C_in / groups, kH, kW)
            macs += int(np.prod(shapes[node.output[0]][1:])) * int(np.prod(kernel[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            b = weights.get(node.input[1]) or shapes[node.input[1]]
            transposed = any(a.name == "transB" and a.i for a in node.attribute)
            inner = b[-1] if transposed else b[-2]  # the summed dimension of A @ B
            macs += int(np.prod(shapes[node.output[0]][1:])) * int(inner)
    return {"macs_per_face": macs, "parameters": int(sum(np.prod(shape) for shape in weights.values()))}


def model_card(onnx_path: str | os.PathLike, data_path: str | os.PathLike,
               checkpoint_paths: Sequence[str | os.PathLike], subset: int = 1000,
               ferplus: str | os.PathLike | None = None) -> dict:
    """Accuracy of the exported model on PublicTest and PrivateTest (FER2013's labels, and with ``ferplus``
    FER+ majority labels too), with the training facts behind it.

    ``PrivateTest_first{subset}`` is a fixed slice the test suite re-checks quickly. Training time
    comes from each run's ``last.pt`` beside its checkpoint, which holds every epoch's metrics.
    """
    from emorec.classifier import EmotionClassifier
    from emorec.evaluate import compute_report, ferplus_score, score_test_splits
    from emorec.training.checkpoint import read_checkpoint
    from emorec.training.data import load_fer2013

    data = load_fer2013(data_path, ferplus=ferplus or None)
    accuracy, macro_f1, ferplus_accuracy = {}, {}, {}
    for split, (probs, labels, majority) in score_test_splits(EmotionClassifier(onnx_path).predict, data).items():
        report = compute_report(probs, labels, split)
        accuracy[split], macro_f1[split] = round(report.accuracy, 4), round(report.macro_f1, 4)
        if majority is not None:
            ferplus_accuracy[split] = round(ferplus_score(probs, majority)["accuracy"], 4)
        if split == "PrivateTest":
            sub = compute_report(probs[:subset], labels[:subset], split)
            accuracy[f"PrivateTest_first{subset}"] = round(sub.accuracy, 4)
            if majority is not None:
                first = ferplus_score(probs[:subset], majority[:subset])["accuracy"]
                ferplus_accuracy[f"PrivateTest_first{subset}"] = round(first, 4)
    runs = []
    for path in checkpoint_paths:
        checkpoint = read_checkpoint(path)
        if "run" in checkpoint:  # an exported model, exported again: its card already holds its run
            runs.append(checkpoint["run"])
            continue
        last_path = Path(path).with_name("last.pt")
        history = read_checkpoint(last_path, ("history",))["history"] if last_path.exists() else []
        runs.append({"best_epoch": checkpoint.get("epoch"), "epochs_trained": len(history),
                     "training_minutes": round(sum(r["seconds"] for r in history) / 60, 1),
                     "train_config": checkpoint.get("config", {}),
                     # A weight-space blend (tools/interpolate_checkpoints.py): which two and in what share.
                     **({"interpolated": checkpoint["interpolated"]} if "interpolated" in checkpoint else {})})
    chosen_on = {run["train_config"].get("select", "fer2013") for run in runs}
    labels_used = "FER+ majority labels" if chosen_on == {"ferplus"} else "FER2013 labels"
    card = {"accuracy": accuracy, "macro_f1": macro_f1,
            "protocol": f"trained on FER2013 Training faces, epoch chosen on PublicTest ({labels_used}), "
                        "PrivateTest reported once",
            "runs": runs}
    if ferplus:
        card["ferplus_accuracy"] = ferplus_accuracy
    return card


def _from_softmax_on(graph) -> list[str]:
    """Names of the Softmax nodes and of every node fed, directly or not, by one (nodes are in topological order)."""
    names, downstream = [], set()
    for node in graph.node:
        if node.op_type == "Softmax" or downstream.intersection(node.input):
            names.append(node.name)
            downstream.update(node.output)
    return names


def quantize_int8(source: str | os.PathLike, target: str | os.PathLike, calibration_faces: np.ndarray) -> None:
    """Write the int8 twin of the float model ``source`` to ``target``: static QDQ, per-channel int8 weights,
    uint8 activations whose ranges come from ``calibration_faces`` (uint8, (N, 48, 48)).

    tools/quantize_classifier.py makes the shipped twins with it and checks what they cost in accuracy.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self, input_name: str, size: int = 32):
            self._batches = iter([calibration_faces[i:i + size] for i in range(0, len(calibration_faces), size)])
            self._input = input_name

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {self._input: batch.astype(np.float32)[:, None]}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        graph = onnx.load(str(prepared)).graph
        quantize_static(
            str(prepared),
            str(target),
            Batches(graph.input[0].name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # The softmax and everything after it (the averaging of flipped views or ensemble members) stay
            # float: quantised to uint8, probabilities come in steps of 1/255 and stop summing to 1. These
            # are a few small ops at the end, so this costs no speed.
            nodes_to_exclude=_from_softmax_on(graph),
            # One outlier batch sets a plain min/max range; averaging the batches' ranges keeps more precision.
            extra_options={"CalibMovingAverage": True},
            # 7-bit weights: on CPUs without VNNI, ONNX Runtime's AVX2 kernel adds pairs of uint8 x int8
            # products into int16 (VPMADDUBSW), which saturates with full-range weights and cost points of
            # accuracy there; with |w| <= 64 no pair can overflow, so every CPU computes the same int8 result.
            reduce_range=True,
        )

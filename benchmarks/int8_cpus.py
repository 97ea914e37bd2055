"""Does the int8 classifier give the float model's answers on CPUs with and without VNNI?

ONNX Runtime's int8 convolutions take another kernel on CPUs without AVX-512 VNNI: AVX2's VPMADDUBSW adds two
uint8 x int8 products into int16, which saturates when both are large; VNNI adds into int32 and does not.
This script scores the float model and its int8 twin on FER2013 faces natively, then runs the int8 twin again
under QEMU's user-mode emulator as an AVX2-only CPU (AMD EPYC Rome: AVX2, no AVX-512, no VNNI), so one machine
measures both kernels. Emulation is slow (minutes for a few hundred faces), hence ``--faces``.

    python benchmarks/int8_cpus.py [--model emonet_fast|emonet_wide|FILE.onnx] [--faces 300] [--split PrivateTest]

Needs ``qemu-x86_64`` (Debian: ``apt-get install qemu-user``) for the AVX2 half; without it, only the native
half runs. Prints accuracy, agreement of the top class with the float model and the largest probability gap.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from emorec.classifier import EmotionClassifier, model_file, shipped_model_path  # noqa: E402
from emorec.cpu import cpu_summary  # noqa: E402
from emorec.training.data import load_fer2013  # noqa: E402

EMULATED_CPU = "EPYC-Rome"  # AVX2 without AVX-512 or VNNI, as on many AMD servers and laptops


def _predict(model: Path, faces: np.ndarray) -> np.ndarray:
    return EmotionClassifier(model, threads=1).predict(faces)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=model_file, default=shipped_model_path(),
                        help="a shipped model's name or an ONNX file (default: the default model)")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"))
    parser.add_argument("--split", default="PrivateTest")
    parser.add_argument("--faces", type=int, default=300, help="faces scored under emulation (all natively)")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "FACES_NPY", "OUT_NPY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # the emulated half: predict and save, nothing else
        model, faces, out = args.worker
        np.save(out, _predict(Path(model), np.load(faces)))
        return 0

    twin = args.model.with_name(args.model.stem + "_int8.onnx")
    faces, labels = load_fer2013(args.data).split(args.split)
    print(f"host CPU: {cpu_summary()}")
    native_float, native_int8 = _predict(args.model, faces), _predict(twin, faces)
    for name, probs in (("float32", native_float), ("int8", native_int8)):
        print(f"native {name:8s} {args.split} top-1 {(probs.argmax(1) == labels).mean():.2%} (n={len(labels)})")

    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        print("qemu-x86_64 not installed (apt-get install qemu-user): AVX2-only kernels not measured")
        return 0
    subset = slice(0, args.faces)
    with tempfile.TemporaryDirectory() as tmp:
        faces_npy, out_npy = Path(tmp) / "faces.npy", Path(tmp) / "probs.npy"
        np.save(faces_npy, faces[subset])
        subprocess.run([qemu, "-cpu", EMULATED_CPU, sys.executable, __file__, "--worker", str(twin), str(faces_npy),
                        str(out_npy)], check=True, stderr=subprocess.DEVNULL)
        emulated = np.load(out_npy)
    print(f"emulated CPU: qemu-x86_64 -cpu {EMULATED_CPU} (avx2 yes, avx512f no, avx512_vnni no, amx_tile no)")
    rows = [("native float32", native_float[subset]), ("native int8", native_int8[subset]),
            ("AVX2 int8", emulated)]
    reference = native_float[subset]
    for name, probs in rows:
        accuracy = (probs.argmax(1) == labels[subset]).mean()
        agree = (probs.argmax(1) == reference.argmax(1)).mean()
        gap = np.abs(probs - reference).max()
        print(f"{name:15s} first {len(probs)} faces: top-1 {accuracy:.2%}, same top class as float {agree:.2%}, "
              f"largest probability gap {gap:.3f}")
    print(f"AVX2 int8 vs native int8: largest probability gap {np.abs(emulated - native_int8[subset]).max():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

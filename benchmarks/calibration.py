"""Does calibrating to each person's own neutral face help? (emorec.calibration)

On lfw_expressions (real close-up photos with a ``person`` column; people photographed on different days,
in different light: the hard case), every photo of a person who has at least one *other* neutral photo
is scored four ways: uncalibrated; calibrated with the mean of that person's other neutral photos (the
scored photo left out) at the default strength and neutral margin; the same over a grid of both (margin
0 is the uncorrected form ``log p - w * mean log p(neutral)``); and with a 5-fold cross-validation by
person of the rule that chose the defaults (best macro recall), so the chosen figure is not scored on
the photos that chose it. Then: how many neutral photos a baseline needs, auto-calibration on each
person's photos taken as a sequence (one photo a second, in file order), and a video test: a person
whose resting face the model misreads, calibrated from other photos, on a video of their neutral face
with an expressive moment. Last, the same-session case (``--same-session``, london's studio portraits:
one sitting per person), where the baseline is the person's neutral photo of the same sitting, as the
Calibrate button takes it: how often their smile reads happy, and their neutral photo neutral.

    python benchmarks/calibration.py [--data DIR] [--detector blazeface-short] [--model path.onnx]
                                     [--same-session DIR]

The default detector is BlazeFace short range: these photos are close-ups, where the full-range model
finds few faces (see the data set's README).
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

from emorec.calibration import DEFAULT_NEUTRAL_MARGIN, DEFAULT_STRENGTH, AutoCalibrator, Baseline, apply_baseline
from emorec.engine import EmotionRecognizer
from emorec.labels import EMOTIONS

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "expressions_dev" / "lfw_expressions"
NEUTRAL = EMOTIONS.index("neutral")
STRENGTHS = (0.25, 0.5, 0.75, 1.0, 1.25)
MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


def cpu_line() -> str:
    """The CPU's model name and which of the SIMD flags the int8 kernels use it has."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "amx_tile")
    present = " ".join(f"{flag}{'+' if flag in flags else '-'}" for flag in wanted)
    return f"CPU: {name}, {os.cpu_count()} cores, {present}"


def metrics(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Top-1, macro recall over the classes present, neutral recall; in percent."""
    recalls = {c: float((pred[truth == c] == c).mean()) for c in np.unique(truth)}
    return 100 * float((pred == truth).mean()), 100 * float(np.mean(list(recalls.values()))), 100 * recalls[NEUTRAL]


def row(label: str, values: tuple[float, float, float], reference: tuple[float, float, float] | None = None) -> str:
    pairs = zip(values, reference or values, strict=True)
    cells = [f"{v:5.1f}" + (f" ({v - r:+5.1f})" if reference else "") for v, r in pairs]
    return f"{label:<44} " + "  ".join(cells)


def calibrated_predictions(probs, truth, person, scored, strength, margin, most=None) -> np.ndarray:
    """argmax of each scored photo's probabilities calibrated with its person's other neutral photos."""
    preds = []
    for i in scored:
        mine = (person == person[i]) & (truth == NEUTRAL) & np.isfinite(probs[:, 0])
        others = [j for j in np.flatnonzero(mine) if j != i][:most]
        baseline = Baseline.from_scores(probs[others], "bench", strength=strength, neutral_margin=margin)
        preds.append(int(apply_baseline(probs[i], baseline).argmax()))
    return np.array(preds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="lfw_expressions folder (images/, labels.csv)")
    parser.add_argument("--detector", default="blazeface-short")
    parser.add_argument("--model", default=None, help="classifier ONNX file (default: the shipped one)")
    parser.add_argument("--same-session", type=Path, default=DATA.parent / "london",
                        help="photos of one sitting per person, a neutral one each (images/, labels.csv)")
    args = parser.parse_args()

    rec = EmotionRecognizer(model=args.model, detector=args.detector, max_faces=1)
    print(cpu_line())
    print(f"model {rec.model_info['name']} (sha256 {rec.model_sha256[:12]}), int8 {rec.quantized}, "
          f"detector {rec.detector.name}")
    rows, probs, truth, person = read_photos(rec, args.data)
    found = np.isfinite(probs[:, 0])
    neutrals = defaultdict(int)
    for i in np.flatnonzero(found & (truth == NEUTRAL)):
        neutrals[person[i]] += 1
    # Scored: photos with a face whose person has another neutral photo with a face.
    scored = np.array([i for i in np.flatnonzero(found) if neutrals[person[i]] - (truth[i] == NEUTRAL) >= 1])
    t, p = truth[scored], person[scored]
    print(f"{found.sum()} of {len(rows)} photos with a face; scored: {len(scored)} photos of {len(set(p))} people "
          f"({(t == NEUTRAL).sum()} neutral, {(t != NEUTRAL).sum()} not)\n")

    print(f"{'':<44} {'top-1':>5}  {'macro recall':>12}  {'neutral recall':>14}")
    none = metrics(probs[scored].argmax(1), t)
    print(row("no calibration", none))
    default = calibrated_predictions(probs, truth, person, scored, DEFAULT_STRENGTH, DEFAULT_NEUTRAL_MARGIN)
    print(row(f"own neutral photos, w {DEFAULT_STRENGTH}, margin {DEFAULT_NEUTRAL_MARGIN} (default)",
              metrics(default, t), none))

    grid = {(w, m): calibrated_predictions(probs, truth, person, scored, w, m) for w in STRENGTHS for m in MARGINS}
    for (w, m), pred in grid.items():
        print(row(f"  w {w}, margin {m}", metrics(pred, t), none))

    rng = np.random.default_rng(0)
    people = np.array(sorted(set(p)))
    for repeat in range(3):
        folds = np.array_split(rng.permutation(people), 5)
        pooled, chosen = np.empty(len(scored), int), []
        for fold in folds:
            test = np.isin(p, fold)
            best = max(grid, key=lambda k: metrics(grid[k][~test], t[~test])[1])
            chosen.append(best)
            pooled[test] = grid[best][test]
        print(row(f"5-fold CV by person #{repeat + 1}", metrics(pooled, t), none), " chosen:",
              " ".join(f"{w}/{m}" for w, m in chosen))

    print("\nneutral photos in the baseline (at most k, defaults; people with fewer use all they have)")
    for most in (1, 2, 3):
        pred = calibrated_predictions(probs, truth, person, scored, DEFAULT_STRENGTH, DEFAULT_NEUTRAL_MARGIN, most)
        print(row(f"  k <= {most}", metrics(pred, t), none))

    print("\nauto-calibration: each person's photos (any emotion) as a sequence, one a second, file order;")
    print("scored once the track has warmed up (3 s), people with 5 or more photos")
    auto_scored, auto_pred = [], []
    for name in sorted(set(person[found])):
        sequence = [i for i in np.flatnonzero(found & (person == name))]
        if len(sequence) < 5:
            continue
        auto = AutoCalibrator("bench")
        for second, i in enumerate(sequence):
            (baseline,) = auto.update([1], probs[i][None], float(second))
            if baseline is not None:
                auto_scored.append(i)
                auto_pred.append(int(apply_baseline(probs[i], baseline).argmax()))
    auto_scored = np.array(auto_scored)
    plain = metrics(probs[auto_scored].argmax(1), truth[auto_scored])
    print(f"  {len(auto_scored)} photos of {len(set(person[auto_scored]))} people")
    print(row("  no calibration", plain))
    print(row("  auto-calibrated", metrics(np.array(auto_pred), truth[auto_scored]), plain))

    video_test(rec, args.data, rows, probs, truth, person, found)
    same_session(EmotionRecognizer(model=args.model, max_faces=1), args.same_session)
    return 0


def read_photos(rec, data: Path) -> tuple[list[dict], np.ndarray, np.ndarray, np.ndarray]:
    """labels.csv's rows, and per photo the largest face's probabilities (NaN without a face), the true
    class and the person."""
    rows = list(csv.DictReader((data / "labels.csv").open(encoding="utf-8")))
    probs = np.full((len(rows), len(EMOTIONS)), np.nan, np.float32)
    for i, r in enumerate(rows):
        faces = rec(data / "images" / r["image"])
        if faces:
            probs[i] = faces[0].scores
    truth = np.array([EMOTIONS.index(r["emotion"]) for r in rows])
    person = np.array([r["person"] or f"?{i}" for i, r in enumerate(rows)])
    return rows, probs, truth, person


def same_session(rec, data: Path) -> None:
    """Photos of one sitting (london: each person's neutral and smiling portrait): the baseline is the
    person's neutral photo, as the Calibrate button takes a face from the same session. Scored: recall of
    the expression photos, and whether the neutral photo itself still reads neutral."""
    print(f"\nsame session: {data.name}, the baseline from each person's neutral photo (detector {rec.detector.name})")
    _, probs, truth, person = read_photos(rec, data)
    found = np.isfinite(probs[:, 0])
    neutral_of = {person[i]: i for i in np.flatnonzero(found & (truth == NEUTRAL))}
    shown = [i for i in np.flatnonzero(found & (truth != NEUTRAL)) if person[i] in neutral_of]
    own = [neutral_of[person[i]] for i in shown]
    print(f"  {len(shown)} expression photos of {len(set(person[shown]))} people; "
          f"{'expression recall':>17}  {'own neutral photo reads neutral':>31}")

    def scores(strength: float, margin: float = 0.0) -> str:
        expression, rest = [], []
        for i, j in zip(shown, own, strict=True):
            baseline = Baseline.from_scores(probs[j][None], "bench", strength=strength, neutral_margin=margin)
            expression.append(apply_baseline(probs[i], baseline).argmax() == truth[i])
            rest.append(apply_baseline(probs[j], baseline).argmax() == NEUTRAL)
        return f"{100 * np.mean(expression):17.1f}  {100 * np.mean(rest):31.1f}"

    print(f"  {'no calibration':<42} {scores(0.0)}")  # strength 0 leaves the probabilities as they are
    print(f"  {f'w {DEFAULT_STRENGTH}, margin {DEFAULT_NEUTRAL_MARGIN} (default)':<42} "
          f"{scores(DEFAULT_STRENGTH, DEFAULT_NEUTRAL_MARGIN)}")
    for w in STRENGTHS:
        for m in MARGINS:
            print(f"  {f'  w {w}, margin {m}':<42} {scores(w, m)}")


def video_test(rec, data: Path, rows, probs, truth, person, found) -> None:
    """A person whose neutral photos the model reads as angry or sad: calibrate with one, then play a video
    of another (8 s at 10 frames/s, light sensor noise) with 2 s of an expressive photo in the middle."""
    print("\nvideo test")
    for name in sorted(set(person[found])):
        mine = np.flatnonzero(found & (person == name))
        rest = [i for i in mine if truth[i] == NEUTRAL and EMOTIONS[probs[i].argmax()] in ("angry", "sad")]
        expressive = [i for i in mine if truth[i] in (EMOTIONS.index("happy"), EMOTIONS.index("surprise"))
                      and probs[i].argmax() == truth[i]]
        if len(rest) >= 2 and expressive:
            break
    else:
        print("  no person with two misread neutral photos and a well-read expressive one")
        return
    baseline = rec.calibrate([data / "images" / rows[rest[0]]["image"]])
    import cv2  # only this test needs it

    neutral = cv2.imread(str(data / "images" / rows[rest[1]]["image"]))
    smile = cv2.imread(str(data / "images" / rows[expressive[0]]["image"]))
    smile = cv2.resize(smile, neutral.shape[1::-1])
    rng = np.random.default_rng(0)
    for label, stream in (("manual baseline", rec.stream(baseline=baseline)),
                          ("auto-calibration", rec.stream(auto_calibrate=True))):
        readings = defaultdict(list)
        for frame_index in range(80):
            second = frame_index / 10
            part = "expressive" if 3 <= second < 5 else ("neutral, first 3 s" if second < 3 else "neutral, after")
            image = smile if part == "expressive" else neutral
            noisy = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
            faces = stream.process(noisy, frame_index=frame_index, time_s=second).faces
            if faces:
                readings[part].append((faces[0].emotion, faces[0].to_dict().get("raw_emotion", faces[0].emotion)))
        print(f"  {name}: neutral photos {rows[rest[0]]['image']} (baseline), {rows[rest[1]]['image']} (video), "
              f"{EMOTIONS[truth[expressive[0]]]} photo {rows[expressive[0]]['image']}; {label}")
        for part, pairs in readings.items():
            calibrated = ", ".join(f"{e} {n}" for e, n in _counts([c for c, _ in pairs]))
            raw = ", ".join(f"{e} {n}" for e, n in _counts([r for _, r in pairs]))
            print(f"    {part:<20} calibrated: {calibrated:<28} uncalibrated: {raw}")


def _counts(labels: list[str]) -> list[tuple[str, int]]:
    return sorted(((e, labels.count(e)) for e in set(labels)), key=lambda kv: -kv[1])


if __name__ == "__main__":
    raise SystemExit(main())

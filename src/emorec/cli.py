"""The ``emorec`` command line: one subcommand per job, each a thin call into the library."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

# FER2013 where this project's checkouts keep it; $EMOREC_FER2013 points elsewhere.
DEFAULT_DATA = os.environ.get("EMOREC_FER2013", "../shared/datasets/fer2013/fer2013.csv.gz")
DEFAULT_FERPLUS = os.environ.get("EMOREC_FERPLUS", "../shared/datasets/ferplus/fer2013new.csv")
DEFAULT_DEV_PHOTOS = os.environ.get("EMOREC_DEV_PHOTOS", "../shared/datasets/expressions_dev")


# Every option's range is checked by the parser, so a bad value is a one-line usage error (exit 2) before any
# work: `--max-faces 0` reported "no faces", `evaluate --limit -5` scored all but 5 images, `serve --workers 0`
# never answered, `--max-upload-mb nan` and `--port 70000` ended in tracebacks.
def whole_number(minimum: int, maximum: int | None = None, unit: str = "") -> Callable[[str], int]:
    """An argparse ``type``: a whole number (of ``unit``) from ``minimum``, up to ``maximum`` where given."""
    span = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more digits than Python parses
            value = None
        if value is None or value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"expected a whole number{f' of {unit}' if unit else ''} {span}, "
                                             f"got {text[:40]!r}")
        return value

    return parse


def real_number(minimum: float | None = None, maximum: float | None = None, above: float | None = None,
                below: float | None = None) -> Callable[[str], float]:
    """An argparse ``type``: a finite number >= ``minimum`` or > ``above``, <= ``maximum`` or < ``below``."""
    bounds = [(minimum, ">=", float.__ge__), (above, ">", float.__gt__), (maximum, "<=", float.__le__),
              (below, "<", float.__lt__)]
    bounds = [(float(limit), sign, test) for limit, sign, test in bounds if limit is not None]
    span = " and ".join(f"{sign} {limit:g}" for limit, sign, _ in bounds)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not all(test(value, limit) for limit, _, test in bounds):
            raise argparse.ArgumentTypeError(f"expected a finite number{f' {span}' if span else ''}, "
                                             f"got {text[:40]!r}")
        return value

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, as every other error of the command line (argparse adds the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _cmd_train(args: argparse.Namespace) -> int:
    try:
        from emorec.training.train import TrainConfig, train
    except ImportError as exc:
        return _fail(args, f"training needs PyTorch ({exc.name} is missing): pip install torch && "
                           "pip install 'emorec[train]'")

    _writable_folder(args.out or f"runs/{args.model}")
    config = TrainConfig(data=args.data, out=args.out or f"runs/{args.model}", model=args.model, epochs=args.epochs,
                         batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                         label_smoothing=args.label_smoothing, mixup=args.mixup, erasing=args.erasing,
                         seed=args.seed, device=args.device, precision=args.precision, limit=args.limit,
                         init=args.init or "", teachers=tuple(args.teacher or ()), distill_weight=args.distill_weight,
                         distill_temperature=args.distill_temperature, teacher_flip=args.teacher_flip,
                         teacher_prior_correction=args.teacher_prior_correction,
                         ema=args.ema, ferplus=args.ferplus or "", targets=args.targets,
                         ferplus_weight=args.ferplus_weight, photo_augment=args.photo_augment,
                         drop_augment=tuple(args.drop_augment or ()), occlusion=args.occlusion,
                         logit_adjustment=args.logit_adjustment, select=args.select,
                         soft_labels=args.soft_labels or "", soft_label_weight=args.soft_label_weight)
    out = train(config, resume=args.resume)
    print(f"done: {out}/best.pt")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a CNN on FER2013 (needs the 'train' extra: torch)",
                       description="Train on the Training split, pick the best epoch on PublicTest.")
    p.add_argument("--data", default=DEFAULT_DATA, help="fer2013.csv[.gz] or image-folder root (default: %(default)s)")
    p.add_argument("--model", default="emonet_wide",
                   help="architecture: emonet_wide (default) or emonet_fast (both ship), emonet, emonet_teacher, "
                        "shallow or deep")
    p.add_argument("--out", default=None, help="run directory for checkpoints and metrics (default: runs/MODEL)")
    p.add_argument("--epochs", type=whole_number(1), default=120, help="the shipped model's recipe: 120")
    p.add_argument("--batch-size", type=whole_number(1), default=128)
    p.add_argument("--lr", type=real_number(above=0), default=0.05, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=real_number(0), default=5e-4)
    p.add_argument("--label-smoothing", type=real_number(0, below=1), default=0.1)
    p.add_argument("--mixup", type=real_number(0), default=0.0, help="mixup alpha; 0 disables")
    p.add_argument("--erasing", type=real_number(0, 1), default=0.5, help="random-erasing probability")
    p.add_argument("--seed", type=whole_number(0), default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto (CUDA when PyTorch finds a GPU, else the CPU), cpu or cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    p.add_argument("--limit", type=whole_number(0), default=0, help="train on the first N images only (smoke tests)")
    p.add_argument("--init", default=None,
                   help="start from this checkpoint's weights (fine-tuning); a float model emorec export wrote, "
                        "such as a shipped one, is a checkpoint too")
    p.add_argument("--teacher", action="append", default=None,
                   help="distil from this checkpoint (knowledge distillation); repeat it to distil from an "
                        "ensemble, whose softened probabilities are averaged")
    p.add_argument("--distill-weight", type=real_number(0, 1), default=0.5,
                   help="share of the teacher's soft targets in the loss (default: %(default)s)")
    p.add_argument("--distill-temperature", type=real_number(above=0), default=2.0)
    p.add_argument("--teacher-flip", action="store_true",
                   help="the teacher averages each face with its mirror image (better targets, slower)")
    p.add_argument("--teacher-prior-correction", type=real_number(0, 1), default=0.0, metavar="STRENGTH",
                   help="divide each teacher's probabilities by its own training prior to this power before "
                        "the student learns them, as export's --prior-correction does (default: 0, off)")
    p.add_argument("--ema", type=real_number(0, below=1), default=0.0,
                   help="decay of a moving average of the weights, which is scored and saved; 0 disables")
    p.add_argument("--ferplus", default=None,
                   help="Microsoft's FER+ fer2013new.csv, joined to --data by row number; its not-a-face rows "
                        "are left out of training")
    p.add_argument("--targets", default="fer2013", choices=["fer2013", "ferplus", "mix"],
                   help="learn FER2013's labels, FER+'s vote distributions, or a mix (default: %(default)s)")
    p.add_argument("--ferplus-weight", type=real_number(0, 1), default=0.5,
                   help="with --targets mix: FER+'s share of each target (default: %(default)s)")
    p.add_argument("--soft-labels", default=None, metavar="NPY",
                   help="another model's probabilities for every row of --data, (rows, 7) in emorec's class order "
                        "(tools/faceapi_soft_labels.py makes them), blended into each target")
    p.add_argument("--soft-label-weight", type=real_number(0, 1), default=0.0,
                   help="the soft labels' share of each target (default: %(default)s)")
    p.add_argument("--photo-augment", action="store_true",
                   help="also JPEG artefacts, gamma, noise and 2-4x downscaling, as crops of real photos have")
    p.add_argument("--drop-augment", action="append", default=None, metavar="NAME",
                   help="leave this augmentation out, to measure what it does; repeatable (the names: "
                        "emorec.training.augment.AUGMENTATIONS, listed by the error a wrong one gets)")
    p.add_argument("--occlusion", type=real_number(0, 1), default=0.0,
                   help="share of faces covered by a hand, glasses or hair (default: %(default)s)")
    p.add_argument("--logit-adjustment", type=real_number(0), default=0.0, metavar="TAU",
                   help="logit-adjusted label loss (logits + TAU * log class prior), for rare classes; 0 disables")
    p.add_argument("--select", default="fer2013", choices=["fer2013", "ferplus"],
                   help="the PublicTest labels that choose best.pt: FER2013's or FER+ majority (default: %(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.set_defaults(func=_cmd_train)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from emorec.evaluate import evaluate, format_report

    _writable_folder(args.out)
    if args.photos:
        return _evaluate_photos(args)
    try:
        report = evaluate(args.model, args.data, split=args.split, tta=args.tta, limit=args.limit, out_dir=args.out,
                          ferplus=args.ferplus)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(args, str(exc))
    print(format_report(report))
    if args.out:
        print(f"wrote {args.out}/report.json and {args.out}/confusion.png")
    return 0


def _evaluate_photos(args: argparse.Namespace) -> int:
    from emorec.errors import DatasetError
    from emorec.photo_eval import evaluate_photos, format_photo_report, write_photo_report

    try:
        report = evaluate_photos(args.photos, args.model, classifier_only=args.classifier_only,
                                 detector=args.detector, quantized=False if args.float else None, limit=args.limit)
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        print(f"emorec evaluate: {exc}", file=sys.stderr)
        return 2
    print(format_photo_report(report))
    if args.out:
        print("wrote " + ", ".join(map(str, write_photo_report(report, args.out))))
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from emorec.evaluate import TTA_MODES

    p = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class metrics and confusion matrix of a model",
                       description="Score an .onnx model or a .pt checkpoint on a FER2013 split.")
    p.add_argument("--model", default=None,
                   help="a shipped model (emonet_fast, emonet_wide), an ONNX file or a .pt checkpoint "
                        "(default: the default shipped model)")
    p.add_argument("--data", default=DEFAULT_DATA, help="fer2013.csv[.gz] or image-folder root (default: %(default)s)")
    p.add_argument("--split", default="PrivateTest", choices=["Training", "PublicTest", "PrivateTest"])
    p.add_argument("--tta", default="none", choices=TTA_MODES, help="test-time augmentation")
    p.add_argument("--limit", type=whole_number(0), default=0, help="score only the first N images of the split")
    p.add_argument("--out", default=None, help="folder for report.json and confusion.png")
    p.add_argument("--ferplus", default=None,
                   help="Microsoft's FER+ fer2013new.csv: also report top-1 against its majority labels")
    g = p.add_argument_group("real photos")
    g.add_argument("--photos", default=None, metavar="DIR",
                   help="score the photos of DIR/labels.csv (image,emotion[,person]) through the whole pipeline "
                        "(largest face; no face = wrong) instead of FER2013; --limit takes N evenly spaced photos, "
                        "--out also writes predictions.csv")
    g.add_argument("--classifier-only", action="store_true",
                   help="with --photos: the images are face crops framed like FER2013 (e.g. CK+48): "
                        "feed them to the classifier directly, as 48x48 grayscale")
    g.add_argument("--detector", default="auto", help="with --photos: the face detector (default: %(default)s)")
    g.add_argument("--float", action="store_true", help="with --photos: the float model even where the engine "
                                                        "would run its int8 twin")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_scorecard(args: argparse.Namespace) -> int:
    from emorec.outputs import refuse_overwriting, write_atomic
    from emorec.scorecard import format_scorecards, scorecard

    # The output is checked before minutes of scoring, never written over a model or data file.
    refuse_overwriting([*(args.model or []), args.data, args.ferplus], [args.out], "--out")
    out = _writable(args.out)
    cards = []
    for model in args.model or [None]:
        cards.append(scorecard(model, args.data, args.ferplus, args.dev, quantized=False if args.float else None))
        print(f"scored {cards[-1].model}: {cards[-1].score:.4f}", file=sys.stderr, flush=True)
    print(format_scorecards(cards))
    if out is not None:
        report = json.dumps([card.to_dict() for card in cards], indent=2)
        try:
            write_atomic(out, lambda partial: partial.write_text(report, encoding="utf-8"))
        except OSError as exc:
            return _fail(args, f"{out}: cannot write ({exc.strerror})")
        print(f"wrote {out}")
    return 0


def _add_scorecard(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scorecard", help="the shipping rule: each model's real-face score and the figures behind it",
                       description="Score models by the rule that chooses which ships: the mean of FER+ PublicTest "
                                   "majority top-1 and the macro recall on the development photo sets "
                                   "(lfw_expressions and london through the pipeline, ckplus48 through the "
                                   "classifier); FER2013 and PrivateTest figures are printed beside it.")
    p.add_argument("--model", action="append", default=None,
                   help="a shipped model's name or an ONNX file; repeat to compare (default: the default model)")
    p.add_argument("--data", default=DEFAULT_DATA, help="fer2013.csv[.gz] (default: %(default)s)")
    p.add_argument("--ferplus", default=DEFAULT_FERPLUS, help="FER+ fer2013new.csv (default: %(default)s)")
    p.add_argument("--dev", default=DEFAULT_DEV_PHOTOS,
                   help="folder holding lfw_expressions/, ckplus48/ and london/ (default: %(default)s)")
    p.add_argument("--float", action="store_true", help="the float model even where the engine runs its int8 twin")
    p.add_argument("--out", default=None, help="also write every figure as JSON to this file")
    p.set_defaults(func=_cmd_scorecard)


def _cmd_export(args: argparse.Namespace) -> int:
    from emorec.classifier import SHIPPED_MODELS, shipped_model_path
    from emorec.outputs import refuse_overwriting

    if (args.out is None) == (not args.install):
        return _fail(args, "say where the model goes: --out FILE.onnx, or --install to replace the shipped model")
    _writable(args.out)
    try:
        from emorec.training.checkpoint import load_checkpoint
        from emorec.training.export import export_onnx, model_card, prior_shift, update_metadata
        from emorec.training.train import checkpoint_prior
    except ImportError as exc:
        return _fail(args, f"export needs PyTorch and ONNX ({exc.name} is missing): pip install 'emorec[train]'")
    loaded = [load_checkpoint(path) for path in args.checkpoints]
    specs = [spec for _, spec, _ in loaded]
    if args.install:
        if len(loaded) > 1 or specs[0].name not in SHIPPED_MODELS:
            return _fail(args, f"--install replaces one shipped model ({', '.join(SHIPPED_MODELS)}) with a checkpoint "
                               "of the same architecture; write anything else with --out")
        args.out = str(shipped_model_path(specs[0].name))
    refuse_overwriting(args.checkpoints, [args.out], "--install" if args.install else "--out")
    # The graph crops and normalises once for all members, so an ensemble may mix architectures
    # (emonet with emonet_wide) but not preprocessing.
    if len({s.preprocessing for s in specs}) > 1:
        print("emorec export: an ensemble's models must share one input size and normalisation", file=sys.stderr)
        return 2
    names = sorted({s.name for s in specs})
    metadata = {"model": "+".join(names)} if len(names) > 1 else {}
    shift = None
    if args.prior_correction:
        prior = checkpoint_prior(loaded[0][2], args.checkpoints[0])
        shift = prior_shift(prior, args.prior_correction)
        metadata["prior_correction"] = {"strength": args.prior_correction, "training_prior": prior.round(4).tolist()}
    diff = export_onnx([model for model, _, _ in loaded], specs[0], args.out, flip_tta=args.flip_tta,
                       metadata=metadata, logit_shift=shift)
    print(f"exported {args.out}; ONNX Runtime vs PyTorch max difference {diff:.1e}")
    if args.data:
        card = model_card(args.out, args.data, args.checkpoints, ferplus=args.ferplus or None)
        update_metadata(args.out, card)
        print(json.dumps({"FER2013": card["accuracy"], "FER+": card.get("ferplus_accuracy")}))
    if args.install:
        print("the int8 twin no longer matches, so the engine runs the float model until "
              "tools/quantize_classifier.py makes a new twin")
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export checkpoints to one ONNX model (preprocessing inside the graph)",
                       description="Export to ONNX, check it against PyTorch to 1e-4 and write the model card.")
    p.add_argument("checkpoints", nargs="+",
                   help="checkpoint(s), e.g. runs/emonet/best.pt or a float model emorec export wrote; several make "
                        "an ensemble")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="the ONNX file to write")
    where.add_argument("--install", action="store_true",
                       help="replace the shipped model of the checkpoint's architecture (emorec/assets/NAME.onnx)")
    p.add_argument("--flip-tta", action="store_true", help="average each face with its mirror image in the graph")
    p.add_argument("--prior-correction", type=real_number(0), default=0.0, metavar="STRENGTH",
                   help="divide each class's probability by its share of the training targets to this power "
                        "(0: as trained; 1: no class prior at all)")
    p.add_argument("--data", default=DEFAULT_DATA,
                   help="FER2013 for the model card's PublicTest/PrivateTest accuracy ('' to skip)")
    p.add_argument("--ferplus", default=None,
                   help=f"FER+ fer2013new.csv: the card also gives majority-label accuracy (e.g. {DEFAULT_FERPLUS})")
    p.set_defaults(func=_cmd_export)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from emorec.web.server import engine_problem, serve
    except ImportError as exc:
        print(f"emorec serve needs the 'web' extra ({exc.name} is missing): pip install 'emorec[web]'", file=sys.stderr)
        return 2
    if bool(args.certfile) != bool(args.keyfile):
        print("emorec serve: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    for path in filter(None, (args.certfile, args.keyfile)):
        if not Path(path).is_file():
            print(f"emorec serve: {path}: no such file", file=sys.stderr)
            return 2
    config = _engine_config(args)
    problem = engine_problem(config)  # a model that cannot load fails here, not in every worker
    if problem:
        print(f"emorec serve: {problem}", file=sys.stderr)
        return 2
    limits = {
        "max_upload_bytes": int(args.max_upload_mb * 2**20),
        "max_live_streams": args.max_live_streams,
        "max_video_jobs": args.max_video_jobs,
    }
    try:
        serve(args.host, args.port, workers=args.workers, max_clients=args.max_clients, certfile=args.certfile,
              keyfile=args.keyfile, engine_config=config,
              engine_threads=args.analysis_threads, allowed_origins=tuple(args.allow_origin),
              allowed_hosts=tuple(args.allowed_host), **limits)
    except ValueError as exc:  # a limit out of range, a certificate and key that do not make a pair
        print(f"emorec serve: {exc}", file=sys.stderr)
        return 2
    return 0


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the web app: live camera page, uploads, REST API (needs the 'web' extra)",
        description="Serve the web app with Gunicorn's asyncio worker (Linux and macOS). Browsers give the "
        "camera only to https:// pages or to http://localhost, so a phone on the LAN needs --certfile/--keyfile.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 for every interface (there is no login: see the warning)")
    p.add_argument("--port", type=whole_number(1, 65535), default=5000)
    p.add_argument("--certfile", default=None, help="TLS certificate (PEM) to serve https:// and wss://")
    p.add_argument("--keyfile", default=None, help="its private key (PEM)")
    p.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="another web origin (https://host:port) whose pages may use the live socket and post forms; "
                        "repeat for several, '*' for any (default: only this server's own pages)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name browsers reach this server by (its pages' own origin); repeat for several. "
                        "IP addresses, localhost and --host need none; pages under other names are refused, so "
                        "that another site cannot point its name at this server (DNS rebinding)")
    p.add_argument("--workers", type=whole_number(1), default=1, help="processes, each with its own copy of the models")
    p.add_argument("--max-clients", type=whole_number(1), default=200,
                   help="open connections per worker; more wait to connect")
    p.add_argument("--max-live-streams", type=whole_number(1), default=32, help="live camera connections per worker")
    p.add_argument("--max-video-jobs", type=whole_number(1), default=1,
                   help="videos analysed at once per worker; more get 503 with Retry-After")
    p.add_argument("--analysis-threads", type=whole_number(1), default=2,
                   help="threads per worker that analyse live frames (default: 2)")
    p.add_argument("--max-upload-mb", type=real_number(above=0), default=16.0, help="largest accepted request body")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_serve)


def _cmd_export_web(args: argparse.Namespace) -> int:
    try:
        import jinja2  # noqa: F401  (the live page's template is rendered with it)
    except ImportError:
        return _fail(args, "needs the 'web' extra (jinja2 is missing): pip install 'emorec[web]'")
    from emorec.browser import export_site

    size = export_site(args.folder, _engine_config(args))
    print(f"wrote the live page in private mode to {args.folder} ({size / 1e6:.1f} MB); serve it from any static "
          f"host, e.g. python -m http.server --directory {args.folder}")
    return 0


def _add_export_web(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export-web", help="write the live page as a static site that runs the models in the visitor's browser",
        description="A self-contained static site (the live page, the ONNX models, ONNX Runtime Web and the "
        "pipeline's settings) for any static host; frames never leave the visitor's browser, and once loaded it "
        "works offline. Needs ONNX Runtime Web: make web-ort (docs/private_mode.md).",
    )
    p.add_argument("folder", help="a new or empty folder to write the site into")
    _add_engine_options(p, threads=False)
    p.set_defaults(func=_cmd_export_web)


def _add_engine_options(p: argparse.ArgumentParser, threads: bool = True, stream: bool = False) -> None:
    """The flags of :class:`emorec.config.EngineConfig`, each named after its setting (``--min-detection-score``
    is ``min_detection_score``); ``stream`` adds the settings of streams (detect-every, smoothing)."""
    from emorec.config import DEFAULT_DETECT_EVERY

    g = p.add_argument_group("engine")
    g.add_argument("--model", default=None,
                   help="the classifier: a shipped model (emonet_fast, emonet_wide) or an ONNX file "
                        "(default: the default shipped model)")
    g.add_argument("--detector", default="auto",
                   help="auto (BlazeFace full and short range), blazeface-tiled (also small faces in big group "
                        "photos, slower), blazeface-full, blazeface-short, yunet or haar")
    g.add_argument("--yunet-model", default=None, help="YuNet ONNX file for --detector yunet")
    g.add_argument("--min-face-size", type=whole_number(0), default=24, help="ignore faces smaller than this (pixels)")
    g.add_argument("--min-detection-score", "--min-score", dest="min_detection_score", type=real_number(0, 1),
                   default=None, help="detector score threshold in [0, 1] (default: per detector)")
    g.add_argument("--max-faces", type=whole_number(1), default=None, help="keep only the N largest faces")
    if threads:  # batch sets them itself: the workers share the cores
        g.add_argument("--threads", type=whole_number(1), default=1, help="ONNX Runtime threads per model")
    if stream:
        g.add_argument("--detect-every", type=whole_number(1, unit="frames"), default=DEFAULT_DETECT_EVERY,
                       metavar="N", help="run the face detector on every N-th frame (and when a face is lost), "
                                         "following faces by optical flow in between; 1: on every frame "
                                         "(default: %(default)s)")
        g.add_argument("--no-smoothing", dest="smoothing", action="store_false",
                       help="raw per-frame probabilities (still tracked)")


def _engine_config(args: argparse.Namespace):
    """The one :class:`~emorec.config.EngineConfig` the engine options describe; ConfigError says what is wrong."""
    from emorec.config import EngineConfig

    settings = {"model": args.model, "detector": args.detector, "yunet_model": args.yunet_model,
                "min_face_size": args.min_face_size, "min_detection_score": args.min_detection_score,
                "max_faces": args.max_faces}
    for optional in ("threads", "detect_every", "smoothing"):  # flags that only some commands have
        if hasattr(args, optional):
            settings[optional] = getattr(args, optional)
    return EngineConfig(**settings)


def _make_recognizer(args: argparse.Namespace):
    """The engine from the command-line options; an EmorecError (one line, exit 2) says why it cannot be built."""
    from emorec.engine import EmotionRecognizer

    return EmotionRecognizer(_engine_config(args))


def _fail(args: argparse.Namespace, message: str) -> int:
    """Say what is wrong in one line, as every command's errors are said; returns the exit status (2)."""
    print(f"emorec {args.command}: {message}", file=sys.stderr)
    return 2


def _writable(path: str | None) -> Path | None:
    """An output file's path, its folder made now, so that a wrong path fails before the work, not after."""
    if path is None:
        return None
    from emorec.errors import RecordingError

    target = Path(path)
    if target.is_dir():
        raise RecordingError(f"{target} is a folder: give the name of the file to write")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingError(f"{target}: cannot create its folder ({exc.strerror})") from None
    if not os.access(target.parent, os.W_OK | os.X_OK):
        raise RecordingError(f"{target}: cannot write into {target.parent} (read-only or not permitted)")
    return target


def _writable_folder(path: str | None) -> Path | None:
    """An output folder's path, checked (not made) before the work: a file in its place, or a file or a
    read-only folder on its way, fails now rather than as a traceback when the results are written."""
    if path is None:
        return None
    from emorec.errors import RecordingError

    target = Path(path)
    existing = next(folder for folder in (target, *target.absolute().parents) if folder.exists())
    if not existing.is_dir():
        whose = "" if existing == target.absolute() else f": {existing}"
        raise RecordingError(f"{target}{whose} is a file, not a folder: give a folder to write into")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecordingError(f"{target}: cannot write into {existing} (read-only or not permitted)")
    return target


def _add_baseline_options(p: argparse.ArgumentParser, auto: bool = False) -> None:
    g = p.add_argument_group("personal calibration")
    g.add_argument("--baseline", default=None, metavar="BASELINE.json",
                   help="read faces against this person's neutral face (made by `emorec calibrate`)")
    if auto:
        g.add_argument("--auto-calibrate", action="store_true",
                       help="each face learns its own neutral baseline from its first seconds in view "
                            "(3 s warm-up, median of the last 30 s)")


def _load_baseline(args: argparse.Namespace, rec):
    """The --baseline file checked against the engine's model; None if not given. A BaselineError (one line,
    exit 2) says why it cannot be used."""
    from emorec.calibration import load_baseline

    if not args.baseline:
        return None
    return rec.check_baseline(load_baseline(args.baseline))


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from emorec.calibration import BaselineError
    from emorec.labels import EMOTIONS
    from emorec.outputs import refuse_overwriting
    from emorec.sources import expand_image_paths

    items = expand_image_paths(args.images)
    if not items:
        print("emorec calibrate: no images found in " + ", ".join(args.images), file=sys.stderr)
        return 1
    refuse_overwriting([path for path, _ in items], [args.out], "--out")
    _writable(args.out)
    rec = _make_recognizer(args)
    try:
        baseline = rec.calibrate([path for path, _ in items], strength=args.strength, neutral_margin=args.margin)
    except BaselineError as exc:
        print(f"emorec calibrate: {exc}", file=sys.stderr)
        return 1
    for note in baseline.notes:
        print(f"note: {note}", file=sys.stderr)
    try:
        baseline.save(args.out)
    except OSError as exc:
        print(f"emorec calibrate: cannot write {args.out} ({exc.strerror})", file=sys.stderr)
        return 1
    readings = sorted(zip(EMOTIONS, baseline.neutral_scores, strict=True), key=lambda kv: -kv[1])[:3]
    print(f"baseline from {baseline.samples} face(s) of {len(items)} image(s); uncalibrated, this neutral face "
          f"reads " + ", ".join(f"{emotion} {p:.0%}" for emotion, p in readings))
    print(f"wrote {args.out}")
    return 0


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    from emorec.calibration import DEFAULT_NEUTRAL_MARGIN, DEFAULT_STRENGTH, MAX_NEUTRAL_MARGIN, MAX_STRENGTH

    p = sub.add_parser("calibrate", help="make a person's baseline from photos of their neutral face",
                       description="The largest face of each image is used; images without a face are skipped "
                                   "and reported. Use the result with --baseline on predict, video and stream.")
    p.add_argument("images", nargs="+", metavar="IMAGE|FOLDER", help="a few photos of one person's neutral face")
    p.add_argument("--out", required=True, metavar="BASELINE.json")
    p.add_argument("--strength", type=real_number(0, MAX_STRENGTH), default=DEFAULT_STRENGTH,
                   help="how much of the baseline to take away (0: none; default: %(default)s, for photos of "
                        "the same sitting; photos of another day read better with 0.5 and --margin 1.5)")
    p.add_argument("--margin", type=real_number(0, MAX_NEUTRAL_MARGIN), default=DEFAULT_NEUTRAL_MARGIN,
                   help="how far the person's own neutral face reads ahead of other classes (default: %(default)s)")
    _add_engine_options(p)
    p.set_defaults(func=_cmd_calibrate)


def _describe(faces) -> str:
    if not faces:
        return "no faces"
    return ", ".join(f"{face.emotion} ({face.confidence:.0%})" for face in faces)


PREDICT_CSV_COLUMNS = ("path", "face", "x1", "y1", "x2", "y2", "emotion", "confidence")


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    import cv2

    from emorec.labels import EMOTIONS
    from emorec.outputs import refuse_overwriting, unique_names
    from emorec.sources import InputError, expand_image_paths, iter_images

    items = expand_image_paths(args.inputs)
    if not items:
        print("emorec predict: no images found in " + ", ".join(args.inputs), file=sys.stderr)
        return 1
    paths = [path for path, _ in items]
    names = unique_names([name for _, name in items])
    for (path, name), unique in zip(items, names, strict=True):
        if unique != name:
            print(f"note: {path} is annotated as {unique}: another input is named {name} too", file=sys.stderr)
    targets = [Path(args.out) / name for name in names] if args.out else []
    for option, outputs in (("--out", targets), ("--json", [args.json]), ("--csv", [args.csv])):
        refuse_overwriting(paths, outputs, option)
    _writable_folder(args.out)
    json_path, csv_path = _writable(args.json), _writable(args.csv)
    rec = _make_recognizer(args)
    baseline = _load_baseline(args, rec)
    records, failed = [], 0
    for path, target, (_, image) in zip(paths, targets or [None] * len(paths), iter_images(paths), strict=True):
        if isinstance(image, InputError):
            failed += 1
            print(f"error: {image}", file=sys.stderr)
            records.append({"path": str(path), "error": str(image), "faces": []})
            continue
        result = rec.process(image, baseline=baseline)
        print(f"{path}: {_describe(result.faces)}")
        records.append({"path": str(path), "error": None, **result.to_dict()})
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            ok, encoded = cv2.imencode(target.suffix or ".png", rec.annotate(result, bars=args.bars))
            if not ok:
                print(f"error: {target}: cannot encode", file=sys.stderr)
                failed += 1
                continue
            encoded.tofile(target)
    if json_path:
        json_path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    if csv_path:
        header = [*PREDICT_CSV_COLUMNS, *EMOTIONS, "error"]
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for record in records:
                if not record["faces"]:  # an error, or no face: the path and the error, every other field empty
                    writer.writerow([record["path"], *[""] * (len(header) - 2), record["error"] or ""])
                for i, face in enumerate(record["faces"]):
                    writer.writerow([record["path"], i, *face["box"], face["emotion"], face["confidence"],
                                     *face["scores"].values(), ""])
    print(f"{len(records) - failed} of {len(records)} images done" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="faces and emotions in images and folders of images",
                       description="Annotate images and list their faces; a bad file is reported and skipped "
                                   "(exit code 1 if any failed).")
    p.add_argument("inputs", nargs="+", metavar="IMAGE|FOLDER")
    p.add_argument("--out", default=None, help="folder for the annotated images")
    p.add_argument("--json", default=None, help="write every image's faces to this JSON file")
    p.add_argument("--csv", default=None, help="write one row per face to this CSV file")
    p.add_argument("--bars", action="store_true", help="draw probability bars under each face")
    _add_engine_options(p)
    _add_baseline_options(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from emorec.outputs import refuse_overwriting
    from emorec.recording import MAX_PLOTTED_TRACKS, Recorder

    for option in ("out", "csv", "plot", "json"):
        refuse_overwriting([args.input], [getattr(args, option)], f"--{option}")
        _writable(getattr(args, option))
    rec = _make_recognizer(args)
    baseline = _load_baseline(args, rec)
    with rec.stream(args.input, baseline=baseline, auto_calibrate=args.auto_calibrate) as stream:
        recorder = Recorder(args.out, args.csv, args.plot, fps=stream.fps or 30.0, summary_path=args.json,
                            source=args.input)
        try:
            for result in tqdm(stream, total=stream.source.frame_count, unit="frame", disable=args.quiet):
                recorder.write(result, rec.annotate(result, bars=args.bars) if args.out else None, result.time_s)
        except KeyboardInterrupt:
            print("interrupted: keeping the frames done so far", file=sys.stderr)
        finally:
            summary = recorder.close()
    print(f"{summary['frame_count']} frames, {summary['frames_with_faces']} with faces")
    for track in summary["tracks"]:
        means = ", ".join(f"{e} {p:.0%}" for e, p in sorted(track["scores"].items(), key=lambda kv: -kv[1])[:3])
        print(f"face #{track['track_id']}: {track['frames']} frames, {track['first_s']:.1f}-{track['last_s']:.1f} s, "
              f"{track['emotion']} (mean probabilities: {means})")
    left_out = len(summary["tracks"]) - MAX_PLOTTED_TRACKS
    if args.plot and left_out > 0:
        print(f"the plot shows the {MAX_PLOTTED_TRACKS} faces seen longest; {left_out} more are in the summary")
    for path in (args.out, args.csv, args.plot, args.json):
        if path:
            print(f"wrote {path}")
    return 0


def _add_video(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="annotate a video and record each face's emotions over time",
                       description="Process every frame of a video file: annotated video, CSV timeline, plot, "
                                   "JSON summary.")
    p.add_argument("input", help="video file")
    p.add_argument("--out", default=None, help="annotated video (.mp4: H.264 where PyAV is installed; .webm, .avi)")
    p.add_argument("--csv", default=None, help="timeline CSV: one row per face and frame")
    p.add_argument("--plot", default=None, help="PNG of each face's emotions over time, on one time axis")
    p.add_argument("--json", default=None,
                   help="summary JSON: per face (track) its frames, first and last time, dominant emotion and "
                        "mean probabilities; the web app's video upload gives the same")
    p.add_argument("--bars", action="store_true", help="draw probability bars under each face")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_options(p, stream=True)
    _add_baseline_options(p, auto=True)
    p.set_defaults(func=_cmd_video)


def _cmd_stream(args: argparse.Namespace) -> int:
    rec = _make_recognizer(args)
    baseline = _load_baseline(args, rec)
    try:
        with rec.stream(args.source, max_frames=args.max_frames or None,
                        baseline=baseline, auto_calibrate=args.auto_calibrate) as stream:
            for result in stream:
                print(json.dumps(result.to_dict()), flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live stream ends
    return 0


def _add_stream(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="one JSON line of faces per frame of a webcam, stream URL or video file",
                       description="Live sources are read in a thread that keeps only the newest frame; "
                                   "files are read in order. The photos of a folder are read one by one, each "
                                   "alone (nothing smoothed across them): their lines carry a path and no time.")
    p.add_argument("--source", default="0", help="webcam index, stream URL or video file (default: 0)")
    p.add_argument("--max-frames", type=whole_number(0), default=0,
                   help="stop after N frames (0: run until the source ends)")
    _add_engine_options(p, stream=True)
    _add_baseline_options(p, auto=True)
    p.set_defaults(func=_cmd_stream)


def _cmd_batch(args: argparse.Namespace) -> int:
    from emorec.batch import BatchSettings, analyze

    _writable_folder(args.out)
    settings = BatchSettings(engine=_engine_config(args), annotate=args.annotate, baseline=args.baseline)
    started = time.perf_counter()
    summary = analyze(args.inputs, args.out, executor="ray" if args.ray else "local", workers=args.workers,
                      ray_address=None if args.ray in (None, "local") else args.ray, settings=settings,
                      progress=not args.quiet).to_pylist()
    seconds = time.perf_counter() - started
    counts = {status: sum(r["status"] == status for r in summary) for status in ("done", "skipped", "error")}
    frames = sum(r["frames"] for r in summary if r["status"] == "done")
    for row in summary:
        if row["status"] == "error":
            print(f"error: {row['error']}", file=sys.stderr)
    print(f"{counts['done']} files analysed ({frames} frames, {frames / seconds:.0f} frames/s), "
          f"{counts['skipped']} already done, {counts['error']} failed; results in {args.out}")
    return 1 if counts["error"] else 0


def _ray_address(text: str) -> str:
    """An argparse ``type`` for ``--ray``: local, auto or a cluster's HOST:PORT. As its value is optional, an
    input right after it was taken for the address (``batch --ray clip.mp4 ...``)."""
    from emorec.batch import ray_endpoint

    if text in ("local", "auto") or ray_endpoint(text) is not None:
        return text
    hint = "; put the inputs before --ray" if Path(text).exists() else ""
    raise argparse.ArgumentTypeError(f"expected auto or a cluster's HOST:PORT, got {text[:80]!r}{hint}")


def _add_batch(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="analyse many videos and images into Parquet, on this machine or a Ray cluster",
                       description="Every face of every frame of each input into OUT/faces/*.parquet, one summary "
                                   "row per file in OUT/summary.parquet. Files are split between worker processes "
                                   "(never a file's frames); a rerun skips files already done; a bad file becomes "
                                   "an error row (exit code 1 if any failed).")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders (searched recursively), globs, or "
                                                              ".txt files listing them one per line")
    p.add_argument("--out", required=True, help="results folder")
    p.add_argument("--workers", type=whole_number(1), default=None, help="worker processes (default: one per CPU core)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="auto|ADDRESS", type=_ray_address,
                   help="run on Ray: alone, a local Ray on this machine; 'auto' the cluster `ray start` made here; "
                        "or its address (needs the 'batch' extra)")
    p.add_argument("--annotate", action="store_true", help="also write annotated videos into OUT/videos")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_engine_options(p, threads=False, stream=True)
    _add_baseline_options(p)
    p.set_defaults(func=_cmd_batch)


def _cmd_desktop(args: argparse.Namespace) -> int:
    try:
        from emorec.desktop.app import display_problem, run_app
    except ImportError as exc:  # PySide6 missing, or a system library its Qt plugins need (libEGL, libxkbcommon...)
        print(f"emorec desktop cannot load Qt ({exc}); install the 'desktop' extra: pip install 'emorec[desktop]'",
              file=sys.stderr)
        return 2
    problem = display_problem()
    if problem is not None:
        print(f"emorec desktop: {problem}", file=sys.stderr)
        return 2
    rec = _make_recognizer(args)
    baseline = _load_baseline(args, rec)
    return run_app(rec, source=args.source, out_dir=args.out_dir, smoothing=rec.config.smoothing,
                   baseline=baseline)


def _add_desktop(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("desktop", help="desktop app: live view, probabilities, timeline (needs the 'desktop' extra)",
                       description="Open the PySide6 window; choose a camera, video, image or stream URL in it, "
                                   "or pass --source.")
    p.add_argument("--source", default=None, help="start at once with a webcam index, video or image file, or URL")
    p.add_argument("--out-dir", default="emorec-captures",
                   help="folder for snapshots and recordings (default: %(default)s)")
    _add_engine_options(p, stream=True)
    _add_baseline_options(p)
    p.set_defaults(func=_cmd_desktop)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_train, _add_evaluate, _add_scorecard, _add_export, _add_serve, _add_predict, _add_video, _add_stream,
    _add_batch, _add_desktop, _add_calibrate, _add_export_web,
]


def build_parser() -> argparse.ArgumentParser:
    import emorec

    parser = _Parser(prog="emorec", description="Real-time facial emotion recognition.")
    parser.add_argument("--version", action="version", version=f"emorec {emorec.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from emorec.errors import EmorecError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EmorecError as exc:  # bad input, data, settings or output path: the message says which
        return _fail(args, str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`emorec stream ... | head`): stop quietly, and point stdout at devnull so the
        # flush at exit does not raise again, as Python's signal docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())

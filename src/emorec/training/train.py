"""Training: one readable loop with on-the-fly augmentation, checkpoints every epoch and exact resume.

Run directory layout::

    RUN/last.pt          state after the latest finished epoch (written atomically)
    RUN/best.pt          weights with the best PublicTest accuracy so far
    RUN/metrics.csv      one row per epoch
    RUN/curves.png       loss and accuracy curves
    RUN/config.json      the configuration the run started with
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from emorec.errors import CheckpointError, ConfigError, RunExistsError
from emorec.evaluate import ferplus_score
from emorec.labels import EMOTIONS
from emorec.training.augment import augment_batch, check_augmentations
from emorec.training.checkpoint import (
    CHECKPOINT_KEYS,
    load_checkpoint,
    predict_proba,
    read_checkpoint,
    save_atomic,
)
from emorec.training.data import Fer2013, load_fer2013, load_soft_labels
from emorec.training.export import prior_shift
from emorec.training.models import create_model, get_spec
from emorec.training.models.registry import ModelSpec


@dataclass
class TrainConfig:
    data: str
    out: str = "runs/emonet_wide"
    model: str = "emonet_wide"
    epochs: int = 120
    batch_size: int = 128
    lr: float = 0.05
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    mixup: float = 0.0  # Beta(alpha, alpha) mixing; 0 turns it off
    erasing: float = 0.5  # probability of random erasing per image
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # "bf16" (autocast) or "fp32"; auto picks bf16 where the hardware has it
    limit: int = 0  # use only the first N training images (smoke tests)
    init: str = ""  # start from this checkpoint's weights (fine-tuning); optimiser and schedule start afresh
    # Distil from these checkpoints' models, run on the same augmented batch; several are an ensemble whose
    # softened probabilities are averaged; none turns distillation off.
    teachers: tuple[str, ...] = ()
    distill_weight: float = 0.5  # share of the distillation term in the loss; the rest is the label loss
    distill_temperature: float = 2.0
    teacher_flip: bool = False  # the teacher reads each face and its mirror and averages the two (its flip TTA)
    # Each teacher's logits less this times the log of its own training prior (export's prior correction), so
    # a teacher of FER+ votes, which call a third of the faces neutral, does not hand that prior on; 0: off.
    teacher_prior_correction: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, scored and saved instead; 0: off
    ferplus: str = ""  # Microsoft's fer2013new.csv, joined by row number; "" trains on FER2013 labels alone
    targets: str = "fer2013"  # "fer2013" labels, "ferplus" vote distributions, or a "mix" of the two
    ferplus_weight: float = 0.5  # with targets="mix": the FER+ distribution's share of each target
    photo_augment: bool = False  # also JPEG artefacts, gamma, noise and stronger downscaling, as real crops have
    drop_augment: tuple[str, ...] = ()  # augmentations (augment.AUGMENTATIONS) left out, to measure what each does
    occlusion: float = 0.0  # share of faces covered by a hand, glasses or hair (augment.occlude)
    # Menon et al.'s logit adjustment: the label loss sees logits + tau * log(class prior of the targets), so the
    # logits themselves learn balanced classes and rare ones (disgust, fear) are not drowned; 0: off.
    logit_adjustment: float = 0.0
    select: str = "fer2013"  # which PublicTest labels choose best.pt: "fer2013" or "ferplus" (majority top-1)
    # Another model's probabilities for every row of the data (tools/faceapi_soft_labels.py), blended into each
    # target with this share: knowledge from photos FER2013 lacks, without running that model in the loop.
    soft_labels: str = ""
    soft_label_weight: float = 0.0

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        values = dict(values)
        if "teacher" in values:  # runs recorded before ensembles of teachers held one path, "" for none
            legacy = values.pop("teacher")
            values.setdefault("teachers", [legacy] if legacy else [])
        values["teachers"] = tuple(values.get("teachers", ()))
        values["drop_augment"] = tuple(values.get("drop_augment", ()))
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        return cls(**values)


TARGETS = ("fer2013", "ferplus", "mix")
SELECT = ("fer2013", "ferplus")


def training_targets(data: Fer2013, targets: str, ferplus_weight: float = 0.5, soft_labels: np.ndarray | None = None,
                     soft_label_weight: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The Training rows to learn from and their target distributions (N, 7).

    ``fer2013`` is the one-hot FER2013 label; ``ferplus`` the FER+ vote distribution over the 7 classes
    (contempt, unknown and not-a-face votes dropped; a row with no vote left keeps its FER2013 label);
    ``mix`` blends the two, ``ferplus_weight`` being FER+'s share. Whenever FER+ is joined, rows that it
    calls not a face are left out. ``soft_labels`` (one row of probabilities per row of ``data``, see
    :func:`~emorec.training.data.load_soft_labels`) then take ``soft_label_weight`` of each target.
    """
    if targets not in TARGETS:
        raise ConfigError(f"unknown targets {targets!r}; expected one of {', '.join(TARGETS)}")
    keep = data.split_mask("Training")
    one_hot = np.eye(7, dtype=np.float32)[data.labels]
    if data.ferplus is None:
        if targets != "fer2013":
            raise ConfigError(f"targets={targets!r} needs the FER+ labels (--ferplus PATH)")
        blended = one_hot
    else:
        keep &= ~data.not_a_face()
        votes = data.ferplus_distribution()
        votes = np.where(votes.sum(1, keepdims=True) > 0, votes, one_hot)
        share = {"fer2013": 0.0, "ferplus": 1.0, "mix": ferplus_weight}[targets]
        blended = (1 - share) * one_hot + share * votes
    if soft_labels is not None and soft_label_weight > 0:
        blended = (1 - soft_label_weight) * blended + soft_label_weight * soft_labels
    return np.flatnonzero(keep), blended[keep].astype(np.float32)


def run_targets(config: TrainConfig, data: Fer2013) -> tuple[np.ndarray, np.ndarray]:
    """:func:`training_targets` as a run's config asks for them, its soft labels read from their file."""
    soft = load_soft_labels(config.soft_labels, len(data.labels)) if config.soft_labels else None
    return training_targets(data, config.targets, config.ferplus_weight, soft, config.soft_label_weight)


def training_prior(config: dict) -> np.ndarray:
    """The class frequencies (7,) of the targets a run learnt from (its saved ``TrainConfig`` as a dict)."""
    saved = TrainConfig.from_dict(config)
    _, targets = run_targets(saved, load_fer2013(saved.data, ferplus=saved.ferplus or None))
    return targets.mean(0)


def checkpoint_prior(checkpoint: dict, source: str | Path) -> np.ndarray:
    """The class prior a checkpoint's model learnt: an exported model carries it, since rebuilding it from the
    run's config needs that run's training data."""
    carried = checkpoint.get("training_prior")
    if carried is not None:
        return np.asarray(carried, np.float64)
    if not checkpoint.get("config"):
        raise CheckpointError(f"{source}: holds no record of its run, so the class prior it learnt is unknown")
    return training_prior(checkpoint["config"])


# OneCycleLR's warm-up and its decay each need a step beyond their first (it divides by their lengths minus one).
MIN_STEPS = 3


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        # PyTorch would fail only at the first tensor moved there, after the data had loaded, in a traceback.
        raise ConfigError(f"--device {name}: PyTorch finds no CUDA GPU here (torch {torch.__version__}"
                          f"{', built without CUDA' if torch.version.cuda is None else ''}); use --device cpu or auto")
    return torch.device(name)


def _use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "auto":
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported()
        # Fast on CPUs with AVX512-BF16/AMX (2.7x here); slower than fp32 elsewhere.
        fast_cpu = torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")
        return fast_cpu and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return precision == "bf16"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU capability {torch.backends.cpu.get_cpu_capability()}"


# Settings that may change between a run and its resumption: where the data and the run live, and the device
# and precision it runs with. Any other change would alter the schedule or the data mid-run (a different
# --limit changes the number of steps per epoch, which the saved scheduler cannot follow).
RESUMABLE_CHANGES = ("data", "out", "device", "precision")


def resume_changes(saved: TrainConfig, config: TrainConfig) -> list[str]:
    """The settings that differ from the ones the run started with, as 'name=saved (now new)'."""
    return [f"--{f.name.replace('_', '-')}={getattr(saved, f.name)} (now {getattr(config, f.name)})"
            for f in fields(TrainConfig)
            if f.name not in RESUMABLE_CHANGES and getattr(saved, f.name) != getattr(config, f.name)]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term: KL(teacher || student) at ``temperature``, scaled by its square so
    its gradients keep the label loss's size whatever the temperature."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    log_target=True, reduction="batchmean") * temperature ** 2


def ensemble_logits(teacher_logits: list[torch.Tensor], temperature: float) -> torch.Tensor:
    """Logits whose softmax at ``temperature`` is the mean of the teachers' softmaxes at that temperature, so an
    ensemble's averaged soft targets go through :func:`distillation_loss` like one teacher's."""
    if len(teacher_logits) == 1:
        return teacher_logits[0]
    log_probs = torch.stack([F.log_softmax(t / temperature, dim=1) for t in teacher_logits])
    return temperature * (torch.logsumexp(log_probs, dim=0) - math.log(len(teacher_logits)))


def _load_teacher(path: str, spec: ModelSpec, device: torch.device,
                  prior_correction: float) -> tuple[torch.nn.Module, torch.Tensor]:
    """A frozen teacher and the shift subtracted from its logits (zeros without prior correction)."""
    teacher, teacher_spec, checkpoint = load_checkpoint(path)
    if teacher_spec.preprocessing != spec.preprocessing:
        raise ConfigError(f"teacher {path} ({teacher_spec.name}) preprocesses faces differently from {spec.name}")
    for param in teacher.parameters():
        param.requires_grad_(False)
    shift = (prior_shift(checkpoint_prior(checkpoint, path), prior_correction) if prior_correction
             else np.zeros(len(EMOTIONS)))
    return teacher.to(device).to(memory_format=torch.channels_last), torch.from_numpy(shift).float().to(device)


# ---------------------------------------------------------------- the loop


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train ``config.model`` on FER2013 Training, choosing the best epoch on PublicTest. Returns the run dir."""
    out = Path(config.out)
    last_path = out / "last.pt"
    if last_path.exists() and not resume:
        raise RunExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if config.select not in SELECT:
        raise ConfigError(f"unknown select {config.select!r}; expected one of {', '.join(SELECT)}")
    if config.select == "ferplus" and not config.ferplus:
        raise ConfigError("select='ferplus' needs the FER+ labels (--ferplus PATH)")
    check_augmentations(config.drop_augment)
    device = _pick_device(config.device)
    spec = get_spec(config.model)
    data = load_fer2013(config.data, ferplus=config.ferplus or None)
    if bool(config.soft_label_weight) != bool(config.soft_labels):
        raise ConfigError("soft labels need both --soft-labels PATH and a --soft-label-weight above 0")
    rows, train_t = run_targets(config, data)
    if config.limit:
        rows, train_t = rows[:config.limit], train_t[:config.limit]
    if config.epochs * math.ceil(len(rows) / config.batch_size) < MIN_STEPS:
        raise ConfigError(f"{len(rows)} images in batches of {config.batch_size} for {config.epochs} epoch(s) make "
                          f"fewer than {MIN_STEPS} steps, too few for the learning-rate schedule: raise --limit or "
                          "--epochs, or lower --batch-size")
    train_x, train_y = data.images[rows], data.labels[rows]
    val_x, val_y = data.split("PublicTest")
    val_ferplus = data.ferplus_majority()[data.split_mask("PublicTest")] if data.ferplus is not None else None

    torch.manual_seed(config.seed)
    model = create_model(config.model)
    if config.init:
        init_model, init_spec, _ = load_checkpoint(config.init)
        if init_spec != spec:
            raise ConfigError(f"{config.init} holds a {init_spec.name} model, not {spec.name}")
        model.load_state_dict(init_model.state_dict())
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                                weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / config.batch_size)
    # 10% warm-up; OneCycleLR divides by the warm-up's length minus one, so tiny runs get 2 steps at least.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, epochs=config.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=max(0.1, 2 / (config.epochs * steps_per_epoch)), anneal_strategy="cos", div_factor=10,
        final_div_factor=100)
    teachers, teacher_shifts = [], []
    for path in config.teachers:
        teacher, shift = _load_teacher(path, spec, device, config.teacher_prior_correction)
        teachers.append(teacher)
        teacher_shifts.append(shift)
    out.mkdir(parents=True, exist_ok=True)  # only once the data, the init and the teachers are known to be good
    # The average starts as a copy of the weights; batch-norm statistics are averaged with them.
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema), use_buffers=True)
           if config.ema else None)
    scored = ema.module if ema is not None else model  # the weights PublicTest scores and best.pt keeps
    generator = torch.Generator().manual_seed(config.seed)
    start_epoch, best_acc, history = 0, 0.0, []

    if resume and last_path.exists():
        ckpt = read_checkpoint(last_path, (*CHECKPOINT_KEYS, "optimizer", "scheduler", "ema", "generator",
                                           "torch_rng", "epoch", "best_acc", "history", "config"), device)
        changed = resume_changes(TrainConfig.from_dict(ckpt["config"]), config)
        if changed:
            raise ConfigError(f"{last_path} was started with {', '.join(changed)}; resume with the same settings")
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        start_epoch, best_acc, history = ckpt["epoch"], ckpt["best_acc"], ckpt["history"]
        print(f"resuming {out} at epoch {start_epoch + 1}/{config.epochs} (best PublicTest {best_acc:.4f})")
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2))

    use_bf16 = _use_bf16(config.precision, device)
    print(f"training {config.model} on {device} ({_device_name(device)}), "
          f"{'bf16 autocast' if use_bf16 else 'fp32'}, {torch.get_num_threads()} CPU threads", flush=True)
    train_images = torch.from_numpy(train_x)
    train_labels = torch.from_numpy(train_y)
    train_targets = torch.from_numpy(train_t)
    dropped = frozenset(config.drop_augment)
    # A class absent from a tiny --limit subset gets a small prior rather than log(0).
    log_prior = torch.log(torch.from_numpy(train_t.mean(0)).clamp_min(1e-4)).to(device)

    def checkpoint(epoch: int) -> dict:
        return {"model_name": config.model, "spec": spec.to_dict(), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                "epoch": epoch, "best_acc": best_acc, "history": history, "config": asdict(config)}

    epoch = start_epoch
    try:
        for epoch in range(start_epoch, config.epochs):
            model.train()
            started = time.time()
            order = torch.randperm(len(train_images), generator=generator)
            total_loss, seen, correct = 0.0, 0, 0
            bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch",
                       dynamic_ncols=True, mininterval=2.0)
            for step in bar:
                idx = order[step * config.batch_size:(step + 1) * config.batch_size]
                x = augment_batch(train_images[idx], spec, generator, erasing=config.erasing,
                                  photo=config.photo_augment, occlusion=config.occlusion, drop=dropped)
                x = x.to(device).contiguous(memory_format=torch.channels_last)
                y = train_labels[idx].to(device)
                target = train_targets[idx].to(device)
                if config.mixup > 0:
                    lam = float(np.random.default_rng(int(torch.randint(2**31, (1,), generator=generator)))
                                .beta(config.mixup, config.mixup))
                    perm = torch.randperm(len(x), generator=generator).to(device)
                    x = lam * x + (1 - lam) * x[perm]
                    target = lam * target + (1 - lam) * target[perm]
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model(x)
                adjusted = logits.float() + config.logit_adjustment * log_prior
                loss = F.cross_entropy(adjusted, target, label_smoothing=config.label_smoothing)
                if teachers:
                    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                        teacher_logits = [teacher(x).float() for teacher in teachers]
                        if config.teacher_flip:
                            teacher_logits = [(t + teacher(torch.flip(x, dims=[3])).float()) / 2
                                              for t, teacher in zip(teacher_logits, teachers, strict=True)]
                    teacher_logits = [t - shift for t, shift in zip(teacher_logits, teacher_shifts, strict=True)]
                    temperature = config.distill_temperature
                    soft = distillation_loss(logits.float(), ensemble_logits(teacher_logits, temperature), temperature)
                    loss = (1 - config.distill_weight) * loss + config.distill_weight * soft
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                if ema is not None:
                    ema.update_parameters(model)
                total_loss += loss.item() * len(y)
                seen += len(y)
                correct += (logits.argmax(1) == y).sum().item()
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
            bar.close()
            val_probs = predict_proba(scored, val_x, spec, device=device)
            val_acc = float((val_probs.argmax(1) == val_y).mean())
            val_loss = float(-np.log(val_probs[np.arange(len(val_y)), val_y] + 1e-9).mean())
            row = {"epoch": epoch + 1, "train_loss": total_loss / seen, "train_acc": correct / seen,
                   "val_loss": val_loss, "val_acc": val_acc, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": time.time() - started}
            if val_ferplus is not None:
                row["val_ferplus_acc"] = ferplus_score(val_probs, val_ferplus)["accuracy"]
            history.append(row)
            selected = row["val_ferplus_acc"] if config.select == "ferplus" else val_acc
            if selected > best_acc:
                best_acc = selected
                save_atomic({"model_name": config.model, "spec": spec.to_dict(), "model": scored.state_dict(),
                             "epoch": epoch + 1, "val_acc": val_acc, "config": asdict(config)}, out / "best.pt")
            save_atomic(checkpoint(epoch + 1), last_path)
            _write_metrics(history, out)
            print(f"epoch {epoch + 1}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
                  f"PublicTest loss {val_loss:.4f} acc {val_acc:.4f}"
                  + (f" FER+ {row['val_ferplus_acc']:.4f}" if val_ferplus is not None else "")
                  + f" (best {config.select} {best_acc:.4f}) | {row['seconds']:.0f}s",
                  flush=True)
    except KeyboardInterrupt:
        # The partial epoch is dropped: last.pt holds the last finished epoch, which --resume continues.
        print(f"\ninterrupted during epoch {epoch + 1}; {last_path} holds epoch {len(history)}; "
              f"continue with --resume", flush=True)
        raise
    return out


def _write_metrics(history: list[dict], out: Path) -> None:
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    # Markers: a line needs two epochs, and a run of one (or a resumed run's first) must still show its point.
    style = {"marker": "o", "markersize": 4}
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train", **style)
    ax_loss.plot(epochs, [r["val_loss"] for r in history], label="PublicTest", **style)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], label="train (augmented)", **style)
    ax_acc.plot(epochs, [r["val_acc"] for r in history], label="PublicTest", **style)
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)


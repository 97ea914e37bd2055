"""Augmentation: what the engine's crops of real photos and webcams do to a face, applied to FER2013's faces.

Each augmentation has a name in ``AUGMENTATIONS`` so that a run can leave one out (``TrainConfig.drop_augment``,
``emorec train --drop-augment NAME``) and what it does can be measured. A left-out augmentation still draws its
random numbers, so the others see exactly the draws of a run that keeps everything, and the difference between
two runs is that augmentation alone.

``occlude`` (hands, glasses, hair) works on the uint8 48x48 faces before they are normalised and warped, so
the occluder moves with the face; it is off unless a run asks for it (``TrainConfig.occlusion``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from emorec.errors import ConfigError
from emorec.training.checkpoint import normalize
from emorec.training.models.registry import ModelSpec

AUGMENTATIONS = {
    "geometry": "rotation up to 15 degrees, zoom +-15% and shift up to 12%: the detector's box jitter and the "
                "roll left after eye levelling",
    "flip": "mirror half of the faces",
    "exposure": "contrast and brightness jitter, and with --photo-augment a gamma curve",
    "blur": "downscale and upscale again (2x; 2-4x with --photo-augment): small or out-of-focus faces",
    "jpeg": "re-encode 30% of faces as JPEG at quality 25-90 (with --photo-augment)",
    "noise": "sensor noise up to 4% of the pixel range (with --photo-augment)",
    "erasing": "a rectangle of noise over 2-25% of the face (--erasing is its probability)",
}


def check_augmentations(names: Iterable[str]) -> None:
    """Refuse names that are not in ``AUGMENTATIONS``, listing the known ones."""
    unknown = set(names) - set(AUGMENTATIONS)
    if unknown:
        raise ConfigError(f"unknown augmentation(s) {', '.join(sorted(unknown))}; expected some of "
                          f"{', '.join(AUGMENTATIONS)}")


def _uniform(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator)


def jpeg_artefacts(images: np.ndarray, chance: float, generator: torch.Generator) -> np.ndarray:
    """Re-encode about ``chance`` of the uint8 (N, 48, 48) faces as JPEG at quality 25-90, as photos and
    webcam streams arrive; the rest are returned untouched."""
    import cv2

    out = images.copy()
    chosen = _uniform(generator, len(images)) < chance
    qualities = (25 + 65 * _uniform(generator, len(images))).int()
    for i in torch.nonzero(chosen).flatten().tolist():
        _, encoded = cv2.imencode(".jpg", images[i], [cv2.IMWRITE_JPEG_QUALITY, int(qualities[i])])
        out[i] = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return out


OCCLUDERS = ("hand", "glasses", "hair")


def occlude(images: np.ndarray, chance: float, generator: torch.Generator) -> np.ndarray:
    """Cover about ``chance`` of the uint8 (N, 48, 48) faces with one of ``OCCLUDERS``, drawn where it falls on
    a FER2013-framed face: a hand over the mouth, cheek or chin, in the face's own skin tone; glasses or
    sunglasses at eye height; hair across the forehead or down one side. Edges are soft, as a blurred
    occluder's would be; the rest of the faces are returned untouched."""
    import cv2

    out = images.copy()
    size = images.shape[-1]
    chosen = torch.nonzero(_uniform(generator, len(images)) < chance).flatten().tolist()
    for i in chosen:
        r = _uniform(generator, 12).tolist()  # 8 are used; 12 keeps the recorded --occlusion runs reproducible
        kind = OCCLUDERS[int(r[0] * len(OCCLUDERS))]
        mask = np.zeros((size, size), np.float32)
        face = out[i].astype(np.float32)
        skin = float(np.median(face[size // 4:3 * size // 4, size // 4:3 * size // 4]))
        if kind == "hand":
            centre = (int(8 + 32 * r[1]), int(32 + 16 * r[2]))
            axes = (int(10 + 8 * r[3]), int(7 + 5 * r[4]))
            cv2.ellipse(mask, centre, axes, -40 + 80 * r[5], 0, 360, 1.0, -1)
            # Skin in the face's own tone, lit from above.
            fill = np.clip(skin + (r[6] * 2 - 1) * 30 + np.linspace(15, -15, size)[:, None], 0, 255)
        elif kind == "glasses":
            eye_y = int(16 + 6 * r[1])
            half_gap = int(8 + 3 * r[2])
            radius = int(6 + 3 * r[3])
            sunglasses = r[4] < 0.3
            thickness = -1 if sunglasses else 1 + int(r[5] < 0.5)
            for x in (size // 2 - half_gap, size // 2 + half_gap):
                cv2.ellipse(mask, (x, eye_y), (radius, int(radius * 0.75)), 0, 0, 360, 1.0, thickness)
            cv2.line(mask, (size // 2 - half_gap + radius, eye_y), (size // 2 + half_gap - radius, eye_y), 1.0, 1)
            fill = np.full((size, size), 10 + 60 * r[6], np.float32)
            mask *= 0.85 if sunglasses else 1.0
        else:  # hair: a fringe with a wavy edge, or a strand down one side
            if r[1] < 0.7:
                edge = 8 + 12 * r[2] + 3 * np.sin(np.arange(size) * (0.2 + 0.3 * r[3]) + 6.3 * r[4])
                mask[np.arange(size)[:, None] < edge[None, :]] = 1.0
            else:
                width = 6 + 8 * r[2] + 2 * np.sin(np.arange(size) * (0.2 + 0.3 * r[3]) + 6.3 * r[4])
                columns = np.arange(size)[None, :] if r[5] < 0.5 else size - 1 - np.arange(size)[None, :]
                mask[columns < width[:, None]] = 1.0
            fill = np.clip(15 + 70 * r[6] + (np.asarray(_uniform(generator, size, size)) * 2 - 1) * 12, 0, 255)
        mask = cv2.GaussianBlur(mask, (0, 0), 0.6 + 0.8 * r[7])
        out[i] = np.clip(face * (1 - mask) + fill * mask, 0, 255).astype(np.uint8)
    return out


def augment_batch(faces: torch.Tensor, spec: ModelSpec, generator: torch.Generator, *, erasing: float,
                  photo: bool = False, occlusion: float = 0.0, drop: frozenset[str] = frozenset()) -> torch.Tensor:
    """A training batch from uint8 (N, 48, 48) faces: occluders (``occlusion`` > 0), JPEG artefacts (``photo``),
    the model's normalisation, then :func:`augment`. Returns (N, 1, input size, input size)."""
    if occlusion > 0:
        faces = torch.from_numpy(occlude(faces.numpy(), occlusion, generator))
    if photo:
        compressed = jpeg_artefacts(faces.numpy(), 0.3, generator)
        faces = faces if "jpeg" in drop else torch.from_numpy(compressed)
    return augment(normalize(faces, spec), spec.input_size, erasing, generator, photo=spec if photo else None,
                   drop=drop)


def augment(x: torch.Tensor, size: int, erasing: float, generator: torch.Generator,
            photo: ModelSpec | None = None, drop: frozenset[str] = frozenset()) -> torch.Tensor:
    """Random crop, scale, small rotation, shift and flip in one affine warp, contrast/brightness jitter,
    occasional low resolution, then random erasing; the augmentations named in ``drop`` are left out.

    ``x`` is a normalised (N, 1, 48, 48) batch; the result is (N, 1, size, size). With ``photo`` (the model's
    spec, whose normalisation the gamma curve must undo) faces also get a gamma curve, sensor noise and a
    downscale of 2-4x, as crops of real photos and webcams do.
    """
    check_augmentations(drop)
    n = x.shape[0]
    rand = lambda *shape: _uniform(generator, *shape)  # noqa: E731
    angle = (rand(n) * 2 - 1) * math.radians(15)
    # The output samples a size/48 window of the face, scaled by +-15%, so crops vary in zoom too.
    scale = (size / x.shape[-1]) * (0.85 + 0.3 * rand(n))
    flip = torch.where(rand(n) < 0.5, -1.0, 1.0)
    shift = (rand(n, 2) * 2 - 1) * 0.12
    if "geometry" in drop:
        angle, scale, shift = torch.zeros(n), torch.full((n,), size / x.shape[-1]), torch.zeros(n, 2)
    if "flip" in drop:
        flip = torch.ones(n)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    exposure = "exposure" not in drop
    if photo is not None:
        # Exposure curves act on pixel values, so the gamma is applied between un- and re-normalising.
        pixels = (out * photo.std + photo.mean).clamp(0, 1)
        gamma = torch.exp((rand(n) * 2 - 1) * math.log(1.6)).view(-1, 1, 1, 1)
        if exposure:
            out = (pixels ** gamma - photo.mean) / photo.std
    # Webcams and photos in the wild differ from FER2013 in contrast, exposure and sharpness.
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (0.6 + 0.8 * rand(n)).view(-1, 1, 1, 1)
    brightness = ((rand(n) * 2 - 1) * 0.4).view(-1, 1, 1, 1)  # +-0.1 of the pixel range, in normalised units
    if exposure:
        out = (out - mean) * contrast + mean + brightness
    blurry = (rand(n) < (0.3 if photo is not None else 0.2)).view(-1, 1, 1, 1)
    factor = 2 if photo is None else int(2 + 3 * float(rand(1)))  # one factor a batch: 2, 3 or 4
    if "blur" not in drop:
        low_res = F.interpolate(F.interpolate(out, size=size // factor, mode="area"), size=size, mode="bilinear",
                                align_corners=False)
        out = torch.where(blurry, low_res, out)
    if photo is not None:
        sigma = (rand(n) * 0.04 / photo.std).view(-1, 1, 1, 1)  # up to 4% of the pixel range
        noise = torch.randn(out.shape, generator=generator) * sigma
        if "noise" not in drop:
            out = out + noise
    if erasing > 0:
        # One rectangle per chosen image, 2-25% of the area, filled with noise.
        area = size * size * (0.02 + 0.23 * rand(n))
        aspect = torch.exp((rand(n) * 2 - 1) * math.log(3))
        h = torch.sqrt(area * aspect).clamp(1, size - 1).long()
        w = torch.sqrt(area / aspect).clamp(1, size - 1).long()
        top = (rand(n) * (size - h)).long()
        left = (rand(n) * (size - w)).long()
        rows = torch.arange(size).view(1, size, 1)
        cols = torch.arange(size).view(1, 1, size)
        mask = ((rows >= top.view(-1, 1, 1)) & (rows < (top + h).view(-1, 1, 1))
                & (cols >= left.view(-1, 1, 1)) & (cols < (left + w).view(-1, 1, 1)))
        mask &= (rand(n) < erasing).view(-1, 1, 1)
        noise = torch.randn(out.shape, generator=generator)
        if "erasing" not in drop:
            out = torch.where(mask.unsqueeze(1), noise, out)
    return out

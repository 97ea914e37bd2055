"""Training augmentation on real FER2013 faces: photo-like artefacts, each named augmentation left out alone,
and occluders that cover part of a face, never all of it."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training extra (torch) not installed")

from emorec.training.augment import AUGMENTATIONS, augment, augment_batch, jpeg_artefacts, occlude  # noqa: E402
from emorec.training.checkpoint import normalize  # noqa: E402
from emorec.training.models import get_spec  # noqa: E402


@pytest.fixture(scope="module")
def faces(fer2013) -> torch.Tensor:
    return torch.from_numpy(fer2013.images[:64].copy())


def _batch(faces: torch.Tensor, seed: int, drop=frozenset(), occlusion: float = 0.0):
    generator = torch.Generator().manual_seed(seed)
    batch = augment_batch(faces, get_spec("emonet_fast"), generator, erasing=0.5, photo=True, occlusion=occlusion,
                          drop=frozenset(drop))
    return batch, generator.get_state()


def test_photo_augmentation_changes_faces_as_photos_do(faces):
    spec = get_spec("emonet_fast")
    images = faces.numpy()
    compressed = jpeg_artefacts(images, 1.0, torch.Generator().manual_seed(0))
    assert compressed.shape == images.shape and compressed.dtype == np.uint8
    assert 0 < np.abs(compressed.astype(int) - images).mean() < 20  # artefacts, not a different face
    x = normalize(faces, spec)
    plain = augment(x, spec.input_size, 0.0, torch.Generator().manual_seed(1))
    photo = augment(x, spec.input_size, 0.0, torch.Generator().manual_seed(1), photo=spec)
    assert photo.shape == plain.shape and torch.isfinite(photo).all()
    assert not torch.allclose(photo, plain)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_leaving_one_augmentation_out_changes_that_one_alone(faces, name):
    full, full_state = _batch(faces, seed=5)
    without, state = _batch(faces, seed=5, drop={name})
    # The same random draws are made, so the next batch of a run is unchanged and two runs differ by this alone.
    assert torch.equal(state, full_state)
    assert not torch.equal(without, full)
    # Every other augmentation still acts: leaving out one more changes the batch again.
    other = next(n for n in AUGMENTATIONS if n != name)
    assert not torch.equal(_batch(faces, seed=5, drop={name, other})[0], without)


def test_with_every_augmentation_left_out_the_batch_no_longer_depends_on_the_seed(faces):
    first, _ = _batch(faces, seed=1, drop=set(AUGMENTATIONS))
    second, _ = _batch(faces, seed=2, drop=set(AUGMENTATIONS))
    assert torch.equal(first, second)
    assert first.shape == (64, 1, 40, 40)


def test_unknown_augmentation_is_refused(faces):
    with pytest.raises(ValueError, match="unknown augmentation"):
        _batch(faces, seed=1, drop={"blurr"})


def test_occluders_cover_part_of_every_chosen_face_and_leave_the_rest(fer2013):
    images = fer2013.images[:200]
    covered = occlude(images, 1.0, torch.Generator().manual_seed(3))
    changed = (np.abs(covered.astype(int) - images.astype(int)) > 8).mean(axis=(1, 2))
    assert np.all(changed < 0.6), "an occluder hid most of a face"
    assert np.mean(changed > 0.02) > 0.9, "most faces should carry a visible occluder"
    assert np.array_equal(occlude(images, 0.0, torch.Generator().manual_seed(3)), images)
    # About the chance asked for is covered.
    some = occlude(images, 0.3, torch.Generator().manual_seed(4))
    assert 0.18 < np.mean(np.any(some != images, axis=(1, 2))) < 0.42

"""Every registered architecture builds, takes its input size and returns 7 logits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training extra (torch) not installed")

from emorec.models import DEFAULT_MODEL, create_model, get_spec, list_models  # noqa: E402


@pytest.mark.parametrize("name", list_models())
def test_model_forward_shape(name):
    spec = get_spec(name)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.zeros(3, 1, spec.input_size, spec.input_size))
    assert out.shape == (3, 7)


def test_registry_has_the_original_designs_and_the_default():
    assert {"shallow", "deep", DEFAULT_MODEL} <= set(list_models())
    convs = [m for m in create_model("deep").modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 5), (128, 3), (512, 3), (512, 3)]
    convs = [m for m in create_model("shallow").modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 3), (128, 5)]
    n_params = sum(p.numel() for p in create_model(DEFAULT_MODEL).parameters())
    assert n_params < 5_000_000


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean deep"):
        create_model("dep")

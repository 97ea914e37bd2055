"""Every registered architecture builds, takes its input size and returns 7 logits."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="training extra (torch) not installed")

from emorec.classifier import SHIPPED_MODELS  # noqa: E402
from emorec.training.models import create_model, get_spec, list_models  # noqa: E402


@pytest.mark.parametrize("name", list_models())
def test_model_forward_shape(name):
    spec = get_spec(name)
    model = create_model(name).eval()
    with torch.no_grad():
        out = model(torch.zeros(3, 1, spec.input_size, spec.input_size))
    assert out.shape == (3, 7)


def test_registry_has_the_original_designs_and_the_shipped_family():
    assert {"shallow", "deep", *SHIPPED_MODELS} <= set(list_models())
    convs = [m for m in create_model("deep").modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 5), (128, 3), (512, 3), (512, 3)]
    convs = [m for m in create_model("shallow").modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 3), (128, 5)]
    for name in SHIPPED_MODELS:
        assert sum(p.numel() for p in create_model(name).parameters()) < 5_000_000, name


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean deep"):
        create_model("dep")


def test_graph_cost_counts_what_the_network_computes(tmp_path):
    from torch.utils.flop_counter import FlopCounterMode

    from emorec.training.export import export_onnx, graph_cost

    macs = {}
    for name, width in (("emonet_fast", 24), ("emonet_wide", 48)):
        spec, model = get_spec(name), create_model(name).eval()
        assert model.features[0][0].out_channels == width
        with FlopCounterMode(display=False) as flops, torch.no_grad():
            model(torch.zeros(1, 1, spec.input_size, spec.input_size))
        export_onnx([model], spec, tmp_path / f"{name}.onnx")
        cost = graph_cost(tmp_path / f"{name}.onnx")
        macs[name] = cost["macs_per_face"]
        assert cost["macs_per_face"] == flops.get_total_flops() // 2  # torch counts a multiply-add as 2 flops
        # Batch norm folds into the convolutions on export: its scale and shift become one bias per channel.
        assert cost["parameters"] == pytest.approx(sum(p.numel() for p in model.parameters()), rel=0.01)
    assert 3.5 < macs["emonet_wide"] / macs["emonet_fast"] < 4.5  # half the channels: about a quarter of the work

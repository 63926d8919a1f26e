"""FlowNet2's structure against the official key list, and its input contract."""
from pathlib import Path

import pytest
import torch

from flownet2.errors import Flownet2Error
from flownet2.model.checkpoint import stand_in_state_dict
from flownet2.model.networks import FlowNet2

TSV = Path(__file__).resolve().parent / "data" / "flownet2_state_dict.tsv"


@pytest.fixture(scope="module")
def model():
    m = FlowNet2().eval()
    m.load_state_dict(stand_in_state_dict(m, 0))
    return m


def _official_keys():
    if not TSV.exists():
        pytest.skip(f"{TSV} not found (needs the shared/ reference folder beside the repo)")
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line.strip()]
    return {key: tuple(int(d) for d in shape.split("x")) for key, shape in rows}


def test_state_dict_matches_official_key_list(model):
    official = _official_keys()
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert mine == official
    assert len(mine) == 220
    assert sum(v.numel() for v in model.state_dict().values()) == 162_518_834
    assert not list(model.buffers())


@pytest.mark.parametrize("h,w", [(100, 128), (64, 96), (0, 64)])
def test_rejects_sizes_not_multiple_of_64(model, h, w):
    x = torch.zeros(1, 3, h, w)
    with pytest.raises(Flownet2Error, match="multiples of 64"):
        model(x, x)


def _pair(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(b, 3, h, w, generator=g) * 0.3
    x2 = torch.roll(x1, (1, 3), dims=(2, 3)) + 0.05 * torch.randn(b, 3, h, w, generator=g)
    return x1, x2


def test_output_shape_and_batch_independence(model):
    # FlowNetC runs both frames as one doubled batch; samples must not leak into each other.
    x1, x2 = _pair(3, 64, 128)
    with torch.no_grad():
        both = model(x1, x2)
        one = model(x1[1:2], x2[1:2])
    assert both.shape == (3, 2, 64, 128)
    # Batch 3 and batch 1 take different convolution kernels: fp32 rounding alone moves these flows by
    # ~3e-4 px (against fp64), while a sample leaking into another moves them by pixels.
    assert (both[1:2] - one).abs().max().item() < 1e-3
    assert both.abs().max().item() > 2.0  # stand-in weights produce flows of pixels, not noise


def test_correlation_modes_give_same_flow(model):
    x1, x2 = _pair(1, 128, 192, seed=1)
    with torch.no_grad():
        model.corr_mode = "slices"
        a = model(x1, x2)
        model.corr_mode = "matmul"
        b = model(x1, x2)
    # The ops agree to ~1e-6 (test_ops); through five sub-networks that stays far below 1e-3 px.
    assert (a - b).abs().max().item() <= 1e-3

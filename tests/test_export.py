"""PyTorch vs ONNX Runtime on exported models (both correlation forms), through the real CLI."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from flownet2.model.checkpoint import load_model, stand_in_state_dict
from flownet2.model.networks import FlowNet2
from flownet2.model.provenance import STAND_IN_BANNER, is_stand_in, weights_label

REPO = Path(__file__).resolve().parents[1]
B, H, W = 2, 128, 192


def _cli(*args, cwd):
    run = subprocess.run([sys.executable, str(REPO / "Flownet2_pth2onnx.py"), *args], cwd=cwd,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Default export with stand-in weights (bare file name), then a slices export of the same
    weights read back from an official-format checkpoint. About 30 s on 2 cores: two exports of
    620 MB models, which every test of this module reads."""
    work = tmp_path_factory.mktemp("export")
    log = _cli("--init", "random", "--seed", "3", "--batch_size", str(B), "--height", str(H),
               "--width", str(W), "--out_path", "flownet2_bs2.onnx", "--save-checkpoint", "ckpt/fn2.pth.tar",
               cwd=work)
    from_file = _cli("--input_path", "ckpt/fn2.pth.tar", "--batch_size", str(B), "--height", str(H), "--width",
                     str(W), "--ascend-compat", "--out_path", "sub/dir/slices.onnx", cwd=work)
    return work, log, from_file


@pytest.fixture(scope="module")
def reference():
    model = FlowNet2().eval()
    model.load_state_dict(stand_in_state_dict(model, 3))
    g = torch.Generator().manual_seed(11)
    x1 = torch.randn(B, 3, H, W, generator=g) * 0.3
    x2 = torch.roll(x1, (2, -4), dims=(2, 3)) + 0.05 * torch.randn(B, 3, H, W, generator=g)
    with torch.no_grad():
        flow = model(x1, x2).numpy()
    assert np.abs(flow).max() > 5.0  # flows of several pixels: the warps really move
    return x1.numpy(), x2.numpy(), flow


def _run(path, x1, x2):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["flow"], {"x1": x1, "x2": x2})[0]


def test_default_export_contract(exported):
    work, log, _ = exported
    path = work / "flownet2_bs2.onnx"
    proto = onnx.load(path)
    onnx.checker.check_model(proto)
    io = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in
          list(proto.graph.input) + list(proto.graph.output)}
    assert io == {"x1": [B, 3, H, W], "x2": [B, 3, H, W], "flow": [B, 2, H, W]}
    assert proto.opset_import[0].version == 11
    ops = {n.op_type for n in proto.graph.node}
    # No GridSample (opset 16); no GatherElements or Tile (not in the graph ATC compiled for the 310P);
    # no nearest Resize (runtimes read its rounding differently): only the two bilinear x4 upsamplings.
    assert not ops & {"GridSample", "GatherElements", "Tile"}
    resizes = [n for n in proto.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 2 and all(a.s == b"linear" for n in resizes for a in n.attribute if a.name == "mode")
    assert len(proto.graph.node) <= 800
    assert weights_label(path).startswith("stand-in:seed=3 tensors:")
    assert "nodes" in log and "MatMul" in log and "MiB" in log and "STAND-IN" in log


@pytest.mark.parametrize("name", ["flownet2_bs2.onnx", "sub/dir/slices.onnx"])
def test_onnxruntime_matches_pytorch(exported, reference, name):
    work, _, _ = exported
    x1, x2, flow = reference
    diff = np.abs(_run(work / name, x1, x2) - flow).max()
    assert diff <= 1e-3


def test_export_from_a_saved_stand_in_checkpoint_stays_stand_in(exported, tmp_path):
    """`--init random --seed 3 --save-checkpoint F`, then the export from F: labelled stand-in, the banner
    printed (a file name makes nothing official); a file whose tensors were changed after saving is
    still stand-in, and says so."""
    work, _, from_file = exported
    label = weights_label(work / "sub/dir/slices.onnx")
    assert label == weights_label(work / "flownet2_bs2.onnx")  # same tensors, same label
    assert is_stand_in(label) and label.startswith("stand-in:seed=3 tensors:")
    assert STAND_IN_BANNER in from_file
    raw = torch.load(work / "ckpt" / "fn2.pth.tar", weights_only=True)
    raw["state_dict"]["flownetc.conv1.0.bias"] += 1
    torch.save(raw, tmp_path / "tuned.pth.tar", _use_new_zipfile_serialization=False)
    _, tuned = load_model(str(tmp_path / "tuned.pth.tar"))
    assert tuned.startswith("stand-in:seed=3,changed-after-saving tensors:") and is_stand_in(tuned)


def test_ascend_compat_export_has_no_matmul(exported):
    work, _, _ = exported
    proto = onnx.load(work / "sub/dir/slices.onnx", load_external_data=False)
    ops = {n.op_type for n in proto.graph.node}
    assert "MatMul" not in ops and not ops & {"GatherElements", "Tile"}
    assert sum(n.op_type == "ReduceSum" for n in proto.graph.node) >= 441  # the 441 correlation windows


def test_ascend_compat_refuses_matmul(tmp_path):
    run = subprocess.run([sys.executable, str(REPO / "Flownet2_pth2onnx.py"), "--init", "random", "--ascend-compat",
                          "--correlation", "matmul", "--out_path", "x.onnx"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 2 and "--ascend-compat uses the slices correlation" in run.stderr
    assert not (tmp_path / "x.onnx").exists()

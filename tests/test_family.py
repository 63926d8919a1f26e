"""The smaller FlowNet2 family members (FlowNet2-C, -S, -SD, -CS, -CSS) through every stage.

The reference is NVIDIA's own code: the patched upstream's models.FlowNet2C etc. (tests/upstream.py), on
the CPU with the same seeded weights, fed the raw frames it normalises itself; ours gets the frames
normalised by the toolkit's preprocessing. One real-frame size (64x128) at batch 2 per member.
Exporting five members (40-117M parameters each) is most of this module's ~50 s; FlowNet2-C's Ascend road
(441-slice correlation, fix_onnx, a second save) is 18 s of it.
"""
import argparse
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from upstream import frame_batches, imported_models, patched_checkout

from flownet2.errors import Flownet2Error
from flownet2.model import family, provenance
from flownet2.model.checkpoint import checkpoint_arch, load_model, save_checkpoint
from flownet2.model.export import example_inputs, export_onnx
from flownet2.onnx.atc_ops import load_supported_ops, unsupported_nodes
from flownet2.onnx.fix import fix_model, save_onnx
from flownet2.runtime import torch_backend as tb
from flownet2.runtime.sessions import open_model

ROOT = Path(__file__).resolve().parents[1]
TSV = ROOT / "tests" / "data" / "flownet2_state_dict.tsv"
MEMBERS = ("c", "s", "sd", "cs", "css")
UPSTREAM_CLASS = {"c": "FlowNet2C", "s": "FlowNet2S", "sd": "FlowNet2SD", "cs": "FlowNet2CS", "css": "FlowNet2CSS"}
H, W, BATCH = 64, 128, 2
SEED = 5
TOL_PX = 1e-4


@pytest.fixture(scope="module")
def upstream_models(tmp_path_factory):
    with imported_models(patched_checkout(tmp_path_factory)) as models:
        yield models


@pytest.fixture(scope="module")
def frames():
    return frame_batches(H, W, BATCH)


def _nvidia_flow(upstream_models, arch, state, raw):
    # Built on 'meta' (upstream's random init of 40-160M parameters is replaced anyway), then given the weights.
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        theirs = getattr(upstream_models, UPSTREAM_CLASS[arch])(argparse.Namespace(rgb_max=255.0, fp16=False))
    theirs.load_state_dict(state, strict=True, assign=True)  # same keys and shapes as NVIDIA's member, no more
    with torch.no_grad():
        return theirs.eval()(raw).numpy()


@pytest.mark.parametrize("arch", MEMBERS)
def test_member_export_gives_nvidias_flow(arch, upstream_models, frames, tmp_path):
    """Each member: stand-in weights -> ONNX export -> the runner's ONNX Runtime session, against NVIDIA's
    member on the same weights. FlowNet2-C takes the Ascend road: --ascend-compat (slices correlation),
    fix_onnx's rewrites and the ATC op list (the other members' layers are all in FlowNet2-C or FlowNet2,
    whose Ascend road is tested on its own; 3-9 s per member, 18 s for C)."""
    raw, x1, x2 = frames
    ascend = arch == "c"
    model, label = load_model(f"stand-in:{arch}:{SEED}", corr_mode="slices" if ascend else "matmul")
    want = _nvidia_flow(upstream_models, arch, model.state_dict(), raw)
    assert want.shape == (BATCH, 2, H, W) and np.abs(want).max() > 2.0  # flows of pixels: warps really move

    path = tmp_path / "member.onnx"
    proto = export_onnx(model, path, example_inputs(BATCH, H, W), weights_label=label)
    if ascend:
        fixed, report = fix_model(proto)
        assert dict(report)["int64 -> int32"] > 0
        assert unsupported_nodes(fixed, load_supported_ops()) == {}  # fix_onnx --strict's ATC op check
        assert not any(n.op_type == "MatMul" for n in fixed.graph.node)
        save_onnx(fixed, str(path))
    session = open_model(str(path))
    (got,), _ = session.run([x1.numpy(), x2.numpy()])
    err = np.abs(got - want).max()
    print(f"{family.member_name(arch)} {BATCH}x{H}x{W}: max |flow diff| vs NVIDIA {err:.2e} px")
    assert err <= TOL_PX
    assert provenance.label_member(session.label) == family.member_name(arch)
    assert provenance.stand_in_seed(session.label) == SEED


@pytest.mark.parametrize("arch", ["cs"])
def test_member_torch_session_gives_nvidias_flow(arch, upstream_models, frames):
    raw, x1, x2 = frames
    session = open_model(f"stand-in:{arch}:{SEED}", size=(H, W), batch_size=BATCH)
    model, _ = load_model(SEED, arch=arch)
    want = _nvidia_flow(upstream_models, arch, model.state_dict(), raw)
    (got,), _ = session.run([x1.numpy(), x2.numpy()])
    assert np.abs(got - want).max() <= TOL_PX
    assert provenance.label_member(session.label) == family.member_name(arch)


@pytest.mark.parametrize("arch", MEMBERS)
def test_mixed_precision_keeps_each_members_flow_heads_in_float32(arch):
    # On 'meta' tensors (no arithmetic): which dtype each parameter gets, and the output's.
    with torch.device("meta"):
        model = family.build(arch)
    mixed = tb.prepare(copy.deepcopy(model), torch.device("meta"), "fp16", channels_last=False)
    x = torch.empty(1, 3, H, W, device="meta")
    with torch.no_grad():
        assert mixed(x, x).dtype == torch.float32
    heads = {f"net.{path}.{p}" for path in model.flow_heads for p in ("weight", "bias")}
    params = dict(mixed.named_parameters())
    assert heads <= set(params) and all(params[n].dtype == torch.float32 for n in heads)
    assert all(p.dtype == torch.float16 for n, p in params.items() if n not in heads)
    assert len(model.flow_heads) == {"c": 1, "s": 1, "sd": 1, "cs": 2, "css": 3}[arch]


def _tsv():
    if not TSV.exists():
        pytest.skip(f"{TSV} not found")
    rows = [line.split("\t") for line in TSV.read_text().splitlines() if line.strip()]
    return {key: tuple(int(d) for d in shape.split("x")) for key, shape in rows}


def test_member_keys_follow_from_the_official_flownet2_list():
    # NVIDIA's members reuse FlowNet2's sub-networks: C, SD and S are flownetc, flownets_d and a FlowNetS
    # without prefix (S sees 6 channels, the two frames); CS and CSS keep FlowNet2's prefixes.
    full = _tsv()

    def part(*prefixes, strip=False):
        return {(k.split(".", 1)[1] if strip else k): v for k, v in full.items() if k.split(".")[0] in prefixes}

    s = part("flownets_1", strip=True)
    s["conv1.0.weight"] = (64, 6, 7, 7)
    expected = {"c": part("flownetc", strip=True), "s": s, "sd": part("flownets_d", strip=True),
                "cs": part("flownetc", "flownets_1"), "css": part("flownetc", "flownets_1", "flownets_2"),
                "flownet2": full}
    for arch, shapes in expected.items():
        assert family.member_shapes(arch) == shapes, arch
    mb = {arch: sum(int(np.prod(s)) for s in shapes.values()) * 4 / 1e6 for arch, shapes in expected.items()}
    published = {"flownet2": 620, "c": 149, "s": 148, "sd": 173, "cs": 297, "css": 445}  # checkpoint MB
    assert all(abs(mb[a] * 1e6 / 2**20 - published[a]) < 3 for a in published), mb


def test_checkpoint_keys_tell_the_member():
    for arch in family.MEMBERS:
        keys = dict.fromkeys(family.member_shapes(arch))
        assert checkpoint_arch(keys) == arch
        assert checkpoint_arch(keys, arch=family.member_name(arch)) == arch
    with pytest.raises(Flownet2Error, match=r"x.pth: a FlowNet2-CS checkpoint \(by its keys\), not the FlowNet2-CSS"):
        checkpoint_arch(dict.fromkeys(family.member_shapes("cs")), "x.pth", arch="css")
    odd = dict.fromkeys(list(family.member_shapes("sd"))[:-3] + ["head.weight"])
    with pytest.raises(Flownet2Error) as err:
        checkpoint_arch(odd, "x.pth")
    # every SD module has a weight and a bias: the first six names in order, then the count of the rest
    assert str(err.value) == (f"x.pth: its keys fit no FlowNet2 family member ({len(odd)} tensors: conv0.* x2, "
                              "conv1.* x2, conv1_1.* x2, conv2.* x2, conv2_1.* x2, conv3.* x2, ... 24 more; "
                              "nearest FlowNet2-SD, 3 of its keys missing, 1 unexpected)")


def test_arch_names():
    assert {family.arch_key(t) for t in ("css", "CSS", "FlowNet2-CSS", "flownet2css", "FlowNet2_CSS")} == {"css"}
    assert family.arch_key("FlowNet2") == "flownet2"
    with pytest.raises(Flownet2Error, match="unknown FlowNet2 family member 'flownet3'"):
        family.arch_key("flownet3")
    with pytest.raises(Flownet2Error, match="stand-in weights of FlowNet2-C, not the FlowNet2-S asked for"):
        load_model("stand-in:c:0", arch="s")


def test_stand_in_member_file_keeps_its_member_and_label(tmp_path):
    model, label = load_model("stand-in:s:3")
    path = tmp_path / "FlowNet2-S_checkpoint.pth.tar"
    save_checkpoint(path, model.state_dict(), stand_in_seed=3)
    again, again_label = load_model(str(path))
    assert isinstance(again, family.FlowNet2S) and again_label == label
    assert label.startswith("stand-in:seed=3 arch:FlowNet2-S tensors:")


def test_cli_refuses_another_members_checkpoint_in_one_line(tmp_path):
    # Keys alone decide the member, so a small file with FlowNet2-C's keys stands for its checkpoint.
    path = tmp_path / "FlowNet2-C_checkpoint.pth.tar"
    torch.save({"state_dict": {k: torch.zeros(1) for k in family.member_shapes("c")}}, path)
    r = subprocess.run([sys.executable, str(ROOT / "Flownet2_pth2onnx.py"), "--input_path", str(path),
                        "--arch", "cs", "--out_path", str(tmp_path / "x.onnx"), "--height", "64", "--width", "64"],
                       cwd=ROOT, capture_output=True, text=True, check=False)
    assert r.returncode == 2
    assert r.stderr == (f"error: {path}: a FlowNet2-C checkpoint (by its keys), not the FlowNet2-CS asked for\n")
    assert not (tmp_path / "x.onnx").exists()

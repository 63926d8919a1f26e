"""flownet2/runtime/torch_backend.py and benchmarks/bench_gpu.py: the CPU-testable parts here, the CUDA parts where a GPU is.

References are independent of the code under test: the plain fp32 FlowNet2.forward, float64 convs,
hand-built flows with a known EPE.
"""
import copy
import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from flownet2.errors import Flownet2Error
from flownet2.model.checkpoint import stand_in_state_dict
from flownet2.model.networks import FlowNet2
from flownet2.model.ops import correlation
from flownet2.runtime import torch_backend as tb

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "bench_gpu.py"
from sintel_mini import MINI_DIR as SINTEL  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none visible to PyTorch)")


@pytest.fixture(scope="module")
def base():
    m = FlowNet2().eval()
    m.load_state_dict(stand_in_state_dict(m, 0))
    return m


def _pair(b, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(b, 3, h, w, generator=g) * 0.3
    return x1, torch.roll(x1, (1, 3), dims=(2, 3)) + 0.05 * torch.randn(b, 3, h, w, generator=g)


def _epe(flow, ref):
    return (flow.float() - ref).norm(dim=1).mean().item()


@pytest.fixture(scope="module")
def bench():
    before = os.environ.get("TQDM_DISABLE")
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if before is None:  # the script quiets tqdm for itself, not for the rest of the test session
        os.environ.pop("TQDM_DISABLE", None)
    return module


# --------------------------------------------------------------------------- precision

def test_mixed_float32_is_exactly_flownet2_forward(base):
    # MixedFlowNet2 mirrors FlowNet2.forward's glue: in float32 it must be the same computation.
    x1, x2 = _pair(1, 64, 128)
    with torch.no_grad():
        ref = base(x1, x2)
        out = tb.MixedFlowNet2(copy.deepcopy(base), torch.float32)(x1, x2)
    assert torch.equal(out, ref)


class _Recorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls.append((func.overloadpacket.__name__, args))
        return func(*args, **(kwargs or {}))


def test_fp16_path_keeps_warp_norms_and_flow_heads_in_float32(base):
    # On 'meta' tensors (no arithmetic), at the real 448x1024 size: which dtype each op sees.
    model = tb.prepare(copy.deepcopy(base).to("meta"), torch.device("meta"), "fp16", channels_last=True)
    x = torch.empty(2, 3, 448, 1024, device="meta")
    with torch.no_grad(), _Recorder() as rec:
        out = model(x, x)
    assert out.dtype == torch.float32 and out.shape == (2, 2, 448, 1024)
    convs = [(args[0].dtype, args[1].shape[0]) for name, args in rec.calls if name == "convolution"]
    fp32_convs = [c for c in convs if c[0] == torch.float32]
    assert len(convs) > 100 and {c[0] for c in convs} == {torch.float16, torch.float32}
    assert fp32_convs == [(torch.float32, 2)] * 5  # exactly the five flow heads, 2 output channels each
    floors = [args[0].dtype for name, args in rec.calls if name == "floor"]
    assert floors == [torch.float32] * 4 * 2  # 4 warps, each the floor of u and of v
    # index_select also reads the small int32 clamp tables; the image gathers are the floating ones
    gathers = [args[0].dtype for name, args in rec.calls if name == "index_select" and args[0].is_floating_point()]
    assert gathers == [torch.float32] * 4
    norms = [args[0].dtype for name, args in rec.calls if name == "sqrt"]
    assert len(norms) == 6 and set(norms) == {torch.float32}
    corr = [args[0].dtype for name, args in rec.calls if name in ("bmm", "mm", "matmul")]
    assert corr and set(corr) == {torch.float16}  # the correlation runs in half precision
    params = {n: p.dtype for n, p in model.named_parameters()}
    heads = {n for n in params if any(n.startswith(f"net.{s}.{h}.") for s, h in tb.FLOW_HEADS)}
    assert len(heads) == 10 and all(params[n] == torch.float32 for n in heads)
    assert all(params[n] == torch.float16 for n in params if n not in heads)


@pytest.mark.parametrize("precision,dtype,limit", [("bf16", torch.bfloat16, 0.35), ("fp16", torch.float16, 0.05)])
def test_half_path_is_close_to_fp32_and_better_than_a_plain_cast(base, precision, dtype, limit):
    x1, x2 = _pair(1, 64, 64)
    model = tb.prepare(copy.deepcopy(base), torch.device("cpu"), precision, channels_last=True)
    for sub, head in tb.FLOW_HEADS:  # the fp32 heads keep the weights unrounded
        assert torch.equal(getattr(getattr(model.net, sub), head).weight, getattr(getattr(base, sub), head).weight)
    with torch.no_grad():
        ref = base(x1, x2)
        mixed = model(x1, x2)
        plain = copy.deepcopy(base).to(dtype)(x1.to(dtype), x2.to(dtype))
    assert mixed.dtype == torch.float32
    assert ref.abs().max() > 5  # flows of pixels, so the comparison is not trivially small
    assert _epe(mixed, ref) < limit
    # The glue itself is safe in half precision now (integer warp indices, scaled norms), so a plain cast
    # runs; float32 glue and flow heads still buy a clear margin over it.
    assert _epe(plain, ref) > 1.3 * _epe(mixed, ref)


def test_float32_conv_head_against_float64():
    conv = nn.Conv2d(4, 2, 3, 1, 1).half()
    head = tb.Float32Conv2d.from_conv(conv)
    x = torch.randn(1, 4, 8, 8).half()
    out = head(x)
    ref = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1)
    assert out.dtype == torch.float32
    assert (out.double() - ref).abs().max().item() < 1e-5
    assert head.state_dict().keys() == conv.state_dict().keys()


def test_bad_precision_is_one_clear_error(base):
    with pytest.raises(Flownet2Error, match="precision must be one of"):
        tb.prepare(base, torch.device("cpu"), "fp8")


def test_cuda_math_sets_and_restores_the_flags():
    m, c = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (m.allow_tf32, c.allow_tf32, c.benchmark)
    with tb.cuda_math("fp32"):
        assert (m.allow_tf32, c.allow_tf32, c.benchmark) == (False, False, True)
    with tb.cuda_math("tf32"):
        assert (m.allow_tf32, c.allow_tf32) == (True, True)
    with tb.cuda_math("fp16"):
        assert (m.allow_tf32, c.allow_tf32) == saved[:2]
    with pytest.raises(ValueError), tb.cuda_math("tf32"):
        raise ValueError
    assert (m.allow_tf32, c.allow_tf32, c.benchmark) == saved


# --------------------------------------------------------------------------- graphs and compile

def test_host_copy_probe():
    f = torch.empty(3, 2, device="meta")
    assert tb.host_copies(lambda t: t + torch.tensor([1.0, 2.0]).to(t.device), f) == ["aten._to_copy.default"]
    assert tb.host_copies(lambda t: t + torch.arange(2, device=t.device), f) == []
    assert tb.host_copies(lambda t: t * torch.tensor(2.0), f) == []  # 0-d: passed as a scalar
    # the fallback for graph capture must itself be capturable
    g = torch.empty(1, 4, 2, 8, device="meta")
    assert tb.host_copies(correlation, g, g, "slices") == []
    assert tb.capturable_corr_mode("slices") == "slices"


def test_graphs_forward_copies_nothing_from_the_host(base):
    # What graphs mode captures: the whole fp16 forward, with the correlation it would pick.
    model = copy.deepcopy(base).to("meta")
    model.corr_mode = tb.capturable_corr_mode("matmul")
    assert model.corr_mode == "matmul"  # the fast form is capturable: its index is built on the device
    module = tb.prepare(model, torch.device("meta"), "fp16")
    x = torch.empty(1, 3, 448, 1024, device="meta")
    with torch.no_grad():
        assert tb.host_copies(module, x, x) == []


def test_graphs_mode_needs_cuda(base):
    with pytest.raises(Flownet2Error, match="graphs needs a CUDA device"):
        tb.TorchSession(base, batch=1, height=64, width=64, device="cpu", precision="fp32", mode="graphs")
    with pytest.raises(Flownet2Error, match="mode must be one of"):
        tb.TorchSession(base, batch=1, height=64, width=64, device="cpu", precision="fp32", mode="jit")


def test_inductor_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "x")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tb.inductor_cache_dir() == str(tmp_path / "flownet2" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert tb.inductor_cache_dir() == str(tmp_path / "mine")


def test_compile_leaves_the_environment_to_the_program(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "x")  # recorded, so the test's change is undone
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.1))
    compiled = tb.compile_model(net, "reduce-overhead", backend="eager")  # Dynamo only: quick on a CPU
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(compiled(x), net(x))
    # library code leaves the process-wide variable alone (Inductor itself may set its /tmp default)
    assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") != str(tmp_path / "flownet2" / "inductor")
    assert not (tmp_path / "flownet2").exists()
    with pytest.raises(Flownet2Error, match="compile mode must be one of"):
        tb.compile_model(net, "fastest")


def test_programs_point_inductor_at_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "x")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tb.use_inductor_cache()  # what a program calls at its start
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "flownet2" / "inductor")
    assert (tmp_path / "flownet2" / "inductor").is_dir()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    tb.use_inductor_cache()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")  # the user's choice is kept


# --------------------------------------------------------------------------- session

def test_resolve_device():
    assert tb.resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(Flownet2Error, match="unknown device|not supported"):
        tb.resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(Flownet2Error, match="sees no CUDA GPU"):
            tb.resolve_device("cuda")


def test_session_on_cpu_matches_the_plain_model(base):
    session = tb.TorchSession.load(0, batch=1, height=64, width=64, device="cpu", precision="fp32", mode="eager",
                                    warmup=0)
    assert session.label.startswith("stand-in:seed=0 tensors:")  # seed and fingerprint of the tensors
    assert [(n, s, d) for n, s, d in session.inputs] == [("x1", [1, 3, 64, 64], np.float32),
                                                         ("x2", [1, 3, 64, 64], np.float32)]
    x1, x2 = _pair(1, 64, 64, seed=3)
    outputs, ms = session.run([x1.numpy(), x2.numpy()])
    with torch.no_grad():
        ref = base(x1, x2)
    assert isinstance(outputs[0], np.ndarray) and outputs[0].dtype == np.float32 and ms > 0
    assert np.abs(outputs[0] - ref.numpy()).max() < 1e-3  # channels_last may pick other conv kernels
    with pytest.raises(Flownet2Error, match="input x2: got"):
        session.flow(x1.numpy(), x2.numpy()[:, :, :32])


def test_session_rejects_bad_sizes_before_loading():
    with pytest.raises(Flownet2Error, match="multiples of 64"):
        tb.TorchSession.load(0, height=100, width=128, device="cpu", mode="eager")


# --------------------------------------------------------------------------- benchmark script

def test_bench_epe_on_a_hand_built_flow(bench):
    ref = np.zeros((2, 2, 8, 8), np.float32)
    pred = np.full_like(ref, 100.0)  # the padding (rows/cols >= 6) is ignored
    pred[:, :, :6, :6] = 0
    pred[0, 0, :6, :6], pred[0, 1, :6, :6] = 3, 4  # pair 0: EPE 5 everywhere; pair 1: exact
    pred[1, 0, 0, 0] = 1.5  # one pixel of pair 1 off by 1.5
    mean, worst = bench.epe_vs(pred, ref, (6, 6))
    assert mean == pytest.approx((5 + 1.5 / 36) / 2)
    assert worst == pytest.approx(5)


def test_bench_table_ratios_and_plan(bench):
    rows = [{"path": "eager-fp32", "batch": 4, "s": 0.1, "corr": "matmul"},
            {"path": "graphs-fp16", "batch": 4, "s": 0.025, "epe": 0.01, "corr": "slices"},
            {"path": "compile-fp16", "batch": 4, "note": "skipped: needs CUDA"}]
    lines = bench.format_table(rows, ["head"]).splitlines()
    assert lines[0] == "head"
    assert lines[4].split(" | ")[3:7] == ["40.0", "100.00", "1.00", "ref"]
    assert lines[5].split(" | ")[3:7] == ["160.0", "25.00", "4.00", "0.0100"]
    assert lines[6].endswith("| skipped: needs CUDA |")
    args = bench.parse_args(["--paths", "graphs-fp16", "--batches", "1,4", "--max-autotune"])
    assert bench.plan(args) == [("eager-fp32", 1), ("eager-fp32", 4), ("eager-fp32", 8), ("graphs-fp16", 1),
                                ("graphs-fp16", 4), ("autotune-fp16", 8)]


@pytest.mark.skipif(not SINTEL.is_dir(), reason=f"{SINTEL} not found")
def test_bench_frames_are_normalised_and_padded(bench):
    x1, x2, valid = bench.load_frames(str(SINTEL), 2, 448, 1024)
    assert x1.shape == (2, 3, 448, 1024) and valid == (436, 1024)
    assert not x1[:, :, 436:].any() and not x2[:, :, 436:].any()
    both = np.concatenate([x1[:, :, :436], x2[:, :, :436]], axis=2)  # per pair: mean over both frames
    assert np.abs(both.mean(axis=(2, 3))).max() < 1e-5
    assert np.abs(x1).max() <= 1.0 and x1.std() > 0.05


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_bench_without_cuda_says_so(bench):
    with pytest.raises(Flownet2Error, match="no CUDA GPU visible.*--cpu-smoke"):
        bench.main(["--quick"])


def test_bench_cpu_smoke_writes_the_table(bench, tmp_path, capsys):
    out = tmp_path / "smoke.md"
    assert bench.main(["--cpu-smoke", "--height", "64", "--width", "64", "--out", str(out)]) == 0
    table = out.read_text()
    assert table.strip() in capsys.readouterr().out
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| path")}
    assert set(rows) == {"eager-fp32", "eager-bf16", "graphs-fp16", "compile-fp16"}
    assert rows["eager-fp32"][6] == "ref" and float(rows["eager-fp32"][3]) > 0
    assert 0 < float(rows["eager-bf16"][6]) < 0.5 and float(rows["eager-bf16"][5]) > 0
    assert rows["graphs-fp16"][-1].startswith("skipped: needs CUDA")


# --------------------------------------------------------------------------- on a CUDA GPU only

@needs_cuda
def test_cuda_graph_replays_match_eager(base):
    device = tb.resolve_device("cuda")
    a, b = _pair(2, 128, 256, seed=1), _pair(2, 128, 256, seed=2)
    options = dict(batch=2, height=128, width=256, device=device, precision="fp32")
    eager = tb.TorchSession(copy.deepcopy(base), mode="eager", **options).forward
    graphs = tb.TorchSession(copy.deepcopy(base), mode="graphs", **options).forward
    flows = []
    for x1, x2 in (a, b, a):  # new inputs must go through the static buffers
        want = eager(x1, x2).clone()
        got = graphs(x1, x2).clone()
        # both strict fp32; cuDNN may pick different algorithms, and graphs may use the slice correlation
        assert (got - want).norm(dim=1).max().item() < 1e-2
        flows.append(got.cpu())
    assert _epe(flows[0], flows[1]) > 0.1 and _epe(flows[0], flows[2]) < 1e-4
    with torch.no_grad():
        ref = base(*b)
    assert _epe(flows[1], ref) < 5e-3


@needs_cuda
def test_cuda_fp16_graph_session_is_close_to_fp32(base):
    x1, x2 = _pair(2, 128, 256, seed=4)
    session = tb.TorchSession.load(0, batch=2, height=128, width=256, device="cuda", precision="fp16", mode="graphs")
    flow = torch.from_numpy(session.flow(x1.numpy(), x2.numpy()))
    with torch.no_grad():
        ref = base(x1, x2)
    # random frames are harder than Sintel; the benchmark measures the 0.05 px target on real frames
    assert _epe(flow, ref) < 0.08

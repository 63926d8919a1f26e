"""FlowNet2 inference with PyTorch on a CUDA GPU: fp16 sub-networks with float32 glue, channels-last,
and launch overhead removed by CUDA graphs or torch.compile. Chosen at run time, per session:

    session = TorchSession("FlowNet2_checkpoint.pth.tar", batch=1, height=448, width=1024,
                           device="cuda", precision="fp16", mode="graphs")   # weights=0: stand-in seed 0
    flow = session.flow(x1, x2)   # numpy B x 3 x H x W float32 (normalised) -> B x 2 x H x W float32

precision: fp32 (strict IEEE: TF32 off), tf32 (TF32 tensor cores for convs and matmuls), fp16, bf16.
mode: eager; graphs (one manual CUDA graph, replayed); compile (torch.compile, compile_mode
"reduce-overhead" or "max-autotune-no-cudagraphs", compiled code cached on disk, see compile_model).
Importing this module, and using it on the CPU, never initialises CUDA.
"""
import contextlib
import os
import re
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from .checkpoint import load_flownet2, stand_in_state_dict
from .errors import Flownet2Error
from .model import FlowNet2, check_input_size
from .ops import CORRELATION_MODES
from .provenance import official_label, stand_in_label

PRECISIONS = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("eager", "graphs", "compile")
COMPILE_MODES = ("reduce-overhead", "max-autotune-no-cudagraphs", "default", "max-autotune")
# The last conv of each sub-network: its output leaves the sub-network as a flow (or flow / 20).
FLOW_HEADS = (("flownetc", "predict_flow2"), ("flownets_1", "predict_flow2"), ("flownets_2", "predict_flow2"),
              ("flownets_d", "predict_flow2"), ("flownetfusion", "predict_flow0"))


# --------------------------------------------------------------------------- weights and precision

def load_model(weights, corr_mode="matmul", unsafe_pickle=False):
    """(FlowNet2 in eval mode on the CPU, weights label): `weights` is a checkpoint path or an int seed."""
    if corr_mode not in CORRELATION_MODES:
        raise Flownet2Error(f"correlation mode must be one of {', '.join(CORRELATION_MODES)}, got {corr_mode!r}")
    if isinstance(weights, int) and not isinstance(weights, bool):
        with torch.device("meta"):  # shapes only: skips initialising 162M parameters that are replaced anyway
            model = FlowNet2(corr_mode)
        model.load_state_dict(stand_in_state_dict(model, weights), assign=True)
        return model.eval(), stand_in_label(weights)
    model = FlowNet2(corr_mode).eval()
    load_flownet2(model, weights, unsafe_pickle)
    return model, official_label(weights)


class Float32Conv2d(nn.Conv2d):
    """A Conv2d that runs in float32 whatever its input: a sub-network's flow head in the fp16 model.

    Its output is a flow (in px, or px / 20); stored in fp16 it would be rounded to 1/4 px at 300 px.
    Same parameter names as nn.Conv2d, so state dicts are unchanged.
    """

    @classmethod
    def from_conv(cls, conv):
        head = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                   conv.dilation, conv.groups, conv.bias is not None, device="meta")
        head.weight = nn.Parameter(conv.weight.detach().to(torch.float32, copy=True), requires_grad=False)
        if conv.bias is not None:
            head.bias = nn.Parameter(conv.bias.detach().to(torch.float32, copy=True), requires_grad=False)
        return head

    def forward(self, x):
        return super().forward(x.float())


class MixedFlowNet2(nn.Module):
    """FlowNet2 with its five sub-networks in `dtype` and everything between them in float32.

    Why float32 between them: the warp samples at absolute pixel coordinates (up to ~1024, where fp16
    steps by 0.5 px), and channel_norm squares flows of hundreds of px (fp16 overflows at 65504). So
    each sub-network gets its input cast down and hands back a float32 flow (its flow head is a
    Float32Conv2d), and FlowNet2.forward's glue (upsampling, warps, channel norms, concats) runs in
    float32 (FlowNet2.subnet_dtype). Takes ownership of `model`: its sub-networks are converted in place.
    """

    def __init__(self, model, dtype=torch.float16):
        super().__init__()
        self.net = model
        self.dtype = dtype
        if dtype != torch.float32:
            # heads made from the float32 weights before the cast, so they are not rounded to fp16
            heads = [Float32Conv2d.from_conv(getattr(getattr(model, sub), head)) for sub, head in FLOW_HEADS]
            model.to(dtype)
            for (sub, head), module in zip(FLOW_HEADS, heads):
                setattr(getattr(model, sub), head, module)
            model.subnet_dtype = dtype

    def forward(self, x1, x2):
        return self.net(x1.float(), x2.float())


def prepare(model, device, precision="fp16", channels_last=True):
    """`model` (FlowNet2, owned from now on) as an eval MixedFlowNet2 on `device` in `precision`."""
    if precision not in PRECISIONS:
        raise Flownet2Error(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    module = MixedFlowNet2(model.eval(), PRECISIONS[precision]).to(device)
    if channels_last:  # cuDNN's fast fp16 convolutions are NHWC ones; 4-D weights only are affected
        module = module.to(memory_format=torch.channels_last)
    return module.eval()


@contextlib.contextmanager
def cuda_math(precision):
    """The process-wide cuDNN/cuBLAS switches a precision needs, restored on exit.

    fp32 turns TF32 off (PyTorch's default lets cuDNN convolutions round inputs to TF32), tf32 turns it
    on for convolutions and matmuls, fp16/bf16 leave it as found. cuDNN autotuning is on: a session's
    shapes never change. Only the legacy flags are used: PyTorch refuses to read a mix of the old and
    the new (fp32_precision) API.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark)
    try:
        if precision in ("fp32", "tf32"):
            matmul.allow_tf32 = cudnn.allow_tf32 = precision == "tf32"
        cudnn.benchmark = True
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32, cudnn.benchmark = saved


# --------------------------------------------------------------------------- CUDA graphs

class _HostCopies(TorchDispatchMode):
    """Records every op that reads a host (CPU) array into a device tensor: illegal in graph capture."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        # 0-d CPU tensors are passed to kernels as scalars, which capture allows
        from_host = any(t.device.type == "cpu" and t.dim() > 0 for t in inputs)
        if from_host and any(t.device.type != "cpu" for t in outputs):
            self.ops.append(str(func))
        return out


def host_copies(fn, *args):
    """Names of the ops of fn(*args) that copy host data to the device; run it on 'meta' tensors."""
    with _HostCopies() as probe:
        fn(*args)
    return probe.ops


def capturable_corr_mode(corr_mode):
    """`corr_mode` if its correlation can be captured in a CUDA graph, else "slices".

    Stream capture forbids host-to-device copies. ops.correlation builds its matmul gather index on
    the device; this probe (on 'meta' tensors, so no CUDA is needed) keeps graphs mode safe should a
    host copy ever creep back in. The slices form is all device ops.
    """
    from .ops import correlation

    f = torch.empty(1, 4, 2, 8, device="meta")
    return corr_mode if not host_copies(correlation, f, f, corr_mode) else "slices"


class CudaGraphRunner:
    """One CUDA graph of `module` for fixed input shapes, replayed on every call.

    The inputs are copied into static buffers and the returned flow IS the graph's static output
    buffer: the next call overwrites it, so copy what you keep.
    """

    def __init__(self, module, x1, x2, warmup=3):
        device = x1.device
        warmup = max(warmup, 2)  # cuDNN autotuning must be over before capture: it cannot be captured
        self.x1, self.x2 = (x.clone(memory_format=torch.preserve_format) for x in (x1, x2))  # static inputs
        with torch.no_grad():
            # Warm-up on a side stream (cuDNN autotuning, workspace allocation) keeps that out of the graph.
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    module(self.x1, self.x2)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.out = module(self.x1, self.x2)

    def __call__(self, x1, x2):
        self.x1.copy_(x1)
        self.x2.copy_(x2)
        self.graph.replay()
        return self.out


# --------------------------------------------------------------------------- torch.compile

def inductor_cache_dir():
    """Where compiled kernels persist: $TORCHINDUCTOR_CACHE_DIR, else <user cache>/flownet2/inductor."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return os.environ["TORCHINDUCTOR_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flownet2", "inductor")


def compile_model(module, compile_mode="reduce-overhead", backend="inductor"):
    """torch.compile(module) for fixed shapes, with Inductor's caches in inductor_cache_dir().

    Inductor's FX-graph and autotuning caches (on by default) live under TORCHINDUCTOR_CACHE_DIR;
    the default there is a folder in /tmp, which a reboot empties. Pointing it at the user's cache
    folder makes the first run pay the compile (~30 s reduce-overhead, minutes with max-autotune)
    and later runs load the kernels. The variable is only set if the user has not set it.
    fullgraph: a graph break would split the CUDA graphs of reduce-overhead, so it is an error.
    """
    if compile_mode not in COMPILE_MODES:
        raise Flownet2Error(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", inductor_cache_dir())
    os.makedirs(os.environ["TORCHINDUCTOR_CACHE_DIR"], exist_ok=True)
    mode = compile_mode if backend == "inductor" else None  # modes are Inductor's
    return torch.compile(module, mode=mode, backend=backend, fullgraph=True, dynamic=False)


# --------------------------------------------------------------------------- runner and session

def cpu_has_bf16():
    """True when the CPU has bf16 arithmetic units (AVX512_BF16 or AMX-BF16), from /proc/cpuinfo's flags.

    Without them PyTorch still runs bf16 on the CPU, by converting to fp32 and back: slower than fp32.
    """
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(re.findall(r"\b(avx512_bf16|amx_bf16)\b", f.read()))
    except OSError:  # not Linux: no portable way to ask
        return False
    return bool(flags)


def check_cpu_precision(precision):
    """Refuse, in one line, a precision the CPU cannot run usefully (fp32 always; bf16 with bf16 units)."""
    if precision == "fp32":
        return
    if precision == "bf16":
        if not cpu_has_bf16():
            raise Flownet2Error("precision bf16 on the CPU needs bf16 units (AVX512_BF16 or AMX), which this CPU "
                                "lacks; use fp32")
        return
    raise Flownet2Error(f"precision {precision} needs a CUDA GPU; on the CPU use fp32 (or bf16 on a CPU with "
                        "AVX512_BF16 or AMX)")


def resolve_device(device):
    """torch.device for 'cpu', 'cuda' or 'cuda:N'; a clear error when CUDA is asked for but absent."""
    try:
        device = torch.device(device)
    except (RuntimeError, ValueError):
        raise Flownet2Error(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise Flownet2Error(f"device {device} is not supported (use cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise Flownet2Error(f"device {device}: PyTorch {torch.__version__} ({build}) sees no CUDA GPU; "
                                "use device cpu, or a machine with an NVIDIA GPU and a CUDA build of PyTorch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise Flownet2Error(f"device {device}: only {torch.cuda.device_count()} CUDA GPU(s) visible")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    return device


class Runner:
    """fn(x1, x2) -> float32 flow for tensors of the built shape; see build_runner."""

    def __init__(self, fn, precision, mode, corr_mode, device, memory_format):
        self.fn, self.precision, self.mode, self.corr_mode = fn, precision, mode, corr_mode
        self.device, self.memory_format = device, memory_format

    def __call__(self, x1, x2):
        # Same device and layout as when built: a compiled runner would otherwise recompile.
        x1, x2 = (x.to(device=self.device, memory_format=self.memory_format) for x in (x1, x2))
        with self._context(), torch.no_grad():
            if self.mode == "compile" and self.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs may be reused
            return self.fn(x1, x2)

    def _context(self):
        return cuda_math(self.precision) if self.device.type == "cuda" else contextlib.nullcontext()


def build_runner(model, x1, x2, device, precision="fp16", mode="graphs", channels_last=True,
                 compile_mode="reduce-overhead", warmup=3, compile_backend="inductor"):
    """A ready, warmed-up Runner for inputs shaped like the example device tensors x1, x2.

    `model` (a FlowNet2, owned from now on) is converted, moved, captured or compiled here; the
    first calls (compilation, cuDNN autotuning, graph recording) happen here too. In graphs mode a
    matmul correlation that cannot be captured falls back to slices (runner.corr_mode says which).
    The flow a graphs or reduce-overhead runner returns is overwritten by its next call.
    """
    if mode not in MODES:
        raise Flownet2Error(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "graphs" and device.type != "cuda":
        raise Flownet2Error(f"mode graphs needs a CUDA device, got {device}; use mode eager or compile")
    if mode == "graphs":
        model.corr_mode = capturable_corr_mode(model.corr_mode)
    module = prepare(model, device, precision, channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x1, x2 = (x.to(device=device, memory_format=fmt) for x in (x1, x2))
    cuda = device.type == "cuda"
    with (torch.cuda.device(device) if cuda else contextlib.nullcontext()), \
            (cuda_math(precision) if cuda else contextlib.nullcontext()), torch.no_grad():
        if mode == "graphs":
            fn = CudaGraphRunner(module, x1, x2, warmup)
        else:
            fn = compile_model(module, compile_mode, compile_backend) if mode == "compile" else module
    runner = Runner(fn, precision, mode, model.corr_mode, device, fmt)
    for _ in range(warmup if mode != "graphs" else 0):
        runner(x1, x2)
    if cuda:
        torch.cuda.synchronize(device)
    return runner


class TorchSession:
    """FlowNet2 on PyTorch with an ais_bench-style face, like flownet2.infer's OrtSession.

    weights: checkpoint path, or an int seed for stand-in weights. inputs: [(name, shape, dtype)].
    run([x1, x2]) -> ([flow], milliseconds, host copies included); flow(x1, x2) -> flow.
    Inputs are normalised B x 3 x H x W float32 arrays of exactly the session's shape.
    """

    copy_ms = None

    def __init__(self, weights, batch=1, height=448, width=1024, device="cuda", precision="fp16",
                 mode="graphs", channels_last=True, corr_mode="matmul", compile_mode="reduce-overhead",
                 unsafe_pickle=False, warmup=3):
        check_input_size(height, width)
        if batch < 1:
            raise Flownet2Error(f"batch must be at least 1, got {batch}")
        self.device = resolve_device(device)
        model, self.label = load_model(weights, corr_mode, unsafe_pickle)
        shape = [batch, 3, height, width]
        self.inputs = [("x1", shape, np.dtype(np.float32)), ("x2", shape, np.dtype(np.float32))]
        self.batch_size, self.size = batch, (height, width)
        example = _example_pair(shape)
        self.runner = build_runner(model, *example, self.device, precision, mode, channels_last,
                                   compile_mode, warmup)
        self.provider = f"torch-{mode}-{precision}-{self.device}"

    def flow(self, x1, x2):
        """B x 2 x H x W float32 numpy flow for two numpy (or torch) frames batches."""
        tensors = [self._tensor(name, shape, a) for (name, shape, _), a in zip(self.inputs, (x1, x2))]
        flow = self.runner(*tensors)
        return flow.contiguous().cpu().numpy()  # a copy: the runner's buffer is reused

    def run(self, arrays):
        t0 = time.perf_counter()
        flow = self.flow(*arrays)
        return [flow], (time.perf_counter() - t0) * 1000.0

    def _tensor(self, name, shape, array):
        t = torch.as_tensor(array)
        if list(t.shape) != shape or t.dtype != torch.float32:
            raise Flownet2Error(f"input {name}: got {tuple(t.shape)} {t.dtype}, the session takes "
                                f"{tuple(shape)} float32 (normalised frames)")
        return t


def _example_pair(shape):
    """Deterministic frame-like inputs for warm-up and capture (not zeros: they can take faster paths)."""
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(shape, generator=g) * 0.3
    return x1, torch.roll(x1, (1, 3), dims=(2, 3))

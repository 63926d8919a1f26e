"""FlowNet2 on PyTorch, on a CUDA GPU or the CPU: reduced-precision sub-networks (fp16/bf16) with float32
glue, channels-last, and launch overhead removed by CUDA graphs or torch.compile. Chosen per session:

    session = TorchSession.load("FlowNet2_checkpoint.pth.tar", batch=1, height=448, width=1024,
                                device="cuda", precision="fp16", mode="graphs")   # weights=0: stand-in seed 0
    flow = session.flow(x1, x2)   # numpy B x 3 x H x W float32 (normalised) -> B x 2 x H x W float32

precision: fp32 (strict IEEE: TF32 off), tf32 (TF32 tensor cores for convs and matmuls), fp16, bf16
(on a CPU: fp32, or bf16 where it has bf16 units, see flownet2.runtime.cpu).
mode: eager; graphs (one manual CUDA graph, replayed); compile (torch.compile, compile_mode
"reduce-overhead" or "max-autotune-no-cudagraphs"; call use_inductor_cache() at process start to keep
the compiled code across runs). Importing this module, and using it on the CPU, never initialises CUDA.
"""
import contextlib
import os
import time

import numpy as np
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..errors import Flownet2Error
from ..model import checkpoint
from ..model.networks import FlowNet2
from ..sizes import check_batch_size, check_input_size

PRECISIONS = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("eager", "graphs", "compile")
COMPILE_MODES = ("reduce-overhead", "max-autotune-no-cudagraphs", "default", "max-autotune")
# FlowNet2's flow heads as (sub-network, conv); every family member lists its own in `flow_heads`.
FLOW_HEADS = tuple(tuple(path.split(".")) for path in FlowNet2.flow_heads)


# --------------------------------------------------------------------------- weights and precision

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
    """FlowNet2 (or a smaller member) with its sub-networks in `dtype` and everything between them in float32.

    Why float32 between them: the glue is safe in fp16/bf16 (the warp never holds an absolute pixel
    coordinate in a float, flow norms are scaled), but a flow of hundreds of px stored in fp16 is still
    rounded to 0.25-0.5 px, and the glue is a small share of the time. So each sub-network gets its
    input cast down and hands back a float32 flow (its flow head is a Float32Conv2d), and
    FlowNet2.forward's glue (upsampling, warps, channel norms, concats) runs in
    float32 (FlowNet2.subnet_dtype). Takes ownership of `model`: its sub-networks are converted in place.
    """

    def __init__(self, model, dtype=torch.float16):
        super().__init__()
        self.net = model
        self.dtype = dtype
        if dtype != torch.float32:
            # heads made from the float32 weights before the cast, so they are not rounded to fp16
            heads = [Float32Conv2d.from_conv(model.get_submodule(path)) for path in model.flow_heads]
            model.to(dtype)
            for path, module in zip(model.flow_heads, heads):
                model.set_submodule(path, module)
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
    from ..model.ops import correlation

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


def use_inductor_cache():
    """For a program's start: keep Inductor's compiled kernels in inductor_cache_dir() (created here).

    Inductor's FX-graph and autotuning caches live under TORCHINDUCTOR_CACHE_DIR, by default a folder
    in /tmp that a reboot empties. In the user's cache folder the first run pays the compile (~30 s
    reduce-overhead, minutes with max-autotune) and later runs load the kernels. The variable is
    process-wide, so programs set it, not the library; a value the user set is kept.
    """
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", inductor_cache_dir())
    os.makedirs(os.environ["TORCHINDUCTOR_CACHE_DIR"], exist_ok=True)


def compile_model(module, compile_mode="reduce-overhead", *, backend="inductor"):
    """torch.compile(module) for fixed shapes. fullgraph: a graph break would split the CUDA graphs of
    reduce-overhead, so it is an error."""
    if compile_mode not in COMPILE_MODES:
        raise Flownet2Error(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {compile_mode!r}")
    mode = compile_mode if backend == "inductor" else None  # modes are Inductor's
    return torch.compile(module, mode=mode, backend=backend, fullgraph=True, dynamic=False)


# --------------------------------------------------------------------------- device and session

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


class TorchSession:
    """FlowNet2 on PyTorch with the face of flownet2.runtime.sessions' sessions, built for one input shape.

    `model` (a FlowNet2, owned from now on) is converted, moved, captured or compiled here, and the
    first calls (compilation, cuDNN autotuning, graph recording) happen here too. In graphs mode a
    matmul correlation that cannot be captured falls back to slices (session.corr_mode says which).
    inputs: [(name, shape, dtype)]; run([x1, x2]) -> ([flow], ms); flow(x1, x2) -> flow (numpy);
    forward(x1, x2) -> flow (torch, on the device; graphs and reduce-overhead sessions overwrite it
    on the next call). Inputs are normalised B x 3 x H x W float32 arrays of exactly the session's shape.
    """

    def __init__(self, model, label=None, *, batch=1, height=448, width=1024, device="cuda", precision="fp16",
                 mode="graphs", channels_last=True, compile_mode="reduce-overhead", warmup=3,
                 compile_backend="inductor"):
        _check_options(batch, height, width, mode)
        self.device = resolve_device(device)
        if mode == "graphs" and self.device.type != "cuda":
            raise Flownet2Error(f"mode graphs needs a CUDA device, got {self.device}; use mode eager or compile")
        if mode == "graphs" and model.corr_mode is not None:  # FlowNet2-S and -SD have no correlation
            model.corr_mode = capturable_corr_mode(model.corr_mode)
        self.label, self.precision, self.mode, self.corr_mode = label, precision, mode, model.corr_mode
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        shape = [batch, 3, height, width]
        self.inputs = [("x1", shape, np.dtype(np.float32)), ("x2", shape, np.dtype(np.float32))]
        self.batch_size, self.size = batch, (height, width)
        self.copy_ms = None  # (H2D ms, D2H ms) of the last run on a CUDA device
        module = prepare(model, self.device, precision, channels_last)
        x1, x2 = (x.to(device=self.device, memory_format=self.memory_format) for x in _example_pair(shape))
        with self._context():
            if mode == "graphs":
                self.fn = CudaGraphRunner(module, x1, x2, warmup)
            else:
                self.fn = compile_model(module, compile_mode, backend=compile_backend) if mode == "compile" else module
        # Graphs warmed up before capture; CPU eager has nothing to tune, so its warm-up would be wasted.
        eager_cpu = mode == "eager" and self.device.type == "cpu"
        for _ in range(0 if mode == "graphs" or eager_cpu else warmup):
            self.forward(x1, x2)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @classmethod
    def load(cls, weights, *, corr_mode="matmul", unsafe_pickle=False, **options):
        """A session for a checkpoint path, a stand-in seed (int) or "stand-in:[MEMBER:]SEED"; options as for
        TorchSession()."""
        _check_options(options.get("batch", 1), options.get("height", 448), options.get("width", 1024),
                       options.get("mode", "graphs"))  # before the 650 MB load
        model, label = checkpoint.load_model(weights, corr_mode=corr_mode, unsafe_pickle=unsafe_pickle)
        return cls(model, label, **options)

    def forward(self, x1, x2):
        """Flow (a device tensor) for torch tensors of the session's shape."""
        # Same device and layout as when built: a compiled session would otherwise recompile.
        x1, x2 = (x.to(device=self.device, memory_format=self.memory_format) for x in (x1, x2))
        with self._context():
            if self.mode == "compile" and self.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()  # the previous call's outputs may be reused
            return self.fn(x1, x2)

    def flow(self, x1, x2):
        """B x 2 x H x W float32 numpy flow for two numpy (or torch) frame batches."""
        x1, x2 = (self._tensor(name, shape, a) for (name, shape, _), a in zip(self.inputs, (x1, x2)))
        return self.forward(x1, x2).contiguous().cpu().numpy()  # a copy: the session's buffer is reused

    def run(self, arrays):
        """([flow], ms). On a CUDA device ms is the device time of the forward alone, and copy_ms holds
        the host-to-device and device-to-host copy times, as ais_bench reports them; on the CPU there are
        no copies and ms is the forward's wall time."""
        x1, x2 = (self._tensor(name, shape, a) for (name, shape, _), a in zip(self.inputs, arrays))
        if self.device.type != "cuda":
            t0 = time.perf_counter()
            flow = self.forward(x1, x2).contiguous().numpy()
            return [flow], (time.perf_counter() - t0) * 1000.0
        with torch.cuda.device(self.device):
            marks = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
            marks[0].record()
            x1, x2 = (x.to(device=self.device, memory_format=self.memory_format) for x in (x1, x2))
            marks[1].record()
            flow = self.forward(x1, x2)
            marks[2].record()
            flow = flow.contiguous().cpu()  # waits for the device
            marks[3].record()
            marks[3].synchronize()
        self.copy_ms = (marks[0].elapsed_time(marks[1]), marks[2].elapsed_time(marks[3]))
        return [flow.numpy()], marks[1].elapsed_time(marks[2])

    def _context(self):
        stack = contextlib.ExitStack()
        stack.enter_context(torch.no_grad())
        if self.device.type == "cuda":
            stack.enter_context(torch.cuda.device(self.device))
            stack.enter_context(cuda_math(self.precision))
        return stack

    def _tensor(self, name, shape, array):
        t = torch.as_tensor(array)
        if list(t.shape) != shape or t.dtype != torch.float32:
            raise Flownet2Error(f"input {name}: got {tuple(t.shape)} {t.dtype}, the session takes "
                                f"{tuple(shape)} float32 (normalised frames)")
        return t


def _check_options(batch, height, width, mode):
    check_input_size(height, width)
    check_batch_size(batch)
    if mode not in MODES:
        raise Flownet2Error(f"mode must be one of {', '.join(MODES)}, got {mode!r}")


def _example_pair(shape):
    """Deterministic frame-like inputs for warm-up and capture (not zeros: they can take faster paths)."""
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(shape, generator=g) * 0.3
    return x1, torch.roll(x1, (1, 3), dims=(2, 3))

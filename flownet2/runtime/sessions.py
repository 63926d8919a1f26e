"""One way to open any FlowNet2 model: a session that turns normalised frames into flow.

    session = open_model("flownet2_bs1_sim_fix.onnx")               # ONNX Runtime (CUDA provider, else CPU)
    session = open_model("flownet2_bs1.om", device=0)                 # Ascend NPU, ais_bench's Python API
    session = open_model("FlowNet2_checkpoint.pth.tar", size=(448, 1024), precision="fp16")  # PyTorch
    session = open_model("stand-in:0", size=(64, 128))                # PyTorch, seeded stand-in weights
    session = open_model("stand-in:css:0", size=(64, 128))            # ... of a smaller member (FlowNet2-CSS)
    outputs, ms = session.run([x1, x2])   # x1, x2: B x 3 x H x W float32, normalised
    flow = outputs[0]                     # B x 2 x H x W float32

Every session has `.inputs` [(name, shape, np.dtype)], `.batch_size`, `.size` (H, W), `.label` (the
weights label, or None when the model carries none), `.run(arrays) -> (outputs, milliseconds)` and
`.copy_ms`: (host-to-device ms, device-to-host ms) of the last run where the backend copies in a
separate step it can time, else None (the copies are then inside the run's milliseconds).

A stream of inputs goes through `run_stream(session, inputs)`: (outputs, ms) per input list, in order;
an OpenVINO session opened with streams above 1 (or "auto") keeps several requests in flight there,
and each ms is then the model's busy wall time that run adds (the sum: the union of the in-flight times).
"""
import importlib.util
import os
import time

import numpy as np

from .. import memory
from ..errors import Flownet2Error
from ..model.provenance import KEY as WEIGHTS_KEY
from ..model.provenance import label_member, stand_in_spec, weights_label
from .engines import _cuda_visible, engine_for, streams_for

DEFAULT_SIZE = (448, 1024)  # Sintel's 436 x 1024 padded to a multiple of 64
AIS_BENCH_HINT = ("ais_bench is not on PyPI: build and pip-install its wheels (ais_bench and aclruntime) from "
                  "https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench "
                  "(needs the CANN toolkit), or run the .onnx model with ONNX Runtime instead")
EMULATIONS = ("fp16", "bf16")


def open_model(model: str, *, backend: str | None = None, batch_size: int | None = None,
               size: tuple[int, int] | None = None, precision: str = "fp32", device: int = 0,
               torch_mode: str = "eager", emulate: str | None = None, unsafe_pickle: bool = False,
               streams: int | str = 1, check_memory: bool = True, frame_size: tuple[int, int] | None = None,
               announce=None):
    """A session for `model`: an .onnx, an .om, a checkpoint file (of any FlowNet2 family member, told by
    its keys), "stand-in:SEED" or "stand-in:MEMBER:SEED" (stand-in:css:0), on the engine that runs it
    (runtime/engines.py); `backend`, when given, must name that engine.

    batch_size and size (H, W) shape a PyTorch model (default 1 and 448 x 1024); an .onnx or .om has
    its own, which the session reports. precision (fp32, tf32, fp16, bf16) is the PyTorch sub-network
    precision; emulate ("fp16" or "bf16") runs an .onnx with every stored value rounded to that type.
    streams: requests kept in flight by run_stream, "auto" (the engine's optimal number) or N; 1 (the
    default) runs one at a time. Only OpenVINO keeps several: elsewhere "auto" is 1 and N > 1 is refused.

    Before the engine opens anything, the model's peak memory at its size is estimated (flownet2.memory):
    a model that would not fit in the memory available is refused in one line, with the largest short
    side that fits for frames of `frame_size` (default: the model's size); a large estimate (over a
    quarter of the memory available) is handed to `announce` (e.g. print) as one line before the engine
    starts: "estimated peak N GiB of M GiB available, ~T s/pair". check_memory=False skips both.
    """
    model = os.fspath(model)
    engine = engine_for(model, backend)
    streams = streams_for(engine, streams)
    if emulate is not None and not engine.emulates:
        raise Flownet2Error(f"{model}: precision emulation runs .onnx models only")
    if engine.static:
        if precision not in engine.precisions and len(engine.precisions) > 1:
            raise Flownet2Error(f"{model}: {engine.display} runs it in {' or '.join(engine.precisions)}, "
                                f"not {precision}")
        if precision not in engine.precisions:
            raise Flownet2Error(f"{model}: precision {precision} applies to PyTorch models; an exported model "
                                "runs in the precision it was built for")
        if not os.path.isfile(model):
            raise Flownet2Error(f"{model}: model file does not exist")
    elif stand_in_spec(model) is None and not os.path.isfile(model):
        raise Flownet2Error(f"{model}: model file does not exist (an .onnx, an .om, a checkpoint, stand-in:SEED "
                            "or stand-in:MEMBER:SEED)")
    if check_memory:
        estimate = check_model_memory(model, engine, batch_size=batch_size or 1, size=size or DEFAULT_SIZE,
                                      precision=precision, frame_size=frame_size, unsafe_pickle=unsafe_pickle)
        note = memory.describe(estimate)
        if note is not None and announce is not None:
            announce(note)
    return engine.open(model, batch_size=batch_size or 1, size=size or DEFAULT_SIZE, precision=precision,
                       device=device, torch_mode=torch_mode, emulate=emulate, unsafe_pickle=unsafe_pickle,
                       streams=streams)


def run_stream(session, inputs):
    """(outputs, ms) for each input list of `inputs`, in order: the session's own run_stream where it
    keeps several requests in flight, else one run() after another."""
    stream = getattr(session, "run_stream", None)
    return stream(inputs) if stream is not None else map(session.run, inputs)


# --------------------------------------------------------------------------- memory

def check_model_memory(model, engine, *, batch_size, size, precision, frame_size=None, unsafe_pickle=False):
    """memory.check_fits for `model` on `engine` (an Engine of runtime/engines.py): the Estimate, or None
    where none applies (a GPU or an NPU: their memory is not the host's). A checkpoint is taken for
    FlowNet2, the largest member, unless that estimate is large: then its keys are read to tell its member."""
    plan = _memory_plan(model, engine, batch_size=batch_size, size=size, precision=precision)
    if plan is None:
        return None
    available = memory.available_bytes()
    if plan["member"] is None and available is not None:
        est = memory.estimate(**plan)
        if est is not None and est.peak > memory.LARGE_SHARE * available:
            plan["member"] = _checkpoint_member(model, unsafe_pickle)
    return memory.check_fits(**plan, frame_size=frame_size, available=available, what=model,
                             fixed_size=model.endswith(".onnx"))


def _memory_plan(model, engine, *, batch_size, size, precision):
    """estimate()'s keywords for this model on this engine, or None where the host's memory is not the
    one that runs out (a CUDA GPU, an Ascend NPU) or the .onnx cannot be read (its engine will say so)."""
    if engine.name == "ascend" or (engine.name in ("torch", "onnxruntime") and _cuda_visible(engine.kind)):
        return None
    member, stage = memory.stand_in_member(model), "run"
    if model.endswith(".onnx"):
        shape = _onnx_shape_and_member(model)
        if shape is None:
            return None
        batch_size, size, member = shape
        stage = "cached" if engine.name == "openvino" else "run"  # read and compiled, as a cached IR is
    elif engine.name == "openvino":
        from .openvino_backend import is_cached

        stage = "cached" if is_cached(model, batch_size=batch_size, size=size) else "convert"
    return {"engine": engine.name, "precision": precision if engine.name != "onnxruntime" else "fp32",
            "member": member, "batch": batch_size, "size": tuple(size), "stage": stage}


def _onnx_shape_and_member(path):
    """(batch, (H, W), member key) of an exported .onnx from its first input and its weights label, read
    from the file's header (onnx/header.py: milliseconds, where onnx.load takes seconds for FlowNet2)."""
    from ..onnx.header import read_header

    try:
        dims, metadata = read_header(path)
    except Flownet2Error:  # an unreadable model is refused by the engine that opens it, in its words
        return None
    if len(dims) != 4 or min(dims) < 1:
        return None
    return dims[0], (dims[2], dims[3]), memory.member_key(label_member(metadata.get(WEIGHTS_KEY))) or "flownet2"


def _checkpoint_member(model, unsafe_pickle):
    """The member a checkpoint holds, by its keys (reads the file: done only when the size is in doubt)."""
    from ..model.checkpoint import checkpoint_arch, extract_state_dict, load_raw

    return checkpoint_arch(extract_state_dict(load_raw(model, unsafe_pickle), model), model)


# --------------------------------------------------------------------------- ONNX Runtime

class OrtSession:
    """An ONNX Runtime session with ais_bench's view of a model: inputs as (name, shape, dtype), plus the
    weights label from the model's metadata (read by ORT already; re-parsing 650 MB costs ~0.5 s)."""

    copy_ms = None  # ORT copies inputs and outputs inside session.run: the run's time includes them

    def __init__(self, session):
        self.session = session
        self.inputs = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape], _ort_dtype(i.type))
                       for i in session.get_inputs()]
        self.label = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
        self.batch_size, self.size = _batch_and_size(self.inputs)

    def run(self, arrays):
        """Outputs for the input arrays and the time of the run in ms (host copies included)."""
        feeds = {name: a for (name, _, _), a in zip(self.inputs, arrays)}
        t0 = time.perf_counter()
        outputs = self.session.run(None, feeds)
        return outputs, (time.perf_counter() - t0) * 1000.0


def _ort_dtype(type_text):
    names = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
             "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}
    if type_text not in names:
        raise Flownet2Error(f"model input type {type_text} is not supported")
    return np.dtype(names[type_text])


def _batch_and_size(inputs):
    shape = inputs[0][1]
    batch = shape[0] if shape else 1
    size = tuple(shape[2:4]) if len(shape) == 4 else None
    return batch, size


def open_onnx(model_path, *, device=0, emulate=None):
    """ONNX Runtime, CUDA provider when available, else CPU; `emulate` rounds like fp16 or bf16 storage."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device}))
    options = ort.SessionOptions()
    source = model_path
    if emulate is not None:
        source = _emulated_bytes(model_path, emulate)
        # graph optimisations would fuse a node with its neighbour and skip the rounding between them
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        return OrtSession(ort.InferenceSession(source, options, providers=providers))
    except Exception as e:  # ORT raises its own exception types for unreadable/invalid models
        raise Flownet2Error(f"{model_path}: ONNX Runtime cannot load the model ({type(e).__name__}: {e})") from None


def _emulated_bytes(model_path, kind):
    if kind not in EMULATIONS:
        raise Flownet2Error(f"precision emulation must be one of {', '.join(EMULATIONS)}, got {kind!r}")
    import onnx

    from ..onnx.precision import emulate_onnx  # ONNX rewriting is only needed here

    try:
        model = onnx.load(model_path)
    except Exception as e:  # protobuf's DecodeError and friends
        raise Flownet2Error(f"{model_path}: not a readable ONNX model ({type(e).__name__}: {e})") from None
    return emulate_onnx(model, kind).SerializeToString()


# --------------------------------------------------------------------------- Ascend .om

class OmSession:
    """An Ascend .om model through ais_bench's Python API (InferSession: numpy in, numpy out).

    The weights label comes from the `.om.weights` sidecar written beside the model at compile time.
    """

    copy_ms = None  # InferSession.infer copies inside its call; ais_bench's CLI reports the split

    def __init__(self, model_path, *, device=0):
        if importlib.util.find_spec("ais_bench") is None:
            raise Flownet2Error(f"{model_path} is an Ascend .om model, which needs ais_bench: {AIS_BENCH_HINT}")
        from ais_bench.infer.interface import InferSession

        try:
            self.session = InferSession(device_id=device, model_path=model_path)
        except Exception as e:  # aclruntime raises RuntimeError and its own types for a bad model or device
            raise Flownet2Error(f"{model_path}: ais_bench cannot load the model on device {device} "
                                f"({type(e).__name__}: {e})") from None
        self.inputs = [(d.name, [int(v) for v in d.shape], _acl_dtype(d)) for d in self.session.get_inputs()]
        self.label = weights_label(model_path)
        self.batch_size, self.size = _batch_and_size(self.inputs)

    def run(self, arrays):
        arrays = [np.ascontiguousarray(a, dtype) for a, (_, _, dtype) in zip(arrays, self.inputs)]
        t0 = time.perf_counter()
        outputs = self.session.infer(arrays)
        return [np.asarray(o) for o in outputs], (time.perf_counter() - t0) * 1000.0


def _acl_dtype(desc):
    """numpy dtype of an aclruntime tensor description; its datatype prints like 'dtype.float32'."""
    name = str(getattr(desc, "datatype", "float32")).rsplit(".", 1)[-1]
    try:
        return np.dtype(name)
    except TypeError:
        raise Flownet2Error(f"model input {desc.name}: data type {name} is not supported") from None


# --------------------------------------------------------------------------- PyTorch

def open_torch(weights, *, batch_size=1, size=DEFAULT_SIZE, precision="fp32", device=0, torch_mode="eager",
               unsafe_pickle=False):
    """PyTorch on CUDA GPU `device` when one is visible, else on the CPU (fp32, or bf16 with bf16 units)."""
    import torch

    from . import cpu, torch_backend

    cuda = torch.cuda.is_available()
    if not cuda:
        cpu.check_cpu_precision(precision)
    height, width = size
    # channels-last: what cuDNN's fast fp16 kernels want; the CPU's kernels prefer NCHW
    return torch_backend.TorchSession.load(weights, unsafe_pickle=unsafe_pickle, batch=batch_size, height=height,
                                           width=width, device=f"cuda:{device}" if cuda else "cpu",
                                           precision=precision, mode=torch_mode, channels_last=cuda)

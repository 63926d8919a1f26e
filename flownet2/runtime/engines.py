"""The engines that run a FlowNet2 model, one entry each: which models it takes, how it opens one, whether
the model has a fixed input size, its name in messages and the tools it needs.

    engine = engine_for("flownet2_bs1_sim_fix.onnx")       # ENGINES["onnxruntime"]
    engine = engine_for("stand-in:0", backend="torch")     # ENGINES["torch"]; a mismatch is refused
    session = engine.open(model, device=0, ...)            # what open_model() calls

Every place that decides by the model what runs it asks engine_for(). Openers are named as
"module:callable" and imported only when a model is opened, so reading the table costs no import of
torch, ONNX Runtime or ais_bench. The weights label is read by the model's kind
(flownet2.model.provenance.weights_label: ONNX metadata, the .om sidecar; a checkpoint's session labels
its own tensors).
"""
import dataclasses
import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass

from ..errors import Flownet2Error
from ..precisions import PRECISIONS  # noqa: F401 - re-exported: every engine's precisions, by name
from ..model.provenance import model_kind, weights_label

CANN_SET_ENV = ("$ASCEND_SET_ENV", "$ASCEND_TOOLKIT_HOME/set_env.sh",
                "/usr/local/Ascend/ascend-toolkit/set_env.sh", "~/Ascend/ascend-toolkit/set_env.sh")


def find_atc():
    """atc's path, or the CANN set_env.sh that puts it on PATH, or None."""
    if shutil.which("atc"):
        return shutil.which("atc")
    for candidate in CANN_SET_ENV:
        path = os.path.expanduser(os.path.expandvars(candidate))
        if "$" not in path and os.path.isfile(path):
            return path
    return None


def _importable(module):
    return lambda: importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Tool:
    """Something an engine needs installed: `present()` tells, `missing` is the line printed without it."""
    present: object
    missing: str


ATC = Tool(lambda: find_atc() is not None,
           "atc not found (not on PATH, no CANN set_env.sh): install the CANN toolkit")
AIS_BENCH = Tool(_importable("ais_bench"),
                 "ais_bench not importable: install its wheel (not on PyPI; "
                 "https://gitee.com/ascend/tools/tree/master/ais-bench_workload/tool/ais_bench)")
ONNXRUNTIME = Tool(_importable("onnxruntime"), "onnxruntime not importable: pip install -r requirements.txt")
OPENVINO = Tool(_importable("openvino"), "openvino not importable: pip install -r requirements.txt")


@dataclass(frozen=True)
class Engine:
    name: str            # the backend's name, as --backend spells it
    display: str         # its name in messages
    kind: str            # the model kind it runs (flownet2.model.provenance.model_kind)
    takes: str           # "ONNX Runtime runs <takes>"
    noun: str            # "<noun> runs on ONNX Runtime"
    opener: str          # "module:callable", called with the model and `options`
    options: tuple       # the open_model keywords the opener takes
    static: bool         # the model has its own fixed input size and batch (else it takes size and batch)
    emulates: bool = False      # can round like fp16/bf16 storage (open_model's emulate)
    tools: tuple = ()           # what the whole chain needs installed for it (python -m flownet2.stages)
    handed_over: bool = False   # python -m flownet2.infer passes the model to another program (ais_bench)
    also: tuple = ()            # other model kinds it runs when asked (--backend), static as their own engine
    precisions: tuple = ("fp32",)  # what it runs a static model in (precision of open_model)

    def open(self, model, **options):
        module, name = self.opener.split(":")
        opener = getattr(importlib.import_module(module), name)
        return opener(model, **{k: v for k, v in options.items() if k in self.options})

    def weights_label(self, model):
        """The label the model file records, or None (a checkpoint's is computed when it is opened)."""
        return weights_label(model)

    def missing_tools(self):
        """One line per tool this engine needs that is not installed here."""
        return [tool.missing for tool in self.tools if not tool.present()]


ENGINES = {engine.name: engine for engine in (
    Engine("onnxruntime", "ONNX Runtime", "onnx", takes=".onnx models", noun="an .onnx",
           opener="flownet2.runtime.sessions:open_onnx", options=("device", "emulate"), static=True,
           emulates=True, tools=(ONNXRUNTIME,)),
    Engine("ascend", "an Ascend NPU (ais_bench)", "om", takes=".om models", noun="an .om",
           opener="flownet2.runtime.sessions:OmSession", options=("device",), static=True,
           tools=(ATC, AIS_BENCH, ONNXRUNTIME), handed_over=True),
    Engine("torch", "PyTorch", "torch", takes="a checkpoint or stand-in:SEED", noun="a checkpoint or stand-in:SEED",
           opener="flownet2.runtime.sessions:open_torch",
           options=("batch_size", "size", "precision", "device", "torch_mode", "unsafe_pickle"), static=False,
           precisions=("fp32", "tf32", "fp16", "bf16")),  # torch_backend.PRECISIONS maps them to dtypes
    Engine("openvino", "OpenVINO", "onnx", takes=".onnx models, checkpoints and stand-in:SEED (on the CPU)",
           noun="an .onnx", opener="flownet2.runtime.openvino_backend:open_openvino",
           options=("batch_size", "size", "precision", "streams"), static=True, tools=(OPENVINO,), also=("torch",),
           precisions=("fp32", "bf16")),
)}
STREAMS_AUTO = "auto"  # several requests in flight: the engine's optimal number for the machine


def check_streams(streams):
    """streams is "auto" or a whole number of at least 1 (1: one request at a time)."""
    if streams != STREAMS_AUTO and (isinstance(streams, bool) or not isinstance(streams, int) or streams < 1):
        raise Flownet2Error(f"streams {streams!r}: requests in flight are {STREAMS_AUTO!r} or a whole number of "
                            "at least 1")


def streams_for(engine, streams):
    """The streams an engine is opened with: as asked where it keeps several requests in flight (the
    "streams" option), else 1 ("auto" means one at a time there; a number above 1 is refused)."""
    check_streams(streams)
    if "streams" in engine.options:
        return streams
    if streams not in (1, STREAMS_AUTO):
        raise Flownet2Error(f"streams {streams}: {engine.display} runs one request at a time; several in flight "
                            "run on OpenVINO")
    return 1


_BY_KIND = {engine.kind: engine for engine in ENGINES.values() if engine.name != "openvino"}


def engine_for(model, backend=None):
    """The engine that runs `model` (an .onnx, an .om, a checkpoint or stand-in:SEED); `backend`, when
    given, must be that engine's name."""
    kind = model_kind(model)
    engine = _BY_KIND[kind]
    if backend is None or backend == engine.name:
        return engine
    if backend not in ENGINES:
        raise Flownet2Error(f"backend {backend!r} is not one of {', '.join(ENGINES)}")
    asked = ENGINES[backend]
    if asked.kind == kind:
        return asked
    if kind in asked.also:  # e.g. OpenVINO running a checkpoint: sized at open, as PyTorch does
        return dataclasses.replace(asked, kind=kind, static=engine.static)
    raise Flownet2Error(f"{os.fspath(model)}: {asked.display} runs {asked.takes}; {engine.noun} runs on "
                        f"{engine.display}")


# --------------------------------------------------------------------------- the fast path (predict's default)

# On a CPU without bf16 units OpenVINO fp32 was measured no slower than ONNX Runtime fp32 (docs/cpu.md),
# so OpenVINO is the CPU engine either way.
CPU_ENGINE = "openvino"


def _cuda_visible(kind):
    """Whether the engine that runs this model kind today would run it on a CUDA GPU."""
    if kind == "onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            return False
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()


def choose(model, backend="auto", precision=None):
    """(engine name, precision) for Flownet2_predict.py: `backend` "auto" is ais_bench for an .om, what
    runs there today on a CUDA GPU, else OpenVINO; a precision not given is the CPU's fastest useful one
    (bf16 with bf16 units, else fp32) on a CPU engine, fp32 elsewhere. fp32 asked is always fp32."""
    from .cpu import cpu_precision

    kind = model_kind(model)
    if backend == "auto":
        backend = _BY_KIND[kind].name if kind == "om" or _cuda_visible(kind) else CPU_ENGINE
    engine_for(model, backend)  # a backend that cannot run this model is refused here, in one line
    on_cpu = backend == "openvino" or (backend == "torch" and not _cuda_visible("torch"))
    return backend, precision or (cpu_precision() if on_cpu else "fp32")


def describe(backend, precision, streams=1):
    """The line every predict run starts with: which engine, in which precision, and (an engine that
    keeps several requests in flight) how many streams were asked for."""
    engine = ENGINES[backend]
    line = f"engine: {engine.display}, {precision}"
    if "streams" not in engine.options:
        return line
    return line + f", streams {streams}"

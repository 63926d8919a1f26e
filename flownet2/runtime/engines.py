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
import importlib
import importlib.util
import os
import shutil
from dataclasses import dataclass

from ..errors import Flownet2Error
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
           options=("batch_size", "size", "precision", "device", "torch_mode", "unsafe_pickle"), static=False),
)}
_BY_KIND = {engine.kind: engine for engine in ENGINES.values()}


def engine_for(model, backend=None):
    """The engine that runs `model` (an .onnx, an .om, a checkpoint or stand-in:SEED); `backend`, when
    given, must be that engine's name."""
    engine = _BY_KIND[model_kind(model)]
    if backend is None or backend == engine.name:
        return engine
    if backend not in ENGINES:
        raise Flownet2Error(f"backend {backend!r} is not one of {', '.join(ENGINES)}")
    asked = ENGINES[backend]
    raise Flownet2Error(f"{os.fspath(model)}: {asked.display} runs {asked.takes}; {engine.noun} runs on "
                        f"{engine.display}")

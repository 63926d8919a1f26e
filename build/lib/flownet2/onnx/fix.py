"""Make an exported (and onnxsim-simplified) FlowNet2 ONNX friendlier to Ascend ATC, checking every step.

The rewrites (`onnx_slices.merge_slice_chains`, `onnx_int32.int64_to_int32`) are pure functions
`model -> (new_model, count)`: the input ModelProto is left untouched, `count` says how many things
changed, and `metadata_props` (the weights label lives there) are kept. `fix_model` runs them in order
and checks each one's result (onnx.checker, and with an `OutputCheck` the ONNX Runtime outputs against
the input model's), so a failure names the rewrite.
"""
import os
from collections.abc import Callable

import numpy as np
import onnx

from ..errors import Flownet2Error
from ..fileio import atomic_save
from .int32 import int64_to_int32
from .slices import merge_slice_chains

TOLERANCE = 1e-5  # largest |output difference| a rewrite may cause on random inputs
_PROTOBUF_LIMIT = 2**31 - 1  # protobuf cannot serialise a message larger than this


def load_onnx(path: str) -> onnx.ModelProto:
    """The ONNX model at `path` (with its external data), or Flownet2Error naming the file."""
    if not os.path.isfile(path):
        raise Flownet2Error(f"{path}: no such ONNX file")
    try:
        model = onnx.load(path)
    except Exception as e:  # protobuf / external-data errors have no common base class
        raise Flownet2Error(f"{path}: the input is not an ONNX model ({type(e).__name__}: {e})") from None
    if not model.HasField("graph") or model.ir_version == 0:  # e.g. an empty file parses as an empty proto
        raise Flownet2Error(f"{path}: the input is not an ONNX model (no graph or IR version; "
                            f"{os.path.getsize(path)} bytes)")
    return model


REWRITES = (
    ("merge Slice->Slice chains", merge_slice_chains),
    ("int64 -> int32", int64_to_int32),
)


def fix_model(model: onnx.ModelProto, *,
              check_outputs: Callable[[str, onnx.ModelProto], float] | None = None,
              ) -> tuple[onnx.ModelProto, list[tuple[str, int]]]:
    """All rewrites in order -> (model, [(rewrite name, count), ...]).

    The result of every rewrite that changed something must pass onnx.checker (full check) and, when
    `check_outputs` is set (an `OutputCheck`), `check_outputs(name, model)`. Each failure is a
    Flownet2Error that names the rewrite, or the input when it fails the checker itself.
    """
    source, report, checked = model, [], False
    for name, rewrite in REWRITES:
        rewritten, count = rewrite(model)
        if count or len(rewritten.graph.node) != len(model.graph.node):  # unchanged models need no check
            _check_valid(rewritten, f"rewrite '{name}'", source=source)
            if check_outputs is not None:
                check_outputs(name, rewritten)
            checked = True
        model = rewritten
        report.append((name, count))
    if not checked:  # nothing changed: the result is the input, which still has to be valid
        _check_valid(model, "the input model", source=model)
    return model, report


def _checker_error(model):
    """onnx.checker's complaint about `model` (full check) in one line, or None when it passes."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        return str(e).strip().splitlines()[0]
    except ValueError as e:  # protobuf refuses to serialise a model over 2 GiB for the checker
        return f"cannot be checked: {e}"
    return None


def _check_valid(model, what, *, source):
    """Flownet2Error when `model` fails onnx.checker, blaming `what`, or the input `source` when that
    fails too (checked only then: a full check of FlowNet2 costs seconds)."""
    error = _checker_error(model)
    if error is None:
        return
    if source is not model:
        own = _checker_error(source)
        if own is not None:
            what, error = "the input model", own
    raise Flownet2Error(f"{what} fails onnx.checker: {error}")


def save_onnx(model: onnx.ModelProto, path: str) -> int:
    """Write `model` as one self-contained .onnx file, atomically; returns its size in bytes."""
    if model.ByteSize() > _PROTOBUF_LIMIT:
        raise Flownet2Error(f"{path}: the model is over 2 GiB, which a single ONNX file cannot hold")
    data = model.SerializeToString()
    atomic_save(path, data)
    return len(data)


def random_feeds(model: onnx.ModelProto, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every graph input of `model`: {name: array of its static shape (unknown
    dims 1) and type}; floats uniform in [-0.5, 0.5), integers 0 or 1."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in initializers:
            continue
        tt = vi.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tt.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = (rng.random(shape) - 0.5).astype(dtype)
        else:
            feeds[vi.name] = rng.integers(0, 2, size=shape).astype(dtype)
    return feeds


def _run(model, feeds, what):
    """Outputs of `model` (a path, so external data is found, or a ModelProto) on ONNX Runtime's CPU."""
    import onnxruntime as ort  # only the checks need it

    source = model if isinstance(model, str) else model.SerializeToString()
    try:
        return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as e:  # ONNX Runtime's errors share no base class beyond Exception
        raise Flownet2Error(f"{what} does not run on ONNX Runtime: {str(e).strip().splitlines()[0]}") from None


class OutputCheck:
    """Compares rewritten models with a reference model on ONNX Runtime, on one set of random inputs.

    The reference runs once; each call `check(rewrite_name, model)` runs the rewritten model, records
    the largest |output difference| in `diffs[rewrite_name]`, and raises Flownet2Error naming the
    rewrite when it exceeds `tolerance` (or an output changed shape).
    """

    def __init__(self, reference: str | onnx.ModelProto, *, seed: int = 0, tolerance: float = TOLERANCE):
        header = onnx.load(reference, load_external_data=False) if isinstance(reference, str) else reference
        self.seed, self.tolerance = seed, tolerance
        self.feeds = random_feeds(header, seed=seed)
        self.expected = _run(reference, self.feeds, "the input model")
        self.diffs: dict[str, float] = {}

    def __call__(self, name: str, model: onnx.ModelProto) -> float:
        diff = 0.0
        for k, (want, got) in enumerate(zip(self.expected, _run(model, self.feeds, f"the result of rewrite '{name}'"))):
            if want.shape != got.shape:
                self.diffs[name] = float("inf")
                raise Flownet2Error(f"rewrite '{name}' changes the shape of output {k} from {list(want.shape)} "
                                    f"to {list(got.shape)}")
            diff = max(diff, float(np.max(np.abs(want.astype(np.float64) - got.astype(np.float64)), initial=0.0)))
        self.diffs[name] = diff
        if not diff <= self.tolerance:
            raise Flownet2Error(f"rewrite '{name}' changes the outputs by {diff:.3g} (> {self.tolerance}) "
                                f"on random inputs (seed {self.seed})")
        return diff

    @property
    def worst(self) -> float:
        """Largest difference seen so far (0 when no rewrite changed anything)."""
        return max(self.diffs.values(), default=0.0)

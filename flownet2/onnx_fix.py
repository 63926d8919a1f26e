"""Graph rewrites that make an exported (and onnxsim-simplified) FlowNet2 ONNX friendlier to Ascend ATC.

Each rewrite is a pure function `model -> (new_model, count)`: the input ModelProto is left untouched,
`count` says how many things it changed. Both keep the model valid ONNX (unlike the Ascend example's
fix, whose int64 -> int32 pass also rewrote Reshape shapes, which ONNX Runtime then rejects) and keep
`metadata_props` (the weights label lives there). `fix_model` runs them in order and checks each one's
result (onnx.checker, and ONNX Runtime outputs against the input model's), so a failure names the rewrite.
"""
import collections
import os
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .errors import Flownet2Error
from .fileio import atomic_save

INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
DEFAULT_DOMAINS = ("", "ai.onnx")  # both spellings of the standard ONNX operator set
TOLERANCE = 1e-5  # largest |output difference| a rewrite may cause on random inputs
_PROTOBUF_LIMIT = 2**31 - 1  # protobuf cannot serialise a message larger than this


def in_default_domain(node: onnx.NodeProto) -> bool:
    """True for a node of the standard ONNX operator set (not a custom or vendor domain)."""
    return node.domain in DEFAULT_DOMAINS


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


def _copy(model):
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _constant_tensors(graph):
    """name -> TensorProto for initializers and Constant(value=...) outputs (converted lazily)."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and in_default_domain(node):
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = attr.t
    return found


def _shape_of(model, name, cache):
    """Static dims of tensor `name` (list of int/None) via ONNX shape inference, computed once."""
    if "dims" not in cache:
        inferred = onnx.shape_inference.infer_shapes(model)
        dims = {}
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
            shape = vi.type.tensor_type.shape
            if vi.type.tensor_type.HasField("shape"):
                dims[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
        for t in model.graph.initializer:
            dims[t.name] = list(t.dims)
        cache["dims"] = dims
    return cache["dims"].get(name)


# --------------------------------------------------------------------------- Slice -> Slice merging

def _slice_spec(node, consts):
    """{axis: (start, end, step)} of an opset-10+ Slice with constant parameters, else None."""
    if node.op_type != "Slice" or not in_default_domain(node) or len(node.input) < 3:
        return None
    params = []
    for i in range(1, 5):
        name = node.input[i] if i < len(node.input) else ""
        if not name:
            params.append(None)
        elif name in consts:
            params.append([int(v) for v in numpy_helper.to_array(consts[name]).reshape(-1)])
        else:
            return None
    starts, ends, axes, steps = params
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if not (len(starts) == len(ends) == len(axes) == len(steps)) or len(set(axes)) != len(axes):
        return None
    return {a: (s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)}


def _indices(dim, start, end, step):
    """The indices a positive-step ONNX Slice takes along an axis of size `dim`.

    Negative start/end count from the end, then both are clamped to [0, dim]. Negative steps are
    never composed: there runtimes disagree with the spec (ONNX Runtime reads end=INT64_MAX as
    "through index 0", the spec as "nothing").
    """
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    return range(min(max(start, 0), dim), min(max(end, 0), dim), step)


def _as_slice(indices):
    """(start, end, step) selecting exactly `indices` (an increasing arithmetic progression)."""
    if not indices:
        return 0, 0, 1
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    return indices[0], indices[-1] + step, step


def _compose(outer, inner, dims):
    """Spec of Slice(inner) applied to Slice(outer)'s output; None when a shared axis cannot be composed
    safely (unknown size or a non-positive step)."""
    merged = dict(outer)
    for axis, spec in inner.items():
        if axis not in outer:
            merged[axis] = spec
            continue
        dim = dims[axis] if dims is not None and axis < len(dims) else None
        if dim is None or outer[axis][2] <= 0 or spec[2] <= 0:
            return None
        first = _indices(dim, *outer[axis])
        merged[axis] = _as_slice([first[i] for i in _indices(len(first), *spec)])
    return merged


def _normalise_axes(spec, rank):
    if rank is None:
        return spec if all(a >= 0 for a in spec) else None
    out = {}
    for a, v in spec.items():
        a = a + rank if a < 0 else a
        if not 0 <= a < rank or a in out:
            return None
        out[a] = v
    return out


def _chain_spec(model, source, outer, inner, cache):
    """Merged spec of Slice(inner) after Slice(outer) on tensor `source`, or None if unknowable."""
    dims = None
    if any(a < 0 for a in [*outer, *inner]) or set(outer) & set(inner):
        dims = _shape_of(model, source, cache)  # to normalise negative axes / compose a shared axis
    rank = len(dims) if dims is not None else None
    outer, inner = _normalise_axes(outer, rank), _normalise_axes(inner, rank)
    if outer is None or inner is None:
        return None
    return _compose(outer, inner, dims)


def _rewire(graph, node, source, spec, taken, index_type):
    """Point Slice `node` at `source` with new initializers for `spec`; returns them."""
    dtype = np.int32 if index_type == TensorProto.INT32 else np.int64
    axes = sorted(spec)
    values = {"starts": [spec[a][0] for a in axes], "ends": [spec[a][1] for a in axes],
              "axes": axes, "steps": [spec[a][2] for a in axes]}
    base = (node.name or node.output[0]).strip("/").replace("/", "_") or "slice"
    added = []
    for what, vals in values.items():
        name, k = f"{base}_merged_{what}", 0
        while name in taken:
            k += 1
            name = f"{base}_merged_{what}_{k}"
        taken.add(name)
        # clamping a bound into int32 keeps its meaning: ONNX clamps to the (smaller) axis size anyway
        arr = np.clip(np.asarray(vals, np.int64), INT32_MIN, INT32_MAX) if dtype == np.int32 else vals
        added.append(numpy_helper.from_array(np.asarray(arr, dtype), name))
    graph.initializer.extend(added)
    del node.input[:]
    node.input.extend([source] + [t.name for t in added])
    return added


def merge_slice_chains(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Fold every Slice whose data comes from another Slice into one multi-axis Slice on the source.

    Works in topological order, so a chain of any length collapses onto its first input; a bypassed
    Slice is removed once nothing reads it. Count = Slices rewritten.
    """
    model = _copy(model)
    graph = model.graph
    consts = _constant_tensors(graph)
    producer = {o: n for n in graph.node for o in n.output}
    taken = {t.name for t in graph.initializer} | set(producer) | {i.name for i in graph.input}
    cache = {}
    count = 0
    for node in graph.node:
        inner = _slice_spec(node, consts)
        parent = producer.get(node.input[0]) if inner is not None else None
        outer = _slice_spec(parent, consts) if parent is not None else None
        spec = _chain_spec(model, parent.input[0], outer, inner, cache) if outer is not None else None
        if spec is None:
            continue
        index_type = consts[node.input[1]].data_type
        for tensor in _rewire(graph, node, parent.input[0], spec, taken, index_type):
            consts[tensor.name] = tensor
        count += 1
    _drop_dead(graph)
    return model, count


def _drop_dead(graph):
    """Remove nodes whose outputs nobody reads (iteratively), then initializers nobody reads."""
    keep_names = {o.name for o in graph.output}
    while True:
        used = keep_names | {i for n in graph.node for i in n.input} | _subgraph_names(graph)
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = keep_names | {i for n in graph.node for i in n.input} | _subgraph_names(graph)
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def _subgraph_names(graph):
    """Every tensor name referenced inside If/Loop/Scan bodies (never touched by the rewrites)."""
    names = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in list(attr.g.node if attr.HasField("g") else []) + [n for g in attr.graphs for n in g.node]:
                names.update(sub.input)
                names.update(sub.output)
    return names


# --------------------------------------------------------------------------- int64 -> int32

# Per op: groups of positions whose tensors must share one element type ("i3" = input 3, "o0" =
# output 0, "i*" = every input). Converting one member means converting the whole group.
_TIED = {
    **{op: [["i*", "o0"]] for op in ("Add", "Sub", "Mul", "Div", "Mod", "Min", "Max", "Sum", "Concat",
                                    "Neg", "Abs", "Identity", "Clip")},
    **{op: [["i0", "o0"]] for op in ("Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose",
                                    "Expand", "Tile", "Gather", "GatherElements")},
    **{op: [["i*"]] for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual")},
    "Where": [["i1", "i2", "o0"]],
    "Slice": [["i0", "o0"], ["i1", "i2", "i3", "i4"]],
}
# Inputs the ONNX spec lets be int32 or int64 (index-like); everything not listed as tied or free
# pins its int64 tensor (Reshape/Expand/Tile shapes, ConstantOfShape, Pad pads, Resize sizes, ...).
_FREE = {"Cast": {0}, "Gather": {1}, "GatherElements": {1}, "Where": {0}}
_SLICE_BOUNDS = {1, 2}  # starts/ends of a positive-step Slice: clamping changes nothing (ONNX clamps too)


def _positions(spec, node):
    if spec == "i*":
        return [("i", k) for k in range(len(node.input))]
    return [(spec[0], int(spec[1:]))]


def _name_at(node, where):
    kind, k = where
    names = node.input if kind == "i" else node.output
    return names[k] if k < len(names) else ""


class _Groups:
    """Union-find over tensor names."""

    def __init__(self):
        self.parent = {}

    def find(self, x):
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


def _int64_plan(graph: onnx.GraphProto) -> tuple[set[str], dict[str, onnx.TensorProto]]:
    """(names of the tensors to retype to int32, the graph's constant tensors by name).

    Tensors tied by type constraints form groups. A group is converted only if it holds an int64
    source we can retype and none of its members has a type fixed from outside the group.
    """
    consts = _constant_tensors(graph)
    sources = _int64_sources(graph, consts)
    fixed = _boundary_names(graph) | _fixed_by_position(graph, consts) | _unclampable_constants(graph, consts)
    convert = set()
    for members in _type_groups(graph, consts):
        if members & sources and not members & fixed:
            convert |= members
    return convert, consts


def _tied_positions(node: onnx.NodeProto) -> list[list[tuple[tuple[str, int], str]]]:
    """Per type-tie group of `node`: [(position, tensor name), ...], absent optional tensors left out."""
    if not in_default_domain(node):
        return []
    groups = []
    for spec_group in _TIED.get(node.op_type, []):
        named = [(where, _name_at(node, where)) for spec in spec_group for where in _positions(spec, node)]
        groups.append([(where, name) for where, name in named if name])
    return groups


def _type_groups(graph, consts):
    """Sets of tensor names that must share one element type (every node output and constant is in one)."""
    groups = _Groups()
    for node in graph.node:
        for tied in _tied_positions(node):
            for _, name in tied[1:]:
                groups.union(tied[0][1], name)
        for name in node.output:
            if name:
                groups.find(name)
    for name in consts:
        groups.find(name)
    members = collections.defaultdict(set)
    for name in list(groups.parent):
        members[groups.find(name)].add(name)
    return list(members.values())


def _casts_to_int64(node):
    return in_default_domain(node) and node.op_type == "Cast" and _attr(node, "to") == TensorProto.INT64


def _int64_sources(graph, consts):
    """Tensors whose type we choose: outputs of Casts to int64 (the cast can target int32 instead) and
    int64 constants."""
    casts = {node.output[0] for node in graph.node if _casts_to_int64(node)}
    return casts | {name for name, t in consts.items() if t.data_type == TensorProto.INT64}


def _boundary_names(graph):
    """Graph inputs and outputs and names used inside subgraphs: their types are not ours to change."""
    return {i.name for i in graph.input} | {o.name for o in graph.output} | _subgraph_names(graph)


def _fixed_by_position(graph, consts):
    """Tensors an op fixes the type of: read where the spec wants int64 (Reshape shape, Pad pads...) or
    where we do not know the op, and outputs of ops whose output type we cannot choose."""
    fixed = set()
    for node in graph.node:
        tied = {where for group in _tied_positions(node) for where, _ in group}
        free = _FREE.get(node.op_type, set()) if in_default_domain(node) else set()
        fixed.update(name for k, name in enumerate(node.input) if name and ("i", k) not in tied and k not in free)
        if not _casts_to_int64(node):
            fixed.update(name for k, name in enumerate(node.output)
                         if name and name not in consts and ("o", k) not in tied)
    return fixed


def _unclampable_constants(graph, consts):
    """int64 constants outside the int32 range, unless every reader is a start/end of a positive-step
    Slice (there clamping changes nothing: ONNX clamps to the axis size anyway)."""
    readers = collections.defaultdict(list)
    for node in graph.node:
        for k, name in enumerate(node.input):
            readers[name].append((node, k))
    out = set()
    for name, t in consts.items():
        if t.data_type != TensorProto.INT64:
            continue
        values = numpy_helper.to_array(t)
        if values.size and (values.min() < INT32_MIN or values.max() > INT32_MAX):
            if not all(n.op_type == "Slice" and k in _SLICE_BOUNDS and _positive_steps(n, consts)
                       for n, k in readers[name]):
                out.add(name)
    return out


def _positive_steps(node, consts):
    if len(node.input) < 5 or not node.input[4]:
        return True  # default steps are 1
    return node.input[4] in consts and bool(np.all(numpy_helper.to_array(consts[node.input[4]]) > 0))


def _attr(node, name):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def int64_to_int32(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Retype int64 index arithmetic to int32 where the ONNX spec allows it.

    Casts to int64 become casts to int32 and int64 constants/initializers become int32 when every
    tensor they reach is read as Gather/GatherElements indices, Slice parameters or Cast input (through
    type-preserving ops such as Add/Mul/Reshape data). Shape-like inputs stay int64. Count = casts
    retargeted + constants converted.
    """
    model = _copy(model)
    graph = model.graph
    convert, consts = _int64_plan(graph)
    count = 0
    for node in graph.node:
        if _casts_to_int64(node) and node.output[0] in convert:
            next(a for a in node.attribute if a.name == "to").i = TensorProto.INT32
            count += 1
    for name, t in consts.items():
        if name in convert and t.data_type == TensorProto.INT64:
            arr = np.clip(numpy_helper.to_array(t), INT32_MIN, INT32_MAX).astype(np.int32)
            t.CopyFrom(numpy_helper.from_array(arr, t.name))
            count += 1
    for vi in graph.value_info:  # stale int64 annotations would contradict the new types
        if vi.name in convert and vi.type.tensor_type.elem_type == TensorProto.INT64:
            vi.type.tensor_type.elem_type = TensorProto.INT32
    return model, count


REWRITES = (
    ("merge Slice->Slice chains", merge_slice_chains),
    ("int64 -> int32", int64_to_int32),
)


def fix_model(model: onnx.ModelProto, *,
              check_outputs: Callable[[str, onnx.ModelProto], float] | None = None,
              ) -> tuple[onnx.ModelProto, list[tuple[str, int]]]:
    """All rewrites in order -> (model, [(rewrite name, count), ...]).

    The input must pass onnx.checker (full check), and so must every rewrite's result; a rewrite that
    changed something is also given to `check_outputs(name, model)` (an `OutputCheck`) when set. Each
    failure is a Flownet2Error that names the rewrite (or the input, when it was invalid already).
    """
    _checked(model, "the input model")
    report = []
    for name, rewrite in REWRITES:
        rewritten, count = rewrite(model)
        if count or len(rewritten.graph.node) != len(model.graph.node):  # unchanged models need no check
            _checked(rewritten, f"rewrite '{name}'")
            if check_outputs is not None:
                check_outputs(name, rewritten)
        model = rewritten
        report.append((name, count))
    return model, report


def _checked(model, what):
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise Flownet2Error(f"{what} fails onnx.checker: {str(e).strip().splitlines()[0]}") from None
    except ValueError as e:  # protobuf refuses to serialise a model over 2 GiB for the checker
        raise Flownet2Error(f"{what} cannot be checked: {e}") from None


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

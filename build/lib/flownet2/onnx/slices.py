"""Slice -> Slice chains folded into one multi-axis Slice: fewer nodes for ATC to convert.

Works on the index sets the ONNX spec defines, so the merged Slice selects exactly what the chain did.
"""
import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .graph import INT32_MAX, INT32_MIN, constant_tensors, copy_model, in_default_domain, subgraph_names


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
    model = copy_model(model)
    graph = model.graph
    consts = constant_tensors(graph)
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
        used = keep_names | {i for n in graph.node for i in n.input} | subgraph_names(graph)
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = keep_names | {i for n in graph.node for i in n.input} | subgraph_names(graph)
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)

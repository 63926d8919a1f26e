"""int64 index arithmetic retyped to int32 where the ONNX spec allows it, as the Ascend example's fix does
for ATC; unlike that fix, which also rewrote Reshape shapes (then rejected by ONNX Runtime), shape-like
inputs stay int64, so the result stays valid ONNX.
"""
import collections

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .graph import INT32_MAX, INT32_MIN, attribute, constant_tensors, copy_model, in_default_domain, subgraph_names

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
    consts = constant_tensors(graph)
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
    return in_default_domain(node) and node.op_type == "Cast" and attribute(node, "to") == TensorProto.INT64


def _int64_sources(graph, consts):
    """Tensors whose type we choose: outputs of Casts to int64 (the cast can target int32 instead) and
    int64 constants."""
    casts = {node.output[0] for node in graph.node if _casts_to_int64(node)}
    return casts | {name for name, t in consts.items() if t.data_type == TensorProto.INT64}


def _boundary_names(graph):
    """Graph inputs and outputs and names used inside subgraphs: their types are not ours to change."""
    return {i.name for i in graph.input} | {o.name for o in graph.output} | subgraph_names(graph)


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


def int64_to_int32(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Retype int64 index arithmetic to int32 where the ONNX spec allows it.

    Casts to int64 become casts to int32 and int64 constants/initializers become int32 when every
    tensor they reach is read as Gather/GatherElements indices, Slice parameters or Cast input (through
    type-preserving ops such as Add/Mul/Reshape data). Shape-like inputs stay int64. Count = casts
    retargeted + constants converted.
    """
    model = copy_model(model)
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

"""What an ONNX model gives in fp16 or bf16, estimated on the CPU in fp32 (ONNX Runtime).

    emulated = emulate_onnx(onnx.load("flownet2_bs1.onnx"), "fp16")

The emulated model rounds every float initializer, every float graph input and every float tensor a
node writes to the reduced type (a Cast there and back after each node), while each node computes in
fp32: roughly the NPU's force_fp16 mode, whose Cube unit also accumulates in fp32. Open it with ONNX
Runtime graph optimisations disabled, so no fusion skips a rounding. It is an estimate: ATC fuses ops
(fewer roundings), and some of its vector kernels compute in fp16 (more).

bf16 needs a Cast to bfloat16, which ONNX has only from opset 13: a bf16-emulated model is first
converted to opset 13 (onnx.version_converter; same fp32 results), then rounded the same way.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper, version_converter

from ..errors import Flownet2Error

KINDS = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
_BF16_OPSET = 13  # first opset whose Cast takes bfloat16
_SUFFIX = "__exact"  # a node's unrounded output, before its Cast pair


def round_array(x, kind):
    """numpy float32 array rounded to fp16 or bf16 (round to nearest even), back as float32."""
    x = np.asarray(x, dtype=np.float32)
    if kind == "fp16":
        with np.errstate(over="ignore"):
            return x.astype(np.float16).astype(np.float32)
    if kind == "bf16":
        bits = x.view(np.uint32).astype(np.uint64)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # NaN payloads stay NaN
        return bits.astype(np.uint32).view(np.float32)
    raise Flownet2Error(f"precision emulation must be one of {', '.join(KINDS)}, got {kind!r}")


def _float_tensors(model):
    """Names of the tensors that hold float32 (graph inputs, node outputs), from type inference on
    `model` (a light copy: its weights are inputs)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name for v in infos if v.type.tensor_type.elem_type == TensorProto.FLOAT}


def _without_weights(model):
    """A copy of `model` whose initializers are graph inputs of the same type and shape (cheap to
    copy, convert and infer), and the initializers themselves (not copied)."""
    light = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name,
                            producer_version=model.producer_version)
    light.opset_import.extend(model.opset_import)
    light.metadata_props.extend(model.metadata_props)
    light.graph.name = model.graph.name
    light.graph.node.extend(model.graph.node)
    light.graph.input.extend(model.graph.input)
    light.graph.output.extend(model.graph.output)
    known = {i.name for i in model.graph.input}
    for t in model.graph.initializer:
        if t.name not in known:
            light.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    return light, list(model.graph.initializer)


def _with_weights(light, weights):
    names = {t.name for t in weights}
    inputs = [i for i in light.graph.input if i.name not in names]
    del light.graph.input[:]
    light.graph.input.extend(inputs)
    light.graph.initializer.extend(weights)
    return light


def _round_nodes(src, dst, kind, name):
    to = KINDS[kind]
    return [helper.make_node("Cast", [src], [f"{name}_reduced"], name=f"{name}_cast_{kind}", to=to),
            helper.make_node("Cast", [f"{name}_reduced"], [dst], name=f"{name}_cast_back", to=TensorProto.FLOAT)]


def emulate_onnx(model, kind):
    """A new model computing like `model` with every float tensor rounded to `kind` (fp16 or bf16)."""
    if kind not in KINDS:
        raise Flownet2Error(f"precision emulation must be one of {', '.join(KINDS)}, got {kind!r}")
    light, weights = _without_weights(model)
    if kind == "bf16" and light.opset_import and _default_opset(light) < _BF16_OPSET:
        light = version_converter.convert_version(light, _BF16_OPSET)
    floats = _float_tensors(light)
    weight_names = {t.name for t in weights}
    rounded = []
    for t in weights:
        if t.data_type == TensorProto.FLOAT:
            t = numpy_helper.from_array(round_array(numpy_helper.to_array(t), kind), t.name)
        rounded.append(t)
    nodes = []
    # Graph inputs are read by the NPU in the reduced type too: round them once, rewire the readers.
    inputs = {i.name for i in light.graph.input if i.name in floats and i.name not in weight_names}
    for name in sorted(inputs):
        nodes += _round_nodes(name, f"{name}_{kind}", kind, f"{name}_input")
    for node in light.graph.node:
        node.input[:] = [f"{i}_{kind}" if i in inputs else i for i in node.input]
        outs = [o for o in node.output if o in floats]
        for o in outs:  # the node writes o + suffix; the Cast pair writes the name readers expect
            node.output[list(node.output).index(o)] = o + _SUFFIX
        nodes.append(node)
        for o in outs:
            nodes += _round_nodes(o + _SUFFIX, o, kind, o)
    del light.graph.node[:]
    light.graph.node.extend(nodes)
    return _with_weights(light, rounded)


def _default_opset(model):
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def sensitive_nodes(model, feeds, kind="fp16", *, top=10, chunk=64):
    """The nodes whose outputs suffer most from `kind`, worst first, for an ATC --keep_dtype list.

    Runs `model` in fp32 and emulated side by side on `feeds` (ONNX Runtime, no graph optimisations),
    comparing every float tensor a node writes. Returns up to `top` tuples (node name, op type,
    creates non-finite values, share of values finite in fp32 but not emulated, max |difference| /
    max |fp32 value|). First come the nodes that create non-finite values from finite inputs (where
    an overflow starts, not the nodes it spreads to), then the rest by relative drift. Tensors are
    fetched `chunk` at a time to bound memory.
    """
    import onnxruntime as ort

    emulated = emulate_onnx(model, kind)
    floats = _float_tensors(_without_weights(model)[0])
    producers = [(n, o) for n in model.graph.node for o in n.output if o in floats]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    stats, broken = {}, set()  # output name -> (share broken, relative drift); names with non-finite values
    for start in range(0, len(producers), chunk):
        names = [o for _, o in producers[start:start + chunk]]
        outs = []
        for m in (model, emulated):
            probe = onnx.ModelProto()
            probe.CopyFrom(m)
            probe.graph.output.extend(helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in names)
            session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
            outs.append(session.run(names, feeds))
        for name, ref, low in zip(names, *outs):
            finite, low_finite = np.isfinite(ref), np.isfinite(low)
            if not low_finite.all():
                broken.add(name)
            both = finite & low_finite
            scale = float(np.abs(ref[finite]).max()) if finite.any() else 0.0
            diff = float(np.abs(low[both] - ref[both]).max()) if both.any() else 0.0
            stats[name] = (float((finite & ~low_finite).mean()) if ref.size else 0.0, diff / scale if scale else 0.0)
    rows = []
    for node, out in producers:
        share, drift = stats[out]
        creates = out in broken and not any(i in broken for i in node.input)
        rows.append((node.name, node.op_type, creates, share, drift))
    rows.sort(key=lambda r: (not r[2], -r[4]))
    return rows[:top]

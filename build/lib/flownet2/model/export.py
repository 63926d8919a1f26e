"""FlowNet2 -> ONNX with the Ascend guide's contract: inputs x1, x2, output flow, static shapes."""
import collections
import io
import os
import warnings

import onnx
import torch

from ..fileio import atomic_write
from ..sizes import check_batch_size, check_input_size
from .provenance import KEY as WEIGHTS_KEY

INPUT_NAMES = ("x1", "x2")
OUTPUT_NAME = "flow"


def example_inputs(batch_size, height, width):
    """The (x1, x2) the export traces with: zeros of (batch_size, 3, height, width).

    The one place the exporter checks its size and batch, so a caller can refuse bad ones before
    loading 620 MB of weights.
    """
    check_input_size(height, width)
    check_batch_size(batch_size)
    x1 = torch.zeros(batch_size, 3, height, width)
    return x1, x1.clone()


def export_onnx(model, path, inputs, *, opset=11, weights_label=None):
    """Trace `model` at the static shape of `inputs` (from example_inputs) and write a checked ONNX
    file atomically. The graph is built in memory and written once."""
    model = model.eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python ints in shapes: shapes are static here
        torch.onnx.export(model, tuple(inputs), buffer, dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
                          do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    del buffer
    constants_to_initializers(proto.graph)
    if weights_label:
        proto.metadata_props.add(key=WEIGHTS_KEY, value=weights_label)
    onnx.checker.check_model(proto)
    with atomic_write(path, "wb") as f:
        f.write(proto.SerializeToString())
    return proto


def constants_to_initializers(graph):
    """Move Constant nodes' tensors into initializers (what onnxsim does too): same model, and the
    node count then counts only computation."""
    keep = []
    for node in graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def graph_summary(proto):
    """Node count and op histogram (most frequent first) of an ONNX model."""
    ops = collections.Counter(node.op_type for node in proto.graph.node)
    return len(proto.graph.node), ops.most_common()


def describe(proto, path):
    nodes, ops = graph_summary(proto)
    size_mb = os.path.getsize(path) / 2**20
    hist = ", ".join(f"{op} {n}" for op, n in ops)
    return f"{path}: {nodes} nodes, {size_mb:.1f} MiB\nops: {hist}"

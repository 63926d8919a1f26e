"""Small facts about ONNX graphs that the rewrites and the ATC check share."""
import numpy as np
import onnx

INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)
DEFAULT_DOMAINS = ("", "ai.onnx")  # both spellings of the standard ONNX operator set


def in_default_domain(node: onnx.NodeProto) -> bool:
    """True for a node of the standard ONNX operator set (not a custom or vendor domain)."""
    return node.domain in DEFAULT_DOMAINS


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A deep copy (rewrites never change the model they are given)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def constant_tensors(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """name -> TensorProto for initializers and Constant(value=...) outputs (converted lazily)."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and in_default_domain(node):
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = attr.t
    return found


def subgraph_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name referenced inside If/Loop/Scan bodies (never touched by the rewrites)."""
    names = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in list(attr.g.node if attr.HasField("g") else []) + [n for g in attr.graphs for n in g.node]:
                names.update(sub.input)
                names.update(sub.output)
    return names


def attribute(node: onnx.NodeProto, name: str):
    """Value of attribute `name` of `node`, or None."""
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None

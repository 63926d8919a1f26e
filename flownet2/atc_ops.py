"""Which ONNX operators are known to convert with ATC for Ascend310P, and which nodes of a model are not.

The list is data (flownet2/data/atc_310p_ops.txt, sources in its header): the ops of the graph the
published Ascend flow compiled, plus CANN's documented ONNX operator list.
"""
import collections
import os

OPS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "atc_310p_ops.txt")
_DEFAULT_DOMAINS = ("", "ai.onnx")


def load_supported_ops(path=OPS_FILE):
    """Op names from the list file: one per line, first word; '#' starts a comment."""
    ops = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if words:
                ops.add(words[0])
    return ops


def unsupported_nodes(model, supported):
    """{op: [node names]} for every node outside `supported` (other domains count as unsupported)."""
    found = collections.defaultdict(list)
    for k, node in enumerate(model.graph.node):
        op = node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}::{node.op_type}"
        if op not in supported:
            found[op].append(node.name or f"<unnamed node #{k}>")
    return dict(found)


def describe_unsupported(found, max_names=5):
    """One line per op: 'Op (n nodes): name1, name2, ...'."""
    lines = []
    for op, names in sorted(found.items()):
        shown = ", ".join(names[:max_names]) + (f", ... (+{len(names) - max_names} more)" if len(names) > max_names else "")
        lines.append(f"{op} ({len(names)} node{'s' if len(names) != 1 else ''}): {shown}")
    return lines

"""Which ONNX operators ATC is known to convert for Ascend310P, in two tiers, and which nodes of a model
fall outside them.

The list is data (flownet2/onnx/atc_310p_ops.txt, sources in its header). Tier 1 ("published"): the
ops of the graph of the published Ascend guide, which ATC compiled and ran on a 310P. Tier 2 ("cann"):
ops on CANN's documented ONNX operator list only, so documented but unproven on this network. An op
on neither list is not known to convert at all.
"""
import collections
import os
from typing import NamedTuple

from .graph import in_default_domain

OPS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "atc_310p_ops.txt")
PUBLISHED, CANN = "published", "cann"


class OpCheck(NamedTuple):
    """{op: [node names]} for the ops only on CANN's list, and for the ops on neither list."""
    unproven: dict
    unknown: dict


def load_op_tiers(path=OPS_FILE):
    """{source tag: set of op names} from the list file (op first, then its tags; '#' starts a comment)."""
    tiers = collections.defaultdict(set)
    with open(path, encoding="utf-8") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            for tag in words[1:]:
                tiers[tag].add(words[0])
    return dict(tiers)


def load_supported_ops(path=OPS_FILE):
    """Every op on the list, either tier."""
    return set().union(*load_op_tiers(path).values())


def unsupported_nodes(model, supported):
    """{op: [node names]} for every node outside `supported` (other domains count as unsupported)."""
    found = collections.defaultdict(list)
    for k, node in enumerate(model.graph.node):
        op = node.op_type if in_default_domain(node) else f"{node.domain}::{node.op_type}"
        if op not in supported:
            found[op].append(node.name or f"<unnamed node #{k}>")
    return dict(found)


def check_ops(model, path=OPS_FILE):
    """Sort the model's nodes outside tier 1 into tier 2 (unproven) and neither (unknown)."""
    tiers = load_op_tiers(path)
    outside = unsupported_nodes(model, tiers.get(PUBLISHED, set()))
    cann = tiers.get(CANN, set())
    return OpCheck({op: names for op, names in outside.items() if op in cann},
                   {op: names for op, names in outside.items() if op not in cann})


def describe_unsupported(found, max_names=5):
    """One line per op: 'Op (n nodes): name1, name2, ...'."""
    lines = []
    for op, names in sorted(found.items()):
        shown = ", ".join(names[:max_names]) + (f", ... (+{len(names) - max_names} more)" if len(names) > max_names else "")
        lines.append(f"{op} ({len(names)} node{'s' if len(names) != 1 else ''}): {shown}")
    return lines

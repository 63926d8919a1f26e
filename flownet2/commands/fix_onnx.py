"""Make a simplified FlowNet2 ONNX ready for Ascend ATC, as in the Ascend guide:

  python -m onnxsim flownet2_bs1.onnx flownet2_bs1_sim.onnx
  python fix_onnx.py flownet2_bs1_sim.onnx flownet2_bs1_sim_fix.onnx

Merges Slice->Slice chains into one multi-axis Slice and retypes int64 index arithmetic to int32 where
ONNX allows it; each rewrite's result passes onnx.checker and (unless --no-verify) gives the same ONNX
Runtime output as the input. Reports ops that ATC for Ascend310P is not known to accept (--strict: an error).
"""
import argparse
import collections
import os
import time

from ..cli import command, parse
from ..errors import Flownet2Error
from ..onnx.atc_ops import OPS_FILE, describe_unsupported, load_supported_ops, unsupported_nodes
from ..onnx.fix import OutputCheck, fix_model, load_onnx, save_onnx


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="ONNX model (normally the output of python -m onnxsim)")
    p.add_argument("output", help="fixed ONNX model to write")
    p.add_argument("--strict", action="store_true", help="fail if an op is not on the Ascend310P ATC list")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime comparison (slow on big models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random verification inputs")
    return parse(p, argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    if os.path.isdir(args.output):  # say so now, not after minutes of work
        raise Flownet2Error(f"{args.output}: is a folder; give the path of the .onnx file to write")
    model = load_onnx(args.input)
    print(f"loaded {args.input}: {len(model.graph.node)} nodes")
    check = None if args.no_verify else OutputCheck(args.input, seed=args.seed)
    try:
        fixed, report = fix_model(model, check_outputs=check)
    except Flownet2Error as e:
        raise Flownet2Error(f"{args.input}: {e}; nothing written") from None
    for name, count in report:
        print(f"  {name}: {count} changed")
    print(f"nodes: {len(model.graph.node)} -> {len(fixed.graph.node)} (op counts changed: {_op_changes(model, fixed)})")
    print("onnx.checker: ok")
    if check is not None:
        print(f"ONNX Runtime check: max |diff| = {check.worst:.3g} on random inputs (seed {args.seed})")
    _report_atc(fixed, args)
    size = save_onnx(fixed, args.output)
    print(f"wrote {args.output} ({size / 2**20:.1f} MiB, {time.perf_counter() - start:.1f} s)")
    return 0


def _op_changes(before, after):
    a = collections.Counter(n.op_type for n in before.graph.node)
    b = collections.Counter(n.op_type for n in after.graph.node)
    return ", ".join(f"{op} {a[op]}->{b[op]}" for op in sorted(set(a) | set(b)) if a[op] != b[op]) or "none"


def _report_atc(model, args):
    found = unsupported_nodes(model, load_supported_ops())
    if not found:
        print(f"ATC check (Ascend310P): all {len({n.op_type for n in model.graph.node})} op types are on the list")
        return
    print(f"ATC check (Ascend310P, {os.path.relpath(OPS_FILE)}): {len(found)} op type(s) not on the list:")
    for line in describe_unsupported(found):
        print(f"  {line}")
    if args.strict:
        raise Flownet2Error(f"{args.input}: ops not known to pass ATC for Ascend310P: {', '.join(sorted(found))}")


cli = command(main)  # The `flownet2-fix-onnx` command (and `python fix_onnx.py`).


if __name__ == "__main__":
    cli()

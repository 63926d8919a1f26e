"""Make a simplified FlowNet2 ONNX ready for Ascend ATC, as in the Ascend guide:

  python -m onnxsim flownet2_bs1.onnx flownet2_bs1_sim.onnx
  python fix_onnx.py flownet2_bs1_sim.onnx flownet2_bs1_sim_fix.onnx

Merges Slice->Slice chains into one multi-axis Slice and retypes int64 index arithmetic to int32 where
ONNX allows it; the result passes onnx.checker and (unless --no-verify) gives the same ONNX Runtime
output as the input. Reports ops that ATC for Ascend310P is not known to accept (--strict: an error).
"""
import argparse
import collections
import os
import time

import onnx

from flownet2.atc_ops import OPS_FILE, describe_unsupported, load_supported_ops, unsupported_nodes
from flownet2.cli import run_main
from flownet2.errors import Flownet2Error
from flownet2.fileio import atomic_save
from flownet2.onnx_fix import fix_model, max_output_diff

TOLERANCE = 1e-5
_PROTOBUF_LIMIT = 2**31 - 1


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="ONNX model (normally the output of python -m onnxsim)")
    p.add_argument("output", help="fixed ONNX model to write")
    p.add_argument("--strict", action="store_true", help="fail if an op is not on the Ascend310P ATC list")
    p.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime comparison (slow on big models)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random verification inputs")
    return p.parse_args(argv)


def _load(path):
    if not os.path.isfile(path):
        raise Flownet2Error(f"{path}: no such ONNX file")
    try:
        return onnx.load(path)
    except Exception as e:  # protobuf / external-data errors have no common base class
        raise Flownet2Error(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from None


def _op_changes(before, after):
    a = collections.Counter(n.op_type for n in before.graph.node)
    b = collections.Counter(n.op_type for n in after.graph.node)
    return ", ".join(f"{op} {a[op]}->{b[op]}" for op in sorted(set(a) | set(b)) if a[op] != b[op]) or "none"


def main(argv=None):
    args = parse_args(argv)
    t0 = time.perf_counter()
    model = _load(args.input)
    print(f"loaded {args.input}: {len(model.graph.node)} nodes ({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    fixed, report = fix_model(model)
    for name, count in report:
        print(f"  {name}: {count} changed")
    print(f"nodes: {len(model.graph.node)} -> {len(fixed.graph.node)} (op counts changed: {_op_changes(model, fixed)}) "
          f"({time.perf_counter() - t0:.1f} s)")

    t0 = time.perf_counter()
    try:
        onnx.checker.check_model(fixed, full_check=True)
    except onnx.checker.ValidationError as e:
        raise Flownet2Error(f"{args.input}: the rewritten model fails onnx.checker: {e}") from None
    print(f"onnx.checker: ok ({time.perf_counter() - t0:.1f} s)")

    found = unsupported_nodes(fixed, load_supported_ops())
    if found:
        print(f"ATC check (Ascend310P, {os.path.relpath(OPS_FILE)}): {len(found)} op type(s) not on the list:")
        for line in describe_unsupported(found):
            print(f"  {line}")
        if args.strict:
            raise Flownet2Error(f"{args.input}: ops not known to pass ATC for Ascend310P: {', '.join(sorted(found))}")
    else:
        ops = len({n.op_type for n in fixed.graph.node})
        print(f"ATC check (Ascend310P): all {ops} op types are on the list")

    if not args.no_verify:
        t0 = time.perf_counter()
        diff = max_output_diff(args.input, fixed, seed=args.seed)
        print(f"ONNX Runtime check: max |diff| = {diff:.3g} on random inputs (seed {args.seed}) "
              f"({time.perf_counter() - t0:.1f} s)")
        if not diff <= TOLERANCE:
            raise Flownet2Error(f"{args.input}: rewritten model differs from the input by {diff:.3g} "
                                f"(> {TOLERANCE}); nothing written")

    if fixed.ByteSize() > _PROTOBUF_LIMIT:
        raise Flownet2Error(f"{args.input}: fixed model is over 2 GiB, which a single ONNX file cannot hold")
    data = fixed.SerializeToString()
    atomic_save(args.output, data)
    print(f"wrote {args.output} ({len(data) / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    run_main(main)

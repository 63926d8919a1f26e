"""Stand-in for `python -m ais_bench` (tests only).

Takes ais_bench's flags, insists on a stand-in .om (as written by tests/standins/atc) whose input
shapes agree with --batchsize, then runs the ONNX model that .om names through flownet2.infer, so the
output files and the summary have the real formats. Like the real tool it records no weights label.
"""
import argparse
import json
import os
import sys

from flownet2 import infer
from flownet2.errors import Flownet2Error
from flownet2.provenance import KEY as WEIGHTS_KEY


def main(argv):
    p = argparse.ArgumentParser(prog="ais_bench (stand-in)")
    for flag in ("--model", "--input", "--output", "--output_dirname", "--outfmt", "--loop", "--warmup_count",
                 "--batchsize", "--device", "--pure_data_type"):
        p.add_argument(flag)
    args = p.parse_args(argv)
    try:
        with open(args.model) as f:
            om = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"[ERROR] stand-in ais_bench: {args.model} is not a stand-in .om ({e})")
    batch = {shape[0] for shape in om["input_shape"].values()}
    if args.batchsize is not None and {int(args.batchsize)} != batch:
        sys.exit(f"[ERROR] stand-in ais_bench: --batchsize {args.batchsize} but the .om takes batch {batch}")
    onnx_argv = list(argv)
    onnx_argv[onnx_argv.index("--model") + 1] = om["onnx"]
    try:
        code = infer.main(onnx_argv)
    except Flownet2Error as e:
        sys.exit(f"[ERROR] stand-in ais_bench: {e}")
    if args.output and args.output_dirname:
        summary_path = os.path.join(args.output, args.output_dirname + "_summary.json")
        with open(summary_path) as f:
            summary = json.load(f)
        summary.pop(WEIGHTS_KEY, None)
        summary["args"] = [sys.argv[0]] + list(argv)
        with open(summary_path, "w") as f:
            json.dump(summary, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

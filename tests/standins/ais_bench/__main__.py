"""Stand-in for `python -m ais_bench` (tests only; put tests/standins on PYTHONPATH).

Accepts every flag of ais_bench's own parser (Ascend/tools 2023 and the later ait/msit versions), in
any spelling argparse allows (`--model=x.om`, `-m x.om`), with the same value checks. It runs the ONNX
model that a stand-in .om (written by tests/standins/atc) names through `python -m flownet2.infer`, so
the output files and the summary have the real formats, then makes the summary what ais_bench writes:
`args` is the argv it received (sys.argv, as the real tool records it), no flownet2.* keys, throughput
from --batchsize when given. `--device 0,1` runs once per device into NAME/deviceN, the input files
shared out between the devices as ais_bench does. Flags that only matter on a card (dynamic shapes,
profiler, dump, AIPP, pipeline...) are accepted and have no effect. It also prints the argv it received.
"""
import argparse
import copy
import json
import math
import os
import re
import sys
import time

from flownet2.errors import Flownet2Error
from flownet2 import infer


def _bool(text):
    if text.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if text.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError("Boolean value expected true, 1, false, 0 with case insensitive.")


def _int_at_least(low):
    def check(text):
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is an invalid {'positive' if low else 'nonnegative'} int value")
        return value
    return check


def _devices(text):
    ids = [int(v) for v in text.split(",")] if "," in text else [int(text)]
    if any(not 0 <= d <= 255 for d in ids):
        raise argparse.ArgumentTypeError(f"device:{text} is invalid. valid value range is [0, 255]")
    return ids if "," in text else ids[0]


def _existing_file(text):
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return text


def parse_args(argv):
    p = argparse.ArgumentParser(prog="ais_bench (stand-in)")
    add = p.add_argument
    add("--model", "-m", required=True)
    add("--input", "-i")
    add("--output", "-o")
    add("--output_dirname")
    add("--outfmt", default="BIN", choices=["NPY", "BIN", "TXT"])
    add("--loop", "-l", type=_int_at_least(1), default=1)
    add("--debug", type=_bool, default=False)
    add("--device", "-d", type=_devices, default=0)
    add("--dymBatch", type=int, default=0)
    for flag in ("--dymHW", "--dymDims", "--outputSize", "--dymShape_range"):
        add(flag)
    add("--dymShape", "--dym-shape")
    for flag in ("--auto_set_dymshape_mode", "--auto_set_dymdims_mode", "--profiler", "--dump",
                 "--display_all_summary", "--energy_consumption", "--perf", "--pipeline", "--dump_npy",
                 "--divide_input"):
        add(flag, type=_bool, default=False)
    add("--profiler_rename", type=_bool, default=True)
    add("--batchsize", type=_int_at_least(1))
    add("--pure_data_type", default="zero", choices=["zero", "random"])
    add("--acl_json_path", type=_existing_file)
    add("--aipp_config", type=_existing_file)
    add("--output_batchsize_axis", type=_int_at_least(0), default=0)
    add("--run_mode", default="array", choices=["array", "files", "tensor", "full"])
    add("--warmup_count", "--warmup-count", type=_int_at_least(0), default=1)
    add("--npu_id", type=_int_at_least(0), default=0)
    add("--backend", choices=["trtexec"])
    add("--threads", type=_int_at_least(1), default=1)
    args = p.parse_args(argv)
    if args.profiler and args.dump:
        p.error("parameter --profiler cannot be true at the same time as parameter --dump")
    if (args.profiler or args.dump) and args.output is None:
        p.error("when dump or profiler, miss output path")
    if args.output is None and args.output_dirname is not None:
        p.error("parameter --output_dirname cann't be used alone. Please use it together with --output")
    return args


def _natural_key(path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", os.path.basename(path))]


def share_inputs(input_arg, n_inputs, jobs):
    """ais_bench's split for several devices: each input's files in natural order, cut into `jobs`
    consecutive pieces of ceil(n / jobs); device j gets piece j of every input (as a file list)."""
    items = input_arg.split(",")
    if os.path.isdir(items[0]):
        per_input = [sorted((os.path.join(d, f) for f in os.listdir(d)), key=_natural_key) for d in items]
    else:
        step = len(items) // n_inputs
        per_input = [items[k * step:(k + 1) * step] for k in range(n_inputs)]
    pieces = [[] for _ in range(jobs)]
    for files in per_input:
        size = math.ceil(len(files) / jobs)
        for j in range(jobs):
            pieces[j].extend(files[j * size:(j + 1) * size])
    return [",".join(piece) for piece in pieces]


def run_one(args, om, received):
    """One device: flownet2.infer on the ONNX, then the summary as ais_bench writes it."""
    batch = next(iter(om["input_shape"].values()))[0]
    if args.output is not None and args.output_dirname is None:
        args.output_dirname = time.strftime("%Y_%m_%d-%H_%M_%S")  # ais_bench's date_time folder
    argv = ["--model", om["onnx"], "--outfmt", args.outfmt, "--loop", str(args.loop),
            "--warmup_count", str(args.warmup_count), "--pure_data_type", args.pure_data_type]
    for flag in ("input", "output", "output_dirname"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag}", getattr(args, flag)]
    code = infer.main(argv)
    if args.output is None:
        return code
    path = os.path.join(args.output, args.output_dirname + "_summary.json")
    with open(path) as f:
        summary = json.load(f)
    for key in [k for k in summary if k.startswith("flownet2.")]:
        del summary[key]  # the real tool knows nothing of weights labels or input digests
    summary["args"] = received
    bs = args.batchsize or batch
    mean = summary["NPU_compute_time"]["mean"]
    summary["throughput"] = 1000 * bs / mean if mean else 0
    if bs != batch:
        print(f"[INFO] throughput 1000*batchsize.mean({bs})/NPU_compute_time.mean({mean}): {summary['throughput']}")
    with open(path, "w") as f:
        json.dump(summary, f)
    return code


def main(argv):
    received = [sys.argv[0]] + list(argv)
    print(f"[INFO] stand-in ais_bench argv: {json.dumps(list(argv))}")
    args = parse_args(argv)
    try:
        with open(args.model) as f:
            om = json.load(f)
        om["onnx"], om["input_shape"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"[ERROR] stand-in ais_bench: {args.model} is not a stand-in .om ({e!r})")
    if not isinstance(args.device, list):
        return _guarded(run_one, args, om, received)
    pieces = share_inputs(args.input, len(om["input_shape"]), len(args.device)) if args.input else None
    name = args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S")
    code = 0
    for j, device in enumerate(args.device):
        one = copy.copy(args)
        one.device = device
        one.input = pieces[j] if pieces else None
        one.output_dirname = os.path.join(name, f"device{device}")
        code = _guarded(run_one, one, om, received) or code
    return code


def _guarded(fn, *args):
    try:
        return fn(*args)
    except Flownet2Error as e:
        sys.exit(f"[ERROR] stand-in ais_bench: {e}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

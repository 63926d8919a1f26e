"""ais_bench-compatible offline inference for machines without an Ascend card.

  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --input prep/image1,prep/image2 \
      --output result --output_dirname bs1 --outfmt BIN --batchsize 1
  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --loop 20      # pure performance mode

Same flags, files and summary as Ascend's `python -m ais_bench` (Ascend/tools): the files of each
input folder are natural-sorted and matched by position; input `image1/7.bin` gives `OUT/NAME/7_0.bin`;
`OUT/NAME_summary.json` holds filesinfo, args, NPU_compute_time, H2D_latency, D2H_latency,
throughput, npu_compute_time_list, pid (plus the model's weights label). Runs the .onnx on ONNX
Runtime (CUDA provider when present, else CPU); an Ascend `.om` is handed to `python -m ais_bench`.
"""
import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from tqdm import tqdm

from .cli import run_main
from .errors import Flownet2Error
from .fileio import atomic_save, atomic_write
from .provenance import KEY as WEIGHTS_KEY
from .provenance import weights_label
from .sessions import AIS_BENCH_HINT, open_onnx

PURE_INFER_FILE = "pure_infer_data"  # ais_bench's name for the made-up input of performance mode


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m flownet2.infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", required=True, help=".onnx (ONNX Runtime) or .om (handed to ais_bench)")
    p.add_argument("--input", "-i", help="comma-separated folders (one per model input) or files")
    p.add_argument("--output", "-o", help="folder for results; without it nothing is saved")
    p.add_argument("--output_dirname", help="subfolder of --output (default: a date_time folder)")
    p.add_argument("--outfmt", default="BIN", choices=("BIN", "NPY", "TXT"))
    p.add_argument("--loop", "-l", type=_positive, default=1, help="runs per batch (all timed)")
    p.add_argument("--warmup_count", type=_non_negative, default=1, help="untimed runs of the first batch")
    p.add_argument("--batchsize", type=_positive, help="samples per run (default: the model's batch dimension)")
    p.add_argument("--device", "-d", type=_non_negative, default=0, help="GPU id for ONNX Runtime's CUDA provider")
    # Not in ais_bench: PyTorch on a GPU (flownet2/gpu.py), for NVIDIA users without an Ascend card.
    p.add_argument("--backend", choices=("onnxruntime", "torch"), default="onnxruntime",
                   help="torch: --model is a checkpoint (.pth.tar) or stand-in:SEED, run by PyTorch")
    p.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16"), default="fp16",
                   help="torch backend: sub-network precision (glue always fp32; default fp16)")
    p.add_argument("--torch_mode", choices=("eager", "graphs", "compile"), default="graphs",
                   help="torch backend: eager, one CUDA graph (default), or torch.compile (cached)")
    p.add_argument("--model_size", default="448,1024", help="torch backend: H,W of the inputs (default 448,1024)")
    p.add_argument("--pure_data_type", default="zero", choices=("zero", "random"),
                   help="made-up input of performance mode")
    args = p.parse_args(argv)
    if args.output_dirname is not None and args.output is None:
        p.error("--output_dirname needs --output")
    return args


def _positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative integer")
    return value


# --------------------------------------------------------------------------- input files

def natural_sorted(paths):
    """ais_bench's order: digits compare as numbers, the rest case-insensitively (10.bin after 9.bin)."""
    def key(path):
        return [int(part) if part.isdigit() else part.lower() for part in re.split(r"([0-9]+)", path)]
    return sorted(sorted(paths), key=key)


def list_input_files(folder):
    if not os.path.isdir(folder):
        raise Flownet2Error(f"{folder}: input folder does not exist")
    files = [os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".bin", ".npy"))]
    if not files:
        raise Flownet2Error(f"{folder}: no .bin or .npy files in the input folder")
    return natural_sorted(files)


def _file_nbytes(path):
    if path.lower().endswith(".npy"):
        return np.load(path, mmap_mode="r").nbytes
    return os.path.getsize(path)


def _files_per_input(input_arg, n_inputs):
    items = [s for s in input_arg.split(",") if s]
    if items and all(os.path.isfile(s) for s in items):
        if len(items) % n_inputs:
            raise Flownet2Error(f"--input names {len(items)} files for a model with {n_inputs} inputs")
        step = len(items) // n_inputs
        return [items[k * step:(k + 1) * step] for k in range(n_inputs)]
    if len(items) != n_inputs:
        raise Flownet2Error(f"--input names {len(items)} folders but the model has {n_inputs} inputs")
    return [list_input_files(folder) for folder in items]


def plan_batches(input_arg, inputs):
    """[[files of input 0, files of input 1, ...] per run]; None marks a filler slot (ais_bench's padding).

    As ais_bench: a file may hold the whole batch tensor or 1/k of it (k files are then concatenated);
    every file must have the same size.
    """
    per_input = _files_per_input(input_arg, len(inputs))
    counts = {len(files) for files in per_input}
    if len(counts) != 1:
        raise Flownet2Error("input folders hold different numbers of files: "
                            + ", ".join(f"{os.path.dirname(f[0])}: {len(f)}" for f in per_input))
    (name0, shape0, dtype0) = inputs[0]
    tensor_bytes = int(np.prod(shape0)) * dtype0.itemsize
    first = _file_nbytes(per_input[0][0])
    if first == 0 or tensor_bytes % first:
        raise Flownet2Error(f"{per_input[0][0]}: {first} bytes, but model input {name0} {shape0} "
                            f"{dtype0.name} needs {tensor_bytes} bytes (or a whole fraction of it)")
    k = tensor_bytes // first
    for (name, shape, dtype), files in zip(inputs, per_input):
        expected = int(np.prod(shape)) * dtype.itemsize // k
        for path in files:
            actual = _file_nbytes(path)
            if actual != expected:
                raise Flownet2Error(f"{path}: {actual} bytes, expected {expected} "
                                    f"(model input {name} {shape} {dtype.name}, {k} file(s) per run)")
    runs = []
    n = len(per_input[0])
    for start in range(0, n, k):
        runs.append([[f[i] if i < n else None for i in range(start, start + k)] for f in per_input])
    return runs, k


def read_batch(files, shape, dtype):
    """Concatenate the files' raw bytes into one input array; a filler slot repeats the first file."""
    chunks = []
    for path in files:
        path = path if path is not None else files[0]
        if path.lower().endswith(".npy"):
            chunks.append(np.ascontiguousarray(np.load(path)).view(np.uint8).reshape(-1))
        else:
            chunks.append(np.fromfile(path, dtype=np.uint8))
    return np.concatenate(chunks).view(dtype).reshape(shape)


def made_up_batch(shape, dtype, kind, rng):
    """Performance-mode input: zeros (ais_bench's default) or random values.

    ais_bench's "random" reinterprets random bytes, which for float32 can spell NaN; a NaN flow turns
    into an out-of-range gather index in the warp, so float inputs get uniform [-0.5, 0.5) instead.
    """
    if kind == "zero":
        return np.zeros(shape, dtype)
    if np.issubdtype(dtype, np.floating):
        return (rng.random(shape) - 0.5).astype(dtype)
    return rng.integers(0, 256, int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8).view(dtype).reshape(shape)


# --------------------------------------------------------------------------- outputs and summary

def save_array(path, array, outfmt):
    if outfmt == "NPY":
        with atomic_write(path, "wb") as f:
            np.save(f, array)
    elif outfmt == "TXT":  # ais_bench's text layout: one line per last-axis row, values space-separated
        rows = array.reshape(-1, array.shape[-1])
        fmt = "%f" if np.issubdtype(array.dtype, np.floating) else "%d"
        with atomic_write(path, "wb") as f:
            for row in rows:
                np.savetxt(f, row[np.newaxis], fmt=fmt, delimiter=" ", newline=" ")
                f.write(b"\n")
    else:
        atomic_save(path, np.ascontiguousarray(array).tobytes())


def output_name(infile, index, outfmt):
    """ais_bench naming: basename up to the first '.', then _<output index>."""
    return f"{os.path.basename(infile).split('.')[0]}_{index}.{outfmt.lower()}"


def stats(values):
    """ais_bench's block: min/max/mean/median/percentile(99%)/count (zeros when empty)."""
    if not values:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "median": float(np.median(a)), "percentile(99%)": float(np.percentile(a, 99)), "count": len(values)}


def summarise(filesinfo, argv, compute_ms, batchsize, label):
    """The summary dict with ais_bench's keys; throughput = samples per second of pure run time."""
    compute = stats(compute_ms)
    throughput = 1000.0 * batchsize / compute["mean"] if compute["mean"] else 0
    return {"filesinfo": filesinfo, "args": argv, "NPU_compute_time": compute,
            "H2D_latency": stats([]), "D2H_latency": stats([]),  # ONNX Runtime has no separate copy step
            "throughput": throughput, "npu_compute_time_list": list(compute_ms), "pid": os.getpid(),
            WEIGHTS_KEY: label}


def print_summary(summary, batchsize):
    c = summary["NPU_compute_time"]
    print("[INFO] -----------------Performance Summary------------------")
    print(f"[INFO] NPU_compute_time (ms): min = {c['min']}, max = {c['max']}, mean = {c['mean']}, "
          f"median = {c['median']}, percentile(99%) = {c['percentile(99%)']}")
    print(f"[INFO] throughput 1000*batchsize.mean({batchsize})/NPU_compute_time.mean({c['mean']}): "
          f"{summary['throughput']}")
    print("[INFO] ------------------------------------------------------")


# --------------------------------------------------------------------------- the run

def output_folder(args):
    if args.output is None:
        return None
    name = args.output_dirname if args.output_dirname is not None else time.strftime("%Y_%m_%d-%H_%M_%S")
    folder = os.path.join(args.output, name)
    os.makedirs(folder, exist_ok=True)
    return folder


def open_torch_session(args):
    """A flownet2.gpu.TorchSession for --backend torch: CUDA when PyTorch sees a GPU, else CPU eager."""
    import torch

    from .gpu import TorchSession

    stand_in = re.fullmatch(r"stand-in:(\d+)", args.model)
    if not stand_in and not os.path.isfile(args.model):
        raise Flownet2Error(f"{args.model}: checkpoint file does not exist (or use stand-in:SEED)")
    try:
        height, width = (int(v) for v in args.model_size.split(","))
    except ValueError:
        raise Flownet2Error(f"--model_size {args.model_size!r}: expected H,W such as 448,1024") from None
    cuda = torch.cuda.is_available()  # on the CPU: plain fp32 eager, NCHW (what CPU kernels prefer)
    return TorchSession(int(stand_in.group(1)) if stand_in else args.model, args.batchsize or 1, height, width,
                        f"cuda:{args.device}" if cuda else "cpu", args.precision if cuda else "fp32",
                        args.torch_mode if cuda else "eager", channels_last=cuda)


def run(args, argv):
    """Run an .onnx model as ais_bench would an .om; returns the summary dict."""
    if args.backend == "torch":
        return run_session(open_torch_session(args), args, argv)
    if not os.path.isfile(args.model):
        raise Flownet2Error(f"{args.model}: model file does not exist")
    return run_session(open_onnx(args.model, device=args.device), args, argv)


def run_session(session, args, argv):
    """Warm-up, then every batch `--loop` times (timed), outputs and summary saved as ais_bench does."""
    model_batch = session.inputs[0][1][0] if session.inputs[0][1] else 1
    if args.batchsize is not None and args.batchsize != model_batch:
        raise Flownet2Error(f"{args.model}: --batchsize {args.batchsize}, but the model takes batch {model_batch} "
                            f"(input {session.inputs[0][0]} {session.inputs[0][1]}); export it with --batch_size "
                            f"{args.batchsize} or pass --batchsize {model_batch}")
    if args.input:
        runs, per_run = plan_batches(args.input, session.inputs)
    else:
        runs, per_run = [[[PURE_INFER_FILE] for _ in session.inputs]], 1
    folder = output_folder(args)
    rng = np.random.default_rng()

    def load(files_per_input):
        if files_per_input[0][0] == PURE_INFER_FILE:
            return [made_up_batch(shape, dtype, args.pure_data_type, rng) for _, shape, dtype in session.inputs]
        return [read_batch(files, shape, dtype) for files, (_, shape, dtype) in zip(files_per_input, session.inputs)]

    first = load(runs[0])
    for _ in range(args.warmup_count):
        session.run(first)
    compute_ms, filesinfo = [], {}
    with tqdm(total=len(runs) * args.loop, desc="inference", unit="run", file=sys.stderr) as bar:
        for index, files_per_input in enumerate(runs):
            arrays = first if index == 0 else load(files_per_input)
            for _ in range(args.loop):
                outputs, ms = session.run(arrays)
                compute_ms.append(ms)
                bar.update()
            if folder is not None:
                _save_outputs(folder, outputs, files_per_input, index * per_run, per_run, args.outfmt, filesinfo)
    summary = summarise(filesinfo, argv, compute_ms, args.batchsize or model_batch, session.label)
    print_summary(summary, args.batchsize or model_batch)
    if folder is not None:
        with atomic_write(folder + "_summary.json", "w") as f:
            json.dump(summary, f)
    return summary


def _save_outputs(folder, outputs, files_per_input, first_id, per_run, outfmt, filesinfo):
    """Split each output into the run's slots, one file per real slot (filler slots are skipped)."""
    for i, out in enumerate(outputs):
        parts = np.array_split(np.asarray(out), per_run, axis=0)
        for j in range(per_run):
            infiles = [files[j] for files in files_per_input]
            if infiles[0] is None:
                continue
            path = os.path.join(folder, output_name(infiles[0], i, outfmt))
            save_array(path, parts[j], outfmt)
            entry = filesinfo.setdefault(first_id + j, {"infiles": infiles, "outfiles": []})
            entry["outfiles"].append(path)


def hand_over_to_ais_bench(args, argv):
    """Run `python -m ais_bench` with the same arguments; add the .om's weights label to its summary."""
    if importlib.util.find_spec("ais_bench") is None:
        raise Flownet2Error(f"{args.model} is an Ascend .om model, which needs ais_bench: {AIS_BENCH_HINT}")
    code = subprocess.call([sys.executable, "-m", "ais_bench", *argv])
    summary_path = os.path.join(args.output or "", f"{args.output_dirname}_summary.json")
    if code == 0 and args.output_dirname and os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = json.load(f)
        summary[WEIGHTS_KEY] = weights_label(args.model)  # from the .om.weights sidecar
        with atomic_write(summary_path, "w") as f:
            json.dump(summary, f)
    return code


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.model.endswith(".om") and args.backend == "onnxruntime":
        return hand_over_to_ais_bench(args, argv)
    run(args, [sys.argv[0]] + argv)
    return 0


if __name__ == "__main__":
    run_main(main)

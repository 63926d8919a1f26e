"""ais_bench-compatible offline inference for machines without an Ascend card.

  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --input prep/image1,prep/image2 \
      --output result --output_dirname bs1 --outfmt BIN --batchsize 1
  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --loop 20      # pure performance mode
  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --emulate fp16 ...   # fp16 storage, emulated
  python -m flownet2.infer --model FlowNet2_checkpoint.pth.tar --model_size 448,1024 ...   # PyTorch

Same flags, files and summary as Ascend's `python -m ais_bench` (Ascend/tools): the files of each
input folder are natural-sorted and matched by position; input `image1/7.bin` gives `OUT/NAME/7_0.bin`;
`OUT/NAME_summary.json` holds filesinfo, args, NPU_compute_time, H2D_latency, D2H_latency,
throughput, npu_compute_time_list, pid (plus the weights label and the sha256 of every input file).
An .onnx runs on ONNX Runtime (CUDA provider when present, else CPU); a checkpoint or stand-in:SEED on
PyTorch (CUDA when present, else CPU). An Ascend `.om` is handed to `python -m ais_bench` with exactly
the arguments given here.
"""
import argparse
import glob
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from ..cli import parse, run_main
from ..data import batches
from ..errors import Flownet2Error
from ..fileio import atomic_save, atomic_write, digest, file_digest, natural_sorted
from ..model.provenance import KEY as WEIGHTS_KEY
from ..model.provenance import weights_label
from ..sizes import parse_size
from .sessions import AIS_BENCH_HINT, DEFAULT_SIZE, open_model

PURE_INFER_FILE = "pure_infer_data"  # ais_bench's name for the made-up input of performance mode
DIGESTS_KEY = "flownet2.input_digests"
LATENCY_NOTE_KEY = "flownet2.latency_note"
NO_COPY_STEP = ("H2D/D2H are 0: this backend (ONNX Runtime, or PyTorch on the CPU) has no host-device copy "
                "step it can time apart from the run, so NPU_compute_time includes any copies")
# ais_bench flags that control an NPU, a compiled .om or Ascend's tools: nothing to do on this runner.
ASCEND_ONLY = {
    "--acl_json_path": "an ACL configuration for the NPU's profiling or dump",
    "--aipp_config": "an AIPP (NPU image pre-processing) configuration",
    "--auto_set_dymdims_mode": "dynamic dims of an .om",
    "--auto_set_dymshape_mode": "dynamic shapes of an .om",
    "--dump": "the NPU's tensor dump",
    "--dump_npy": "the NPU's tensor dump",
    "--dymBatch": "dynamic batch of an .om; an exported FlowNet2 has a static batch",
    "--dymDims": "dynamic dims of an .om",
    "--dymHW": "dynamic image size of an .om; an exported FlowNet2 has a static size",
    "--dymShape": "dynamic shapes of an .om",
    "--dymShape_range": "dynamic shapes of an .om",
    "--energy_consumption": "the NPU's power reading",
    "--npu_id": "the NPU's power reading",
    "--outputSize": "output buffer sizes of a dynamic-shape .om",
    "--perf": "msame-style NPU performance mode",
    "--pipeline": "ais_bench's multi-threaded NPU pipeline",
    "--profiler": "the NPU's profiler (msprof)",
    "--profiler_rename": "the NPU's profiler (msprof)",
    "--thread": "ais_bench's multi-threaded NPU pipeline",
    "--threads": "ais_bench's multi-threaded NPU pipeline",
}


def parse_args(argv):
    refuse_ascend_only(argv)
    p = argparse.ArgumentParser(prog="python -m flownet2.infer", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", required=True,
                   help=".onnx (ONNX Runtime), checkpoint (any FlowNet2 member), stand-in:SEED or stand-in:MEMBER:SEED (PyTorch), .om (handed to ais_bench)")
    p.add_argument("--input", "-i", help="comma-separated folders (one per model input) or files")
    p.add_argument("--output", "-o", help="folder for results; without it nothing is saved")
    p.add_argument("--output_dirname", help="subfolder of --output (default: a date_time folder)")
    p.add_argument("--outfmt", default="BIN", choices=("BIN", "NPY", "TXT"))
    p.add_argument("--loop", "-l", type=_positive, default=1, help="runs per batch (all timed)")
    p.add_argument("--warmup_count", type=_non_negative, default=1, help="untimed runs of the first batch")
    p.add_argument("--batchsize", "--batch_size", type=_positive,
                   help="samples per run in the throughput figure (default: the model's batch dimension)")
    p.add_argument("--device", "-d", type=_devices, default=[0],
                   help="GPU id, or a list such as 0,1: one run per device on its share of the files, "
                        "results in NAME/deviceN")
    p.add_argument("--pure_data_type", default="zero", choices=("zero", "random"),
                   help="made-up input of performance mode")
    p.add_argument("--output_batchsize_axis", type=_non_negative, default=0,
                   help="axis along which an output is split into the run's files")
    p.add_argument("--debug", type=_bool, default=False, help="print the model's inputs and the backend")
    p.add_argument("--display_all_summary", type=_bool, default=False, help="also print H2D and D2H latencies")
    p.add_argument("--run_mode", type=_run_mode, default="array", help="array only: inputs are numpy arrays")
    # Not in ais_bench: this runner's own backends.
    p.add_argument("--backend", choices=("onnxruntime", "torch"),
                   help="default: from the model (.onnx: onnxruntime; checkpoint or stand-in:SEED: torch)")
    p.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16"),
                   help="torch: sub-network precision, glue always fp32 (default fp16 on CUDA, fp32 on a CPU; "
                        "bf16 on a CPU with AVX512_BF16 or AMX)")
    p.add_argument("--torch_mode", choices=("eager", "graphs", "compile"),
                   help="torch: eager, one CUDA graph (default on CUDA), or torch.compile (cached)")
    p.add_argument("--model_size", type=_size, default=DEFAULT_SIZE,
                   help="torch: H,W (or HxW) of the inputs (default 448,1024)")
    p.add_argument("--emulate", choices=("fp16", "bf16"),
                   help=".onnx: round every weight and every tensor a node writes to fp16 or bf16 "
                        "(arithmetic in fp32): roughly what a reduced-precision device computes")
    args = parse(p, argv)
    if args.output_dirname is not None and args.output is None:
        p.error("--output_dirname needs --output")
    return args


def refuse_ascend_only(argv):
    """One line per ais_bench flag that means nothing on this runner (an NPU's or an .om's controls)."""
    lines = []
    for flag, what in ASCEND_ONLY.items():
        if any(a == flag or a.startswith(flag + "=") for a in argv):
            lines.append(f"{flag} controls {what}; it has no meaning on ONNX Runtime or PyTorch")
    if lines:
        raise Flownet2Error("\nerror: ".join(lines))


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


def _devices(text):
    """ais_bench's --device: one id, or a comma-separated list (0..255)."""
    ids = [_non_negative(v) for v in text.split(",")]
    if max(ids) > 255 or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text}: device ids are distinct integers in [0, 255]")
    return ids


def _bool(text):
    """ais_bench's booleans: true/false, yes/no, t/f, y/n, 1/0 (any case)."""
    value = {"true": True, "yes": True, "t": True, "y": True, "1": True,
             "false": False, "no": False, "f": False, "n": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text} is not a boolean (true/false, 1/0)")
    return value


def _run_mode(text):
    if text != "array":
        raise argparse.ArgumentTypeError(f"{text}: ais_bench's {text} mode stages tensors on an NPU; this runner "
                                         "feeds numpy arrays (array)")
    return text


def _size(text):
    try:
        return parse_size(text)
    except Flownet2Error as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def typed_model(argv):
    """The model path as ais_bench's parser would read it (--model X, --model=X, -m X, -mX, --mod X...),
    without judging anything else; None when there is none."""
    model = None
    for k, a in enumerate(argv):
        name, eq, value = a.partition("=")
        if a.startswith("--") and len(name) >= 3 and "--model".startswith(name):
            model = value if eq else (argv[k + 1] if k + 1 < len(argv) else None)
        elif a == "-m":
            model = argv[k + 1] if k + 1 < len(argv) else None
        elif a.startswith("-m") and not a.startswith("--"):
            model = a[2:]
    return model


def _typed_value(argv, flag, short=None):
    """The last value of `flag` (or its short form) in argv, ais_bench's spellings; None when absent."""
    value = None
    for k, a in enumerate(argv):
        if a in (flag, short) and k + 1 < len(argv):
            value = argv[k + 1]
        elif a.startswith(flag + "="):
            value = a[len(flag) + 1:]
        elif short and a.startswith(short) and not a.startswith("--") and len(a) > len(short):
            value = a[len(short):]
    return value


# --------------------------------------------------------------------------- input files

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


def files_per_input(input_arg, n_inputs):
    """[files of input 0, files of input 1, ...] for --input's comma-separated folders or files."""
    items = [s for s in input_arg.split(",") if s]
    if items and all(os.path.isfile(s) for s in items):
        if len(items) % n_inputs:
            raise Flownet2Error(f"{len(items)} input files for a model with {n_inputs} inputs")
        step = len(items) // n_inputs
        return [items[k * step:(k + 1) * step] for k in range(n_inputs)]
    if len(items) != n_inputs:
        raise Flownet2Error(f"{len(items)} input folders for a model with {n_inputs} inputs")
    return [list_input_files(folder) for folder in items]


def device_share(per_input, index, count):
    """Device `index` of `count`: its contiguous share of every input's files, as ais_bench splits them."""
    n = len(per_input[0])
    if n < count:
        raise Flownet2Error(f"{n} input files per input cannot be shared among {count} devices")
    step = -(-n // count)
    return [files[index * step:(index + 1) * step] for files in per_input]


def plan_batches(per_input, inputs):
    """[[files of input 0, files of input 1, ...] per run]; None marks a filler slot (ais_bench's padding).

    As ais_bench: a file may hold the whole batch tensor or 1/k of it (k files are then concatenated);
    every file must have the same size.
    """
    counts = {len(files) for files in per_input}
    if len(counts) != 1 or not per_input[0]:
        raise Flownet2Error("input folders hold different numbers of files: "
                            + ", ".join(f"{os.path.dirname(f[0]) if f else '(none)'}: {len(f)}" for f in per_input))
    (name0, shape0, dtype0) = inputs[0]
    tensor_bytes = int(np.prod(shape0)) * dtype0.itemsize
    first = _file_nbytes(per_input[0][0])
    if first == 0 or tensor_bytes % first:
        fix = batches.size_fix(per_input[0][0], shape0)
        raise Flownet2Error(f"{per_input[0][0]}: {first} bytes, but model input {name0} {shape0} "
                            f"{dtype0.name} needs {tensor_bytes} bytes (or a whole fraction of it)"
                            + (f"; {fix}" if fix else ""))
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


def read_batch(files, shape, dtype, digests):
    """Concatenate the files' bytes into one input array; a filler slot repeats the first file.
    Records "sha256:<hex>" of the bytes read from each file in `digests` (keyed by the path as given)."""
    chunks = []
    for path in files:
        path = path if path is not None else files[0]
        with open(path, "rb") as f:
            data = f.read()
        digests[path] = digest(data)
        if path.lower().endswith(".npy"):
            chunks.append(np.ascontiguousarray(np.load(io.BytesIO(data))).view(np.uint8).reshape(-1))
        else:
            chunks.append(np.frombuffer(data, dtype=np.uint8))
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


def bench_summary(filesinfo, argv, compute_ms, batchsize, label, *, h2d_ms=(), d2h_ms=(), latency_note=None,
                  digests=None):
    """The summary dict with ais_bench's keys; throughput = samples per second of pure run time."""
    compute = stats(compute_ms)
    throughput = 1000.0 * batchsize / compute["mean"] if compute["mean"] else 0
    return {"filesinfo": filesinfo, "args": argv, "NPU_compute_time": compute,
            "H2D_latency": stats(list(h2d_ms)), "D2H_latency": stats(list(d2h_ms)),
            "throughput": throughput, "npu_compute_time_list": list(compute_ms), "pid": os.getpid(),
            WEIGHTS_KEY: label, LATENCY_NOTE_KEY: latency_note, DIGESTS_KEY: digests or {}}


def print_summary(summary, batchsize, *, display_all=False):
    print("[INFO] -----------------Performance Summary------------------")
    blocks = ("H2D_latency", "NPU_compute_time", "D2H_latency") if display_all else ("NPU_compute_time",)
    for key in blocks:
        c = summary[key]
        print(f"[INFO] {key} (ms): min = {c['min']}, max = {c['max']}, mean = {c['mean']}, "
              f"median = {c['median']}, percentile(99%) = {c['percentile(99%)']}")
    if display_all and summary[LATENCY_NOTE_KEY]:
        print(f"[INFO] {summary[LATENCY_NOTE_KEY]}")
    c = summary["NPU_compute_time"]
    print(f"[INFO] throughput 1000*batchsize.mean({batchsize})/NPU_compute_time.mean({c['mean']}): "
          f"{summary['throughput']}")
    print("[INFO] ------------------------------------------------------")


# --------------------------------------------------------------------------- the run

def output_folder(output, dirname=None, *, device=None):
    """OUT/NAME (NAME/deviceN for one of several devices), created; None without an output folder."""
    if output is None:
        return None
    folder = os.path.join(output, dirname if dirname is not None else time.strftime("%Y_%m_%d-%H_%M_%S"))
    if device is not None:
        folder = os.path.join(folder, f"device{device}")
    os.makedirs(folder, exist_ok=True)
    return folder


def open_runner_session(model, *, backend=None, device=0, precision=None, torch_mode=None, size=DEFAULT_SIZE,
                        batchsize=None, emulate=None):
    """flownet2.runtime.sessions.open_model with this runner's defaults: PyTorch in fp16 CUDA graphs on a GPU,
    fp32 eager on a CPU; `backend`, when given, must match the model."""
    onnx = model.endswith(".onnx")
    if backend == "torch" and onnx:
        raise Flownet2Error(f"{model}: PyTorch runs a checkpoint or stand-in:SEED; an .onnx runs on ONNX Runtime")
    if backend == "onnxruntime" and not onnx:
        raise Flownet2Error(f"{model}: ONNX Runtime runs .onnx models; a checkpoint or stand-in:SEED runs on PyTorch")
    if onnx:
        return open_model(model, device=device, precision=precision or "fp32", emulate=emulate)
    import torch

    cuda = torch.cuda.is_available()
    return open_model(model, batch_size=batchsize or 1, size=size, device=device, emulate=emulate,
                      precision=precision or ("fp16" if cuda else "fp32"),
                      torch_mode=torch_mode or ("graphs" if cuda else "eager"))


def run_session(session, *, per_input=None, folder=None, argv=(), batchsize=None, loop=1, warmup_count=1,
                outfmt="BIN", pure_data_type="zero", output_batchsize_axis=0, display_all=False):
    """Warm-up, then every batch `loop` times (timed); outputs and summary saved in `folder` as ais_bench
    does. per_input: [files of each input] (None: performance mode on made-up data). Returns the summary."""
    model_batch = session.batch_size
    if batchsize is not None and batchsize != model_batch:
        print(f"warning: batch size {batchsize} given, but the model takes batch {model_batch} (input "
              f"{session.inputs[0][0]} {session.inputs[0][1]}); the throughput figure uses {batchsize}, "
              "as ais_bench does", file=sys.stderr)
    batchsize = batchsize or model_batch
    if per_input is not None:
        runs, per_run = plan_batches(per_input, session.inputs)
    else:
        runs, per_run = [[[PURE_INFER_FILE] for _ in session.inputs]], 1
    rng = np.random.default_rng()
    digests = {}

    def load(files_per_input):
        if files_per_input[0][0] == PURE_INFER_FILE:
            return [made_up_batch(shape, dtype, pure_data_type, rng) for _, shape, dtype in session.inputs]
        return [read_batch(files, shape, dtype, digests)
                for files, (_, shape, dtype) in zip(files_per_input, session.inputs)]

    first = load(runs[0])
    for _ in range(warmup_count):
        session.run(first)
    compute_ms, h2d_ms, d2h_ms, filesinfo = [], [], [], {}
    with tqdm(total=len(runs) * loop, desc="inference", unit="run", file=sys.stderr) as bar:
        for index, files_per_input in enumerate(runs):
            arrays = first if index == 0 else load(files_per_input)
            for _ in range(loop):
                outputs, ms = session.run(arrays)
                compute_ms.append(ms)
                if session.copy_ms is not None:
                    h2d_ms.append(session.copy_ms[0])
                    d2h_ms.append(session.copy_ms[1])
                bar.update()
            if folder is not None:
                _save_outputs(folder, outputs, files_per_input, index * per_run, per_run, outfmt, filesinfo,
                              axis=output_batchsize_axis)
    listed = [path for entry in filesinfo.values() for path in entry["infiles"]]
    summary = bench_summary(filesinfo, list(argv), compute_ms, batchsize, session.label, h2d_ms=h2d_ms,
                            d2h_ms=d2h_ms, latency_note=None if h2d_ms else NO_COPY_STEP,
                            digests={path: digests[path] for path in listed if path in digests})
    print_summary(summary, batchsize, display_all=display_all)
    if folder is not None:
        with atomic_write(folder + "_summary.json", "w") as f:
            json.dump(summary, f)
    return summary


def _save_outputs(folder, outputs, files_per_input, first_id, per_run, outfmt, filesinfo, *, axis=0):
    """Split each output along `axis` into the run's slots, one file per real slot (filler slots skipped)."""
    for i, out in enumerate(outputs):
        out = np.asarray(out)
        if axis >= out.ndim or out.shape[axis] % per_run:
            raise Flownet2Error(f"output {i} of shape {list(out.shape)} cannot be split into {per_run} files "
                                f"along axis {axis}")
        parts = np.split(out, per_run, axis=axis)
        for j in range(per_run):
            infiles = [files[j] for files in files_per_input]
            if infiles[0] is None:
                continue
            path = os.path.join(folder, output_name(infiles[0], i, outfmt))
            save_array(path, parts[j], outfmt)
            entry = filesinfo.setdefault(first_id + j, {"infiles": infiles, "outfiles": []})
            entry["outfiles"].append(path)


# --------------------------------------------------------------------------- an .om: ais_bench itself

def hand_over_to_ais_bench(argv, *, model):
    """Run `python -m ais_bench` with exactly `argv`; then add to each summary it wrote the .om's weights
    label and the sha256 of every input file it lists, which must be what the files held before the run."""
    import importlib.util

    if importlib.util.find_spec("ais_bench") is None:
        raise Flownet2Error(f"{model} is an Ascend .om model, which needs ais_bench: {AIS_BENCH_HINT}")
    before = _digests_of_inputs(_typed_value(argv, "--input", "-i"))
    started = time.time()
    code = subprocess.call([sys.executable, "-m", "ais_bench", *argv])
    output = _typed_value(argv, "--output", "-o")
    if code != 0 or output is None:
        return code
    label = weights_label(model)  # from the .om.weights sidecar
    for path in _summaries_written(output, since=started):
        with open(path) as f:
            summary = json.load(f)
        summary[WEIGHTS_KEY] = label
        summary[DIGESTS_KEY] = _unchanged_digests(summary, before)
        with atomic_write(path, "w") as f:
            json.dump(summary, f)
    return 0


def _digests_of_inputs(input_arg):
    """{real path: "sha256:<hex>"} of every file named by ais_bench's --input (files, or files in folders)."""
    paths = []
    for item in (input_arg or "").split(","):
        paths += [os.path.join(item, n) for n in os.listdir(item)] if os.path.isdir(item) else [item]
    return hash_files([p for p in paths if os.path.isfile(p)], key=os.path.realpath, desc="input digests")


def hash_files(paths, *, key=str, desc="digests"):
    """{key(path): "sha256:<hex>"}; hashed on several threads (hashlib releases the GIL), with a bar."""
    def one(path):
        return key(path), file_digest(path)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(tqdm(pool.map(one, paths), total=len(paths), desc=desc, unit="file", file=sys.stderr,
                         disable=len(paths) < 100))


def _summaries_written(output, *, since):
    """ais_bench's summaries under `output` written since `since`: NAME_summary.json, NAME/deviceN_summary.json."""
    found = (glob.glob(os.path.join(output, "*_summary.json"))
             + glob.glob(os.path.join(output, "**", "device*_summary.json"), recursive=True))
    return sorted({p for p in found if os.path.getmtime(p) >= since - 1})


def _unchanged_digests(summary, before):
    """{infile as listed: digest}, refusing in one line when a listed input changed during the run."""
    listed = [p for entry in summary.get("filesinfo", {}).values() for p in entry.get("infiles", [])
              if os.path.isfile(p)]  # not ais_bench's made-up input of performance mode
    after = hash_files(listed, desc="input digests")
    for path in listed:
        if before.get(os.path.realpath(path)) != after[path]:
            raise Flownet2Error(f"{path}: the input file changed while ais_bench ran; its predictions cannot be "
                                "tied to the file's contents (run again with the inputs left alone)")
    return after


# --------------------------------------------------------------------------- command line

def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    model = typed_model(argv)
    if model is not None and model.endswith(".om"):
        return hand_over_to_ais_bench(argv, model=model)
    args = parse_args(argv)
    if args.torch_mode == "compile":
        from .torch_backend import use_inductor_cache

        use_inductor_cache()  # compiled kernels kept between runs
    several = len(args.device) > 1
    name = args.output_dirname if args.output_dirname is not None else time.strftime("%Y_%m_%d-%H_%M_%S")
    throughputs = []
    for index, device in enumerate(args.device):
        session = open_runner_session(args.model, backend=args.backend, device=device, precision=args.precision,
                                      torch_mode=args.torch_mode, size=args.model_size, batchsize=args.batchsize,
                                      emulate=args.emulate)
        if args.debug:
            print(f"[DEBUG] {args.model} on {type(session).__name__}, device {device}: inputs {session.inputs}, "
                  f"weights {session.label}", file=sys.stderr)
        per_input = files_per_input(args.input, len(session.inputs)) if args.input else None
        if per_input is not None and several:
            per_input = device_share(per_input, index, len(args.device))
        folder = output_folder(args.output, name, device=device if several else None)
        summary = run_session(session, per_input=per_input, folder=folder, argv=[sys.argv[0]] + argv,
                              batchsize=args.batchsize, loop=args.loop, warmup_count=args.warmup_count,
                              outfmt=args.outfmt, pure_data_type=args.pure_data_type,
                              output_batchsize_axis=args.output_batchsize_axis,
                              display_all=args.display_all_summary)
        throughputs.append(summary["throughput"])
    if several:
        for index, (device, value) in enumerate(zip(args.device, throughputs)):
            print(f"[INFO] i:{index} device_{device} throughput:{value}")
        print(f"[INFO] summary throughput:{sum(throughputs)} (devices run one after another)")
    return 0


if __name__ == "__main__":
    run_main(main)

"""FlowNet2 on a CUDA GPU, path by path: pairs/s, EPE drift against fp32 eager, peak memory, build time.

    python benchmarks/bench_gpu.py --out runs/gpu_table.md      # CUDA: batches 1, 4, 8 at 448x1024
    python benchmarks/bench_gpu.py --quick                        # CUDA: batch 1, 5 timed runs per path
    python benchmarks/bench_gpu.py --max-autotune                 # + compile max-autotune-no-cudagraphs
                                                                  #   (minutes of compiling per shape)
    python benchmarks/bench_gpu.py --cpu-smoke --out smoke.md     # this script's logic on a CPU, 64x128

Paths (--paths picks some; eager-fp32 always runs first: it is the baseline and the EPE reference):
  eager-fp32     strict fp32 (TF32 off)          eager-tf32   fp32 weights, TF32 tensor cores
  eager-fp16     fp16 sub-networks, fp32 glue    graphs-fp32 / graphs-fp16: one manual CUDA graph
  compile-fp16   torch.compile reduce-overhead   autotune-fp16: max-autotune-no-cudagraphs (--max-autotune)
  eager-bf16     bf16 sub-networks (the --cpu-smoke default; also runs on CUDA)
  compile-fp16-slices: compile-fp16 with the 441-slice correlation (not run by default)
The graphs paths use the matmul correlation (its index is built on the device, so it can be
captured); the corr column says which form ran.
Frames: real MPI-Sintel pairs (clean, then final), normalised and zero-padded to the model size
(resized when the size is not Sintel's padded one, as in --cpu-smoke); stand-in weights by default.
Times: inputs already on the device, median of --iters synchronised calls (host copies excluded).
EPE vs fp32: per pair, the mean end-point distance to the eager fp32 flow over the real pixels; then
the mean over the batch. Compiled code is cached in flownet2.runtime.torch_backend.inductor_cache_dir(): a second run
shows the cached compile time.
"""
import argparse
import contextlib
import copy
import gc
import os
import signal
import sys
import tempfile
import time
import traceback

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from flownet2.cli import parse, run_main  # noqa: E402
from flownet2.data import images, sintel  # noqa: E402
from flownet2.errors import Flownet2Error  # noqa: E402
from flownet2.fileio import atomic_write  # noqa: E402
from flownet2.model import checkpoint  # noqa: E402
from flownet2.runtime import torch_backend  # noqa: E402
from flownet2.score import metrics  # noqa: E402
from flownet2.sizes import model_size  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Looked for in this order; work/ is git-ignored, so a copy of sintel-mini can live there
DATASETS = [os.path.join(REPO, "work", "sintel-mini"), os.path.join(REPO, "shared", "data", "sintel-mini"),
            os.path.normpath(os.path.join(REPO, "..", "shared", "data", "sintel-mini"))]
PATHS = {  # name: (mode, precision, compile mode, correlation asked for)
    "eager-fp32": ("eager", "fp32", None, "matmul"),
    "eager-tf32": ("eager", "tf32", None, "matmul"),
    "eager-fp16": ("eager", "fp16", None, "matmul"),
    "eager-bf16": ("eager", "bf16", None, "matmul"),
    "graphs-fp32": ("graphs", "fp32", None, "matmul"),
    "graphs-fp16": ("graphs", "fp16", None, "matmul"),
    "compile-fp16": ("compile", "fp16", "reduce-overhead", "matmul"),
    "compile-fp16-slices": ("compile", "fp16", "reduce-overhead", "slices"),
    "autotune-fp16": ("compile", "fp16", "max-autotune-no-cudagraphs", "matmul"),
}
BASELINE = "eager-fp32"
# Most telling first: if the time limit cuts the run short, the rows that matter are in.
CUDA_DEFAULT = ["eager-fp32", "eager-fp16", "graphs-fp16", "compile-fp16", "graphs-fp32", "eager-tf32"]
CPU_DEFAULT = ["eager-fp32", "eager-bf16", "graphs-fp16", "compile-fp16"]
COLUMNS = ["path", "batch", "corr", "pairs/s", "ms/batch", "x eager fp32", "EPE vs fp32 (px)",
           "max EPE (px)", "peak GiB", "build s", "note"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="also write the markdown table here (rewritten after every row)")
    p.add_argument("--dataset", help="MPI-Sintel training folder (default: sintel-mini, see DATASETS)")
    p.add_argument("--weights", help="official checkpoint (default: stand-in weights of --seed)")
    p.add_argument("--seed", type=int, default=0, help="stand-in weights seed")
    p.add_argument("--batches", help="comma-separated batch sizes (default 1,4,8; --quick 1; --cpu-smoke 1)")
    p.add_argument("--paths", help=f"comma-separated, from {', '.join(PATHS)}")
    p.add_argument("--height", type=int, help="model height (default 448; --cpu-smoke 64)")
    p.add_argument("--width", type=int, help="model width (default 1024; --cpu-smoke 128)")
    p.add_argument("--iters", type=int, help="timed calls per row (default 20; --quick 5; --cpu-smoke 1)")
    p.add_argument("--warmup", type=int, help="untimed calls when building (default 3; --cpu-smoke 0)")
    p.add_argument("--max-autotune", action="store_true", help="add autotune-fp16 at --autotune-batches")
    p.add_argument("--autotune-batches", default="8", help="batch sizes for autotune-fp16 (default 8)")
    p.add_argument("--path-timeout", type=int, default=240, help="seconds per row before it is abandoned")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--quick", action="store_true", help="short smoke run on CUDA")
    p.add_argument("--cpu-smoke", action="store_true", help="tiny run on the CPU: checks this script only")
    args = parse(p, argv)
    smoke, quick = args.cpu_smoke, args.quick
    args.batches = _ints(args.batches or ("1" if smoke or quick else "1,4,8"), "--batches")
    args.autotune_batches = _ints(args.autotune_batches, "--autotune-batches")
    args.height = args.height or (64 if smoke else 448)
    args.width = args.width or (128 if smoke else 1024)
    args.iters = args.iters or (1 if smoke else 5 if quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (0 if smoke else 3)
    names = args.paths.split(",") if args.paths else (CPU_DEFAULT if smoke else CUDA_DEFAULT)
    if args.max_autotune and "autotune-fp16" not in names:
        names = names + ["autotune-fp16"]
    unknown = [n for n in names if n not in PATHS]
    if unknown:
        p.error(f"unknown path(s) {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    args.paths = [BASELINE] + [n for n in dict.fromkeys(names) if n != BASELINE]
    return args


def _ints(text, flag):
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise Flownet2Error(f"{flag}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise Flownet2Error(f"{flag}: expected positive integers, got {text!r}")
    return values


# --------------------------------------------------------------------------- frames

def find_dataset(dataset, scratch):
    """The Sintel folder to use, and a note when it is synthetic (made in `scratch`: no Sintel found)."""
    if dataset:
        return dataset, None
    for path in DATASETS:
        if os.path.isdir(path):
            return path, None
    from flownet2.data.synthetic import make_synthetic_sintel

    root = make_synthetic_sintel(scratch, scenes=2, pairs=4)
    return root, "SYNTHETIC frames: no MPI-Sintel found (copy sintel-mini to work/ or pass --dataset)"


def load_frames(dataset, count, height, width):
    """(x1, x2, valid): `count` normalised pairs as N x 3 x H x W float32, valid = real pixels (h, w)."""
    pairs = []
    for pass_name in sintel.PASSES:
        pairs += sintel.find_pairs(dataset, pass_name)[0]
    pairs = [pairs[i % len(pairs)] for i in range(count)]  # repeat pairs only if there are too few
    x1 = np.empty((count, 3, height, width), np.float32)
    x2 = np.empty_like(x1)
    sizes = set()
    for i, pair in enumerate(pairs):
        img1, img2 = images.read_rgb(pair.image1), images.read_rgb(pair.image2)
        size = img1.shape[:2]
        mode = "pad" if model_size(*size) == (height, width) else "resize"
        padder = images.InputPadder(size, (height, width), mode)
        a, b = images.normalise_pair(img1, img2)
        padder.pad(a, out=x1[i])
        padder.pad(b, out=x2[i])
        sizes.add(size if mode == "pad" else (height, width))
    if len(sizes) != 1:
        raise Flownet2Error(f"{dataset}: frames of different sizes {sorted(sizes)}; pick one size")
    return x1, x2, sizes.pop()


def epe_vs(pred, ref, valid):
    """(mean over the batch of each pair's mean EPE, largest per-pixel EPE) on the real pixels."""
    h, w = valid
    p = pred[:, :, :h, :w].transpose(0, 2, 3, 1)
    r = ref[:, :, :h, :w].transpose(0, 2, 3, 1)
    per_pair = [metrics.compute_metrics(p[i], r[i])["epe"] for i in range(len(p))]
    return float(np.mean(per_pair)), float(np.sqrt(((p - r) ** 2).sum(-1)).max())


# --------------------------------------------------------------------------- one row

@contextlib.contextmanager
def time_limit(seconds):
    """TimeoutError in the main thread after `seconds` (checked between Python steps)."""
    def expire(signum, frame):
        raise TimeoutError(f"timed out after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(forward, x1, x2, iters, device):
    times = []
    for _ in range(iters):
        _sync(device)
        t0 = time.perf_counter()
        forward(x1, x2)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _inductor_counters():
    from torch._dynamo.utils import counters

    c = counters["inductor"]
    return {k: c[k] for k in ("fxgraph_cache_hit", "fxgraph_cache_miss", "cudagraph_skips")}


def compile_note(before, after):
    delta = {k: after[k] - before[k] for k in after}
    notes = []
    if delta["fxgraph_cache_miss"]:
        notes.append("compiled (cache miss)")
    elif delta["fxgraph_cache_hit"]:
        notes.append("from cache")
    if delta["cudagraph_skips"]:
        notes.append("CUDA graphs skipped by Inductor")
    return ", ".join(notes)


def run_row(base, name, x1, x2, args, device):
    """One path at one batch: a dict with the row's numbers and the flow (numpy)."""
    mode, precision, compile_mode, corr_mode = PATHS[name]
    row = {"path": name, "batch": len(x1)}
    if mode in ("graphs", "compile") and device.type != "cuda":
        row["note"] = "skipped: needs CUDA"
        return row
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model = copy.deepcopy(base)
    model.corr_mode = corr_mode
    before = _inductor_counters()
    t0 = time.perf_counter()
    session = torch_backend.TorchSession(model, batch=x1.shape[0], height=x1.shape[2], width=x1.shape[3],
                                         device=device, precision=precision, mode=mode,
                                         channels_last=args.channels_last,
                                         compile_mode=compile_mode or "reduce-overhead", warmup=args.warmup)
    row["build_s"] = time.perf_counter() - t0
    row["corr"] = session.corr_mode
    xd1, xd2 = (x.to(device=device, memory_format=session.memory_format) for x in (x1, x2))
    row["flow"] = session.forward(xd1, xd2).float().contiguous().cpu().numpy()  # copied: buffers are reused
    row["s"] = median_seconds(session.forward, xd1, xd2, args.iters, device)
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    if mode == "compile":
        row["note"] = compile_note(before, _inductor_counters())
    return row


def free_device(device):
    gc.collect()
    if device.type == "cuda":
        torch._dynamo.reset()  # drops compiled graphs and their CUDA-graph memory pools
        gc.collect()
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------- table

def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def format_table(rows, header):
    base = {r["batch"]: r.get("s") for r in rows if r["path"] == BASELINE}
    lines = header + ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        s, b = r.get("s"), r["batch"]
        ratio = base.get(b) / s if s and base.get(b) else None
        epe = "ref" if r["path"] == BASELINE and s else _fmt(r.get("epe"), ".4f")
        cells = [r["path"], str(b), r.get("corr", ""), _fmt(b / s if s else None, ".1f"),
                 _fmt(s * 1000 if s else None, ".2f"), _fmt(ratio, ".2f"), epe, _fmt(r.get("max_epe"), ".3f"),
                 _fmt(r.get("peak_gib"), ".2f"), _fmt(r.get("build_s"), ".1f"), r.get("note", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def header_lines(args, device, label, dataset, data_note, valid):
    if device.type == "cuda":
        machine = f"{torch.cuda.get_device_name(device)}, PyTorch {torch.__version__} (CUDA {torch.version.cuda})"
    else:
        machine = f"CPU ({os.cpu_count()} cores), PyTorch {torch.__version__}: a logic check, not a benchmark"
    lines = [f"FlowNet2 {args.height}x{args.width} on {machine}",
             f"weights {label}; frames from {dataset} (real pixels {valid[0]}x{valid[1]}); "
             f"channels_last={args.channels_last}; median of {args.iters} synchronised calls, inputs on the device;",
             f"EPE vs fp32 = mean end-point distance to the eager fp32 (TF32 off) flow; "
             f"compile cache {torch_backend.inductor_cache_dir()}"]
    if data_note:
        lines.append(f"**{data_note}**")
    return lines


# --------------------------------------------------------------------------- main

def plan(args):
    """[(path, batch)] in run order: the baseline first at every batch, so ratios and EPE exist."""
    batches = {name: args.autotune_batches if name == "autotune-fp16" else args.batches for name in args.paths}
    batches[BASELINE] = sorted(set().union(*batches.values()))
    return [(name, b) for name in args.paths for b in batches[name]]


def main(argv=None):
    args = parse_args(argv)
    torch_backend.use_inductor_cache()  # compiled kernels survive between runs
    if args.cpu_smoke:
        device = torch.device("cpu")
    else:
        if not torch.cuda.is_available():
            raise Flownet2Error(f"no CUDA GPU visible to PyTorch {torch.__version__}: run this on a CUDA "
                                "machine (benchmarks/gpu_check.sh), or pass --cpu-smoke for a logic check")
        device = torch_backend.resolve_device("cuda")
    todo = plan(args)
    with tempfile.TemporaryDirectory(prefix="flownet2_bench_") as scratch:
        dataset, data_note = find_dataset(args.dataset, scratch)
        x1_all, x2_all, valid = load_frames(dataset, max(b for _, b in todo), args.height, args.width)
    weights = args.weights if args.weights else args.seed
    base, label = checkpoint.load_model(weights)
    header = header_lines(args, device, label, dataset, data_note, valid)
    print("\n".join(header), file=sys.stderr)
    rows, reference = [], {}
    for name, b in todo:
        x1, x2 = torch.from_numpy(x1_all[:b]), torch.from_numpy(x2_all[:b])
        print(f"[bench_gpu] {name} batch {b} ...", file=sys.stderr, flush=True)
        try:
            with time_limit(args.path_timeout):
                row = run_row(base, name, x1, x2, args, device)
        except Exception as e:  # noqa: BLE001 - a failed path is a row of the table, not the end of the run
            traceback.print_exc(file=sys.stderr)
            row = {"path": name, "batch": b, "note": f"failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}"}
        flow = row.pop("flow", None)
        if name == BASELINE and flow is not None:
            reference[b] = flow
        elif flow is not None and b in reference:
            row["epe"], row["max_epe"] = epe_vs(flow, reference[b], valid)
        rows.append(row)
        free_device(device)
        if args.out:
            with atomic_write(args.out, "w") as f:
                f.write(format_table(rows, header))
    print(format_table(rows, header))
    return 0


if __name__ == "__main__":
    run_main(main)

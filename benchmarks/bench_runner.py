"""The model-preparation chain and the runner's overhead at the Ascend guide's size (448x1024, batch 1).

    python benchmarks/bench_runner.py [--workdir /tmp/flownet2_bench] [--batches 3]

Table 1, per correlation form: time of export, `python -m onnxsim`, `python fix_onnx.py` (with its
ONNX Runtime check) and the node counts before/after. Table 2: ONNX Runtime session.run on its own
versus `flownet2.runtime.runner` on the same session over the same batch files (reading inputs, writing
outputs and the summary included); target: under 5% overhead. Stand-in weights (speed only).
Files are ~650 MB each: keep --workdir out of the repository.
"""
import argparse
import os
import subprocess
import sys
import time

import numpy as np
import onnx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from flownet2.cli import parse  # noqa: E402
from flownet2.onnx.fix import fix_model  # noqa: E402
from flownet2.runtime import inputs, runner  # noqa: E402  (after the path set-up, so the script runs from anywhere)
from flownet2.runtime.sessions import open_model  # noqa: E402


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - t0


def node_count(path):
    return len(onnx.load(path, load_external_data=False).graph.node)


def prepare(work, form, height, width):
    """Export -> onnxsim -> fix_onnx for one correlation form; returns the table row and the fixed path."""
    raw, sim, fix = (os.path.join(work, f"flownet2_{form}{s}.onnx") for s in ("", "_sim", "_sim_fix"))
    for stale in (sim, sim + ".data"):  # onnxsim appends to an existing .data file
        if os.path.exists(stale):
            os.remove(stale)
    t_export = timed([sys.executable, "Flownet2_pth2onnx.py", "--init", "random", "--seed", "0", "--batch_size", "1",
                      "--height", str(height), "--width", str(width), "--correlation", form, "--out_path", raw])
    t_sim = timed([sys.executable, "-m", "onnxsim", raw, sim])
    t_fix = timed([sys.executable, "fix_onnx.py", sim, fix])
    _, report = fix_model(onnx.load(sim))
    direct, direct_report = fix_model(onnx.load(raw))  # what fix_onnx does when onnxsim merged nothing
    counts = "; ".join(", ".join(f"{name} {n}" for name, n in r) for r in (report, direct_report))
    row = (f"| {form} | {t_export:.0f} | {t_sim:.0f} | {t_fix:.0f} | {node_count(raw)} | {node_count(sim)} | "
           f"{node_count(fix)} | {len(direct.graph.node)} | {counts} |")
    return row, fix


def write_batches(folder, n, height, width, seed):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        (rng.random((1, 3, height, width), dtype=np.float32) - 0.5).tofile(os.path.join(folder, f"{k}.bin"))


def bare_ms(session, folder1, folder2, n):
    """session.run alone on preloaded arrays, ms per batch."""
    feeds = []
    for k in range(n):
        arrays = [np.fromfile(os.path.join(f, f"{k}.bin"), np.float32).reshape(shape)
                  for f, (_, shape, _) in zip((folder1, folder2), session.inputs)]
        feeds.append({name: a for (name, _, _), a in zip(session.inputs, arrays)})
    times = []
    for feed in feeds:
        t0 = time.perf_counter()
        session.session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def runner_overhead(work, fix, n, height, width):
    folder1, folder2 = os.path.join(work, "image1"), os.path.join(work, "image2")
    write_batches(folder1, n, height, width, seed=1)
    write_batches(folder2, n, height, width, seed=2)
    session = open_model(fix)
    bare_ms(session, folder1, folder2, 1)  # warm-up
    before = bare_ms(session, folder1, folder2, n)
    t0 = time.perf_counter()
    summary = runner.run_session(session, per_input=[inputs.list_input_files(f) for f in (folder1, folder2)],
                                 folder=runner.output_folder(os.path.join(work, "result"), "bench"),
                                 argv=["bench_runner.py"], warmup_count=0)
    runner_wall = (time.perf_counter() - t0) * 1000 / n
    after = bare_ms(session, folder1, folder2, n)
    bare = float(np.mean(before + after))
    print(f"\nRunner overhead, {height}x{width} batch 1, {n} batches, {session.session.get_providers()[0]}:")
    print("| measure | ms per batch |")
    print("|---|---|")
    print(f"| bare session.run (mean of {2 * n}, before and after) | {bare:.0f} |")
    print(f"| runner, NPU_compute_time mean (its timed session.run) | {summary['NPU_compute_time']['mean']:.0f} |")
    print(f"| runner, wall time incl. reading inputs, writing outputs and summary | {runner_wall:.0f} |")
    print(f"| overhead of the runner's wall time over bare session.run | {100 * (runner_wall - bare) / bare:+.1f}% |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", default="/tmp/flownet2_bench")
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--forms", nargs="+", default=["matmul", "slices"], choices=("matmul", "slices"),
                   help="correlation forms to prepare; the first one is used for the runner table")
    args = parse(p, None)
    os.makedirs(args.workdir, exist_ok=True)
    rows, fixed = [], None
    for form in args.forms:
        row, fix = prepare(args.workdir, form, args.height, args.width)
        rows.append(row)
        fixed = fixed or fix
    print(f"Model preparation, {args.height}x{args.width} batch 1 (seconds; node counts):")
    print("| correlation | export s | onnxsim s | fix_onnx s | nodes exported | after onnxsim | after fix_onnx "
          "| fix_onnx on the export directly | fix_onnx rewrites (after onnxsim; directly) |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    runner_overhead(args.workdir, fixed, args.batches, args.height, args.width)


if __name__ == "__main__":
    main()

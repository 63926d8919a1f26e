"""PyTorch eager vs ONNX Runtime on CPU, both correlation forms: seconds per pair, nodes, peak memory.

  python benchmarks/bench_cpu.py                  # 448x1024, batch 1, 5 timed runs after 1 warm-up
  python benchmarks/bench_cpu.py --height 128 --width 192 --runs 2   # quick look

Each configuration runs in its own process so its peak RSS (weights included) is its own.
Stand-in weights: speed does not depend on the weight values.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODES = ("matmul", "slices")


def _inputs(args):
    import numpy as np

    rng = np.random.default_rng(0)
    shape = (args.batch, 3, args.height, args.width)
    x1 = (rng.standard_normal(shape) * 0.3).astype("float32")
    return x1, np.roll(x1, 3, axis=3).copy()


def _time(fn, runs):
    fn()  # warm-up (allocations, ORT's first-run planning)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def child(args):
    """Time one (engine, mode) configuration; print one JSON line."""
    x1, x2 = _inputs(args)
    if args.engine == "pytorch":
        import torch

        from flownet2.checkpoint import load_model

        model, _ = load_model(0, corr_mode=args.mode)
        t1, t2 = torch.from_numpy(x1), torch.from_numpy(x2)

        def fn():
            with torch.no_grad():
                model(t1, t2)
    else:
        import onnxruntime as ort

        sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])

        def fn():
            sess.run(["flow"], {"x1": x1, "x2": x2})
    sec = _time(fn, args.runs) / args.batch
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB on Linux
    print(json.dumps({"sec_per_pair": sec, "peak_mib": peak}))


def export(args, mode, folder):
    import onnx

    path = os.path.join(folder, f"bench_{mode}.onnx")
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Flownet2_pth2onnx.py")
    subprocess.run([sys.executable, script, "--init", "random", "--seed", "0", "--batch_size", str(args.batch),
                    "--height", str(args.height), "--width", str(args.width), "--correlation", mode,
                    "--out_path", path], check=True, capture_output=True)
    return path, len(onnx.load(path, load_external_data=False).graph.node)


def run_child(args, engine, mode, onnx_path):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--engine", engine, "--mode", mode,
           "--onnx", onnx_path or "", "--batch", str(args.batch), "--height", str(args.height),
           "--width", str(args.width), "--runs", str(args.runs)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--onnx", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    from tqdm import tqdm

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in tqdm(MODES, desc="configurations"):
            path, nodes = export(args, mode, folder)
            torch_res = run_child(args, "pytorch", mode, None)
            ort_res = run_child(args, "onnxruntime", mode, path)
            rows.append((mode, nodes, torch_res, ort_res))
            os.remove(path)
    print(f"\nCPU, {os.cpu_count()} cores, {args.height}x{args.width}, batch {args.batch}, "
          f"median of {args.runs} runs, stand-in weights")
    print("| correlation | ONNX nodes | PyTorch eager s/pair | ONNX Runtime s/pair | ORT speed-up | "
          "PyTorch peak MiB | ORT peak MiB |")
    print("|---|---|---|---|---|---|---|")
    for mode, nodes, t, o in rows:
        print(f"| {mode} | {nodes} | {t['sec_per_pair']:.3f} | {o['sec_per_pair']:.3f} | "
              f"{t['sec_per_pair'] / o['sec_per_pair']:.2f}x | {t['peak_mib']:.0f} | {o['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()

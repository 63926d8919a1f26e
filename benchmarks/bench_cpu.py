"""PyTorch eager vs ONNX Runtime on CPU, both correlation forms: seconds per pair, nodes, peak memory.

  python benchmarks/bench_cpu.py                  # 448x1024, batch 1, 5 timed runs after 1 warm-up
  python benchmarks/bench_cpu.py --height 128 --width 192 --runs 2   # quick look
  python benchmarks/bench_cpu.py --before main --engines onnxruntime  # ORT: this tree vs main, side by side

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
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flownet2.cli import parse  # noqa: E402

MODES = ("matmul", "slices")
ENGINES = ("pytorch", "onnxruntime")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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

        from flownet2.model.checkpoint import load_model

        if args.before:  # the same stand-in tensors in another revision's model
            from revision import model_class

            from flownet2.model.checkpoint import stand_in_state_dict

            model = model_class(args.before)(args.mode).eval()
            model.load_state_dict(stand_in_state_dict(model, 0))
        else:
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


def export(args, mode, folder, rev=None):
    """Export stand-in seed 0 at the benchmark's size: with this tree's CLI, or (rev) the model of
    another git revision through this tree's exporter. Returns (path, node count)."""
    import onnx

    path = os.path.join(folder, f"bench_{mode}_{rev or 'tree'}.onnx")
    if rev is None:
        script = os.path.join(REPO, "Flownet2_pth2onnx.py")
        subprocess.run([sys.executable, script, "--init", "random", "--seed", "0", "--batch_size", str(args.batch),
                        "--height", str(args.height), "--width", str(args.width), "--correlation", mode,
                        "--out_path", path], check=True, capture_output=True)
    else:
        code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/benchmarks']\n"
                "from revision import model_class\nfrom flownet2.model.checkpoint import stand_in_state_dict\n"
                "from flownet2.model.export import example_inputs, export_onnx\n"
                "m = model_class(sys.argv[2])(sys.argv[3]); m.load_state_dict(stand_in_state_dict(m, 0))\n"
                "export_onnx(m, sys.argv[4], example_inputs(*map(int, sys.argv[5:8])))\n")
        subprocess.run([sys.executable, "-c", code, REPO, rev, mode, path, str(args.batch), str(args.height),
                        str(args.width)], check=True, capture_output=True)
    return path, len(onnx.load(path, load_external_data=False).graph.node)


def run_child(args, engine, mode, onnx_path, rev=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--engine", engine, "--mode", mode,
           "--onnx", onnx_path or "", "--batch", str(args.batch), "--height", str(args.height),
           "--width", str(args.width), "--runs", str(args.runs)] + (["--before", rev] if rev else [])
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
    p.add_argument("--before", metavar="REV", help="also time the model of this git revision (e.g. main)")
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    args = parse(p, None)
    if args.child:
        return child(args)
    from tqdm import tqdm

    rows = []
    versions = [None] + ([args.before] if args.before else [])
    with tempfile.TemporaryDirectory() as folder:
        for mode, rev in tqdm([(m, r) for m in MODES for r in versions], desc="configurations"):
            path, nodes = export(args, mode, folder, rev)
            res = {e: run_child(args, e, mode, path, rev) for e in args.engines}
            rows.append((mode, rev or "this tree", nodes, res))
            os.remove(path)
    print(f"\nCPU, {os.cpu_count()} cores, {args.height}x{args.width}, batch {args.batch}, "
          f"median of {args.runs} runs, stand-in weights")
    cols = [f"{'PyTorch eager' if e == 'pytorch' else 'ONNX Runtime'} s/pair" for e in args.engines]
    peaks = [f"{'PyTorch' if e == 'pytorch' else 'ORT'} peak MiB" for e in args.engines]
    print("| correlation | model | ONNX nodes | " + " | ".join(cols + peaks) + " |")
    print("|---" * (3 + 2 * len(args.engines)) + "|")
    for mode, rev, nodes, res in rows:
        secs = [f"{res[e]['sec_per_pair']:.3f}" for e in args.engines]
        mib = [f"{res[e]['peak_mib']:.0f}" for e in args.engines]
        print(f"| {mode} | {rev} | {nodes} | " + " | ".join(secs + mib) + " |")
    if args.before and "onnxruntime" in args.engines:
        for mode in MODES:
            new, old = (r[3]["onnxruntime"]["sec_per_pair"] for r in rows if r[0] == mode)
            print(f"ONNX Runtime, {mode}: this tree / {args.before} = {new / old:.3f} (time ratio, same run)")


if __name__ == "__main__":
    main()

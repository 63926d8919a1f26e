"""The CPU engines side by side: seconds per pair, peak memory, and (--compare) drift on a real pair.

  python benchmarks/bench_cpu.py                  # PyTorch eager vs ONNX Runtime, both correlation forms
  python benchmarks/bench_cpu.py --height 128 --width 192 --runs 2   # quick look
  python benchmarks/bench_cpu.py --before main --engines onnxruntime  # ORT: this tree vs main, side by side
  python benchmarks/bench_cpu.py --compare        # ORT fp32, OpenVINO fp32/bf16 (toolkit and bare), PyTorch
                                                  # fp32/bf16 on a real Sintel pair; + predict's default engine

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

# --------------------------------------------------------------------------- --compare: the CPU engines

COMPARE = (("ort-fp32", "ONNX Runtime fp32"), ("ov-fp32", "OpenVINO fp32 (toolkit session)"),
           ("ov-bf16", "OpenVINO bf16 (toolkit session)"), ("bare-bf16", "OpenVINO bf16 (bare compile_model)"),
           ("torch-fp32", "PyTorch fp32 (toolkit)"), ("torch-bf16", "PyTorch bf16 (toolkit)"))


def _compare_runner(args, engine, precision):
    """fn(x1, x2) -> flow for one configuration of --compare."""
    from flownet2.runtime.sessions import open_model

    if engine == "bare":  # OpenVINO as a user would call it without the toolkit
        import openvino as ov

        compiled = ov.Core().compile_model(args.onnx, "CPU", {"INFERENCE_PRECISION_HINT": precision})
        request = compiled.create_infer_request()
        return lambda x1, x2: request.infer({"x1": x1, "x2": x2})[compiled.output(0)]
    if engine == "ov":
        from flownet2.runtime.openvino_backend import open_openvino

        session = open_openvino(args.onnx, precision=precision)
    elif engine == "ort":
        session = open_model(args.onnx)
    else:
        session = open_model("stand-in:0", batch_size=args.batch, size=(args.height, args.width), precision=precision)
    return lambda x1, x2: session.run([x1, x2])[0][0]


def _throughput(args, engine, precision, x1, x2):
    """(pairs/s, streams) with OpenVINO's throughput hint: as many requests in flight as it asks for."""
    import openvino as ov

    if engine == "ov":
        from flownet2.runtime.openvino_backend import open_openvino

        compiled = open_openvino(args.onnx, precision=precision, streams="auto").compiled
    else:
        compiled = ov.Core().compile_model(args.onnx, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                              "PERFORMANCE_HINT": "THROUGHPUT"})
    requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    queue = ov.AsyncInferQueue(compiled, requests)
    for _ in range(requests):  # warm-up: every stream's first run
        queue.start_async({"x1": x1, "x2": x2})
    queue.wait_all()
    runs = max(args.throughput_pairs // args.batch, requests)
    t = time.perf_counter()
    for _ in range(runs):
        queue.start_async({"x1": x1, "x2": x2})
    queue.wait_all()
    return runs * args.batch / (time.perf_counter() - t), compiled.get_property("NUM_STREAMS")


def _peak_mib():
    """This process's peak resident memory (VmHWM): unlike ru_maxrss, not carried over from the parent
    that started it (Linux keeps ru_maxrss across exec)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def compare_child(args):
    """Time one --compare configuration on the saved frames; save its flow; print one JSON line."""
    import numpy as np

    x1, x2 = np.load(args.frames + "_x1.npy"), np.load(args.frames + "_x2.npy")
    engine, precision = args.config.split("-")
    run = _compare_runner(args, engine, precision)
    sec = _time(lambda: run(x1, x2), args.runs) / args.batch
    np.save(args.flow_out, np.asarray(run(x1, x2)))
    peak = _peak_mib()  # before the throughput model's memory
    del run  # one compiled model at a time: the machine's memory is shared
    pps, streams = _throughput(args, engine, precision, x1, x2) if engine in ("ov", "bare") else (None, None)
    print(json.dumps({"sec_per_pair": sec, "peak_mib": peak, "pairs_per_s": pps, "streams": streams}))


def cpu_line():
    """The CPU's model name, its bf16 flags (or their absence) and the cores this process may use."""
    from flownet2.runtime.cpu import BF16_FLAGS, cpu_threads

    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        text = ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    bf16 = [f for f in (*BF16_FLAGS, "amx_tile", "avx512f") if f in flags] or ["no bf16 units"]
    return f"{model}, {cpu_threads()} cores, flags: {' '.join(bf16)}"


def compare(args):
    import numpy as np

    sys.path.insert(0, os.path.join(REPO, "tests"))
    from bench_gpu import epe_vs, load_frames
    from sintel_mini import MINI

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        x1, x2, valid = load_frames(MINI, args.batch, args.height, args.width)
        frames = os.path.join(folder, "frames")
        np.save(frames + "_x1.npy", x1)
        np.save(frames + "_x2.npy", x2)
        args.onnx, _ = export(args, "matmul", folder)
        gflop = count_gflop(args.onnx) / args.batch
        predict = predict_times(args, folder)  # first: a failure there shows before the long table
        print(f"predict: {predict}", file=sys.stderr)
        rows = {}
        for config, _ in COMPARE:
            res = run_compare_child(args, config, frames, os.path.join(folder, f"{config}.npy"))
            res["drift"] = epe_vs(np.load(os.path.join(folder, f"{config}.npy")),
                                  np.load(os.path.join(folder, "ort-fp32.npy")), valid)[0]
            rows[config] = res
            print(f"{config}: {res}", file=sys.stderr)
    print_compare(args, rows, gflop, predict, load)


def count_gflop(onnx_path):
    """GFLOP of one run of the model (Conv, ConvTranspose, MatMul), counted in a process of its own so this
    one never holds the 650 MB graph."""
    code = ("import sys, onnx; sys.path[:0] = [sys.argv[1]]\nfrom bench_family import matmul_flops\n"
            "from profile_ort import conv_flops\nm = onnx.load(sys.argv[2])\n"
            "print((conv_flops(m) + matmul_flops(m)) / 1e9)")
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(os.path.abspath(__file__)), onnx_path],
                         check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def run_compare_child(args, config, frames, flow_out):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--config", config, "--onnx", args.onnx,
           "--frames", frames, "--flow_out", flow_out, "--batch", str(args.batch), "--height", str(args.height),
           "--width", str(args.width), "--runs", str(args.runs), "--throughput_pairs", str(args.throughput_pairs)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def predict_times(args, folder):
    """Wall seconds of Flownet2_predict.py on a checkpoint: its default engine (the first run converts
    and fills the cache: timed apart) and --backend torch --precision fp32."""
    import torch  # noqa: F401  (the checkpoint writer needs it)

    from flownet2.model.checkpoint import load_model, save_checkpoint
    from sintel_mini import MINI

    model, _ = load_model("stand-in:0")
    ckpt = os.path.join(folder, "standin_checkpoint.pth.tar")
    save_checkpoint(ckpt, model.state_dict(), stand_in_seed=0)
    del model
    scene = os.path.join(MINI, "training", "clean", "alley_1")
    frames = os.path.join(folder, "predict_frames")
    os.makedirs(frames)
    for name in sorted(os.listdir(scene))[:args.predict_pairs + 1]:
        os.symlink(os.path.join(scene, name), os.path.join(frames, name))
    env = dict(os.environ, FLOWNET2_CACHE=os.path.join(folder, "cache"))
    times = {}
    runs = (("default, first run (converts)", []), ("default", []),
            ("torch fp32", ["--backend", "torch", "--precision", "fp32"]))
    for n, (key, extra) in enumerate(runs):
        cmd = [sys.executable, os.path.join(REPO, "Flownet2_predict.py"), "--model", ckpt, "--input", frames,
               "--output", os.path.join(folder, "predict_out", str(n))] + extra
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        failed = f"failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}" if done.returncode else ""
        lines = done.stdout.splitlines() or [""]
        times[key] = (time.perf_counter() - t, failed or lines[0], "" if failed else lines[-1])
    return times


def print_compare(args, rows, gflop, predict, load):
    base = rows["ort-fp32"]["sec_per_pair"]
    print(f"\n{cpu_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {load:.1f} "
          f"at the start, {os.getloadavg()[0]:.1f} at the end (other jobs share the cores)")
    print(f"{args.height}x{args.width}, batch {args.batch}, median of {args.runs} runs, one real Sintel pair "
          f"(sintel-mini), stand-in weights (speed does not depend on their values), {gflop:.0f} GFLOP/pair")
    print("| engine | s/pair | vs ORT fp32 | pairs/s (throughput hint, streams) | GFLOP/s | peak MiB | "
          "EPE drift vs ORT fp32 (px) |")
    print("|---|---|---|---|---|---|---|")
    for config, name in COMPARE:
        r = rows[config]
        pps = f"{r['pairs_per_s']:.2f} ({r['streams']})" if r["pairs_per_s"] else "-"
        print(f"| {name} | {r['sec_per_pair']:.3f} | {base / r['sec_per_pair']:.2f}x | {pps} | "
              f"{gflop / r['sec_per_pair']:.0f} | {r['peak_mib']:.0f} | {r['drift']:.4f} |")
    ov, bare = rows["ov-bf16"]["sec_per_pair"], rows["bare-bf16"]["sec_per_pair"]
    print(f"\ntoolkit OpenVINO bf16: {base / ov:.2f}x ORT fp32, {bare / ov:.2f}x bare OpenVINO bf16")
    print(f"\nFlownet2_predict.py, a checkpoint, {args.predict_pairs} pairs of alley_1 at their own size "
          "(wall seconds, process start and model load included):")
    for key, (sec, first, last) in predict.items():
        print(f"  {key}: {sec:.1f} s   [{first}] [{last}]")
    ratio = predict["torch fp32"][0] / predict["default"][0]
    print(f"  default engine: {ratio:.2f}x faster than --backend torch --precision fp32 (wall)")


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
    p.add_argument("--compare", action="store_true", help="the CPU engines table on a real Sintel pair")
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--frames", help=argparse.SUPPRESS)
    p.add_argument("--flow_out", help=argparse.SUPPRESS)
    p.add_argument("--throughput_pairs", type=int, default=8, help="--compare: pairs timed with the throughput hint")
    p.add_argument("--predict_pairs", type=int, default=3, help="--compare: pairs Flownet2_predict.py runs")
    args = parse(p, None)
    if args.child:
        return compare_child(args) if args.config else child(args)
    if args.compare:
        return compare(args)
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

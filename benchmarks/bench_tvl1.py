"""FlowNet2, -CSS and -S on the CPU engines against CPU TV-L1 at 256x340, and what a Kinetics-400
extraction would cost in CPU-core-days.

    pip install --target /tmp/cv2contrib opencv-contrib-python-headless   # TV-L1 (cv2.optflow), kept apart
    python benchmarks/bench_tvl1.py [--cv2-contrib /tmp/cv2contrib] [--threads 1] [--runs 3]

TV-L1 is OpenCV's DualTVL1 (cv2.optflow.DualTVL1OpticalFlow_create() with its defaults, on grey frames):
the algorithm of denseflow's default and of mmaction2's CPU flow extraction. It lives in
opencv-contrib-python-headless, which also provides `cv2` and would shadow the toolkit's
opencv-python-headless if installed beside it; so it goes into a folder of its own and runs in a
subprocess with that folder first on sys.path. Without it that row is skipped with a hint.

Frames: the Sintel sample's consecutive pairs (sintel-mini, clean pass), resized to 340x256 (WxH), as
mmaction2's Kinetics recipe (short side 256). The models run at 256x384 (340 resized up to the next
multiple of 64, predict's default), stand-in weights (speed does not depend on their values), through
runtime/sessions.open_model, model time only (session.run; frames already normalised in memory). TV-L1:
calc() only (grey frames ready). Every method in its own process, with `--threads` threads (OpenCV's
setNumThreads; OMP_NUM_THREADS for the engines, which the toolkit's OpenVINO session honours): per
core, what a cluster running one process per core gets. Median over `--runs` passes over the pairs of
the CPU seconds the process used per pair (all its threads: core-seconds, which other jobs on a shared
machine move far less than the wall time, also printed); CPU-core-days = pairs x CPU s/pair / 86400.
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from flownet2.cli import parse  # noqa: E402

MINI = os.environ.get("FLOWNET2_SINTEL_MINI") or os.path.join(os.path.dirname(REPO), "shared", "data", "sintel-mini")
FRAME = (256, 340)   # H, W: mmaction2's Kinetics frames
MODEL = (256, 384)   # the model's size for them
METHODS = ("tvl1", "openvino/bf16/flownet2", "openvino/fp32/flownet2", "openvino/bf16/css", "openvino/fp32/css",
           "openvino/bf16/s", "openvino/fp32/s")
NAMES = {"flownet2": "FlowNet2", "css": "FlowNet2-CSS", "s": "FlowNet2-S"}
INSTALL = "pip install --target /tmp/cv2contrib opencv-contrib-python-headless"


def sintel_pairs():
    """Consecutive frame pairs of the sample, RGB uint8 resized to 340x256."""
    from PIL import Image

    pairs = []
    for scene in sorted(glob.glob(os.path.join(MINI, "training", "clean", "*"))):
        files = sorted(glob.glob(os.path.join(scene, "*.png")))
        frames = [Image.open(f).convert("RGB").resize(FRAME[::-1], Image.BILINEAR) for f in files]
        pairs += [(a, b) for a, b in zip(frames, frames[1:])]
    if not pairs:
        sys.exit(f"no Sintel frames under {MINI} (FLOWNET2_SINTEL_MINI)")
    import numpy as np

    return [(np.asarray(a), np.asarray(b)) for a, b in pairs]


def child_tvl1(args):
    import cv2

    cv2.setNumThreads(args.threads)
    grey = [(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)) for a, b in sintel_pairs()]
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    tvl1.calc(*grey[0], None)  # warm-up
    return [_pass(lambda pair: tvl1.calc(pair[0], pair[1], None), grey) for _ in range(args.runs)], cv2.__version__


def child_model(args):
    from flownet2.data import images
    from flownet2.runtime.sessions import open_model

    _, precision, member = args.method.split("/")
    model = "stand-in:0" if member == "flownet2" else f"stand-in:{member}:0"
    session = open_model(model, backend="openvino", size=MODEL, precision=precision)
    padder = images.InputPadder(FRAME, MODEL, "resize")
    inputs = []
    for a, b in sintel_pairs():
        x1, x2 = images.normalise_pair(a, b)
        inputs.append((padder.pad(x1)[None], padder.pad(x2)[None]))
    session.run(list(inputs[0]))  # warm-up
    return [_pass(lambda pair: session.run(list(pair)), inputs) for _ in range(args.runs)], session.threads


def _pass(fn, pairs):
    """(wall seconds, CPU seconds of this process's threads) per pair over one pass."""
    t0, c0 = time.perf_counter(), time.process_time()
    for pair in pairs:
        fn(pair)
    return (time.perf_counter() - t0) / len(pairs), (time.process_time() - c0) / len(pairs)


def run_child(method, args):
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if method == "tvl1":
        probe = subprocess.run([sys.executable, "-c", "import cv2; cv2.optflow.DualTVL1OpticalFlow_create"],
                               env={**env, "PYTHONPATH": args.cv2_contrib}, capture_output=True)
        if probe.returncode != 0:
            return None
        env["PYTHONPATH"] = args.cv2_contrib  # first on sys.path: contrib's cv2 before the toolkit's
    cmd = [sys.executable, os.path.abspath(__file__), "--child", method, "--threads", str(args.threads),
           "--runs", str(args.runs)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"{method} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cv2-contrib", default="/tmp/cv2contrib", metavar="DIR",
                   help=f"where opencv-contrib-python-headless is installed ({INSTALL})")
    p.add_argument("--threads", type=int, default=1, help="threads per process (default 1: per-core numbers)")
    p.add_argument("--runs", type=int, default=3, help="passes over the pairs; the median is reported")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--clips", type=int, default=240_000, help="Kinetics-400 training clips (~240k)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per clip (~10)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (25-30)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = parse(p, None)
    if args.child:
        args.method = args.child
        runs, extra = child_tvl1(args) if args.child == "tvl1" else child_model(args)
        print(json.dumps({"runs": runs, "extra": extra}))
        return
    pairs_k400 = args.clips * (round(args.seconds * args.fps) - 1)
    print(f"bench_tvl1: {machine()}; {args.threads} thread(s) per process; {len(sintel_pairs())} Sintel pairs at "
          f"{FRAME[1]}x{FRAME[0]} (models at {MODEL[0]}x{MODEL[1]}), median of {args.runs} passes")
    cache = tempfile.mkdtemp(prefix="bench-tvl1-cache-")  # the stand-ins' conversions, not ~/.cache
    os.environ["FLOWNET2_CACHE"] = cache
    try:
        results = {method: run_child(method, args) for method in args.methods.split(",")}
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    rows, tvl1 = [], None
    for method, result in results.items():
        if result is None:
            print(f"TV-L1 skipped: cv2.optflow not importable from {args.cv2_contrib}; {INSTALL}")
            continue
        sec = statistics.median(cpu for _, cpu in result["runs"])
        wall = statistics.median(wall for wall, _ in result["runs"])
        if method == "tvl1":
            tvl1, name = sec, f"TV-L1 (OpenCV {result['extra']} DualTVL1, defaults, grey)"
        else:
            _, precision, member = method.split("/")
            name = f"{NAMES[member]}, OpenVINO {precision}"
        rows.append([name, wall, sec, pairs_k400 * sec / 86400])
    print(f"\nKinetics-400: {args.clips:,} clips x {args.seconds:g} s x {args.fps:g} fps = "
          f"{pairs_k400 / 1e6:.0f} M pairs")
    print("| method | CPU s/pair | pairs/s per core | vs TV-L1 | wall s/pair (shared machine) | Kinetics-400, "
          "CPU-core-days |\n|---|---|---|---|---|---|")
    for name, wall, sec, core_days in rows:
        ratio = f"{tvl1 / sec:.1f}x" if tvl1 else "-"
        print(f"| {name} | {sec:.3f} | {1 / sec:.2f} | {ratio} | {wall:.3f} | {core_days:,.0f} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    return (f"{os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"{os.getloadavg()[0]:.1f} at the start (other jobs share the cores)")


if __name__ == "__main__":
    main()

"""Peak memory (and seconds per pair) of opening and running a model, per engine, precision and member:
the table flownet2/memory.py estimates from, and a check of that estimate against a real predict run.

    python benchmarks/bench_memory.py                   # every row below at 256x256, 512x768, 1024x1344
    python benchmarks/bench_memory.py --rows openvino/bf16/s --sizes 256x256,512x768
    python benchmarks/bench_memory.py --check           # Flownet2_predict.py on two 1024x1365 frames:
                                                        # measured peak vs memory.estimate; then on two
                                                        # 8000x6000 frames: refused, in how long

Each (row, size) runs in a fresh process that opens the model through runtime/sessions.open_model (the
memory check off), runs one pair twice and reports its own peak RSS (getrusage ru_maxrss: weights,
export, conversion and activations together) and the second run's seconds. OpenVINO on a checkpoint or
stand-in is measured twice: converting (a fresh cache folder: export to ONNX, convert, compile, run) and
cached (the same folder again: read the IR, compile, run). ONNX Runtime runs an .onnx exported first,
in a process of its own (the export row). A least-squares line through the sizes gives
peak = fixed + per model pixel x H x W and seconds = fixed + per megapixel x H x W / 1e6 (batch 1).
Stand-in weights: memory and speed do not depend on their values.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from flownet2.cli import parse  # noqa: E402

# engine/precision/member[/stage]; stage: convert (fresh cache) or cached (OpenVINO on a checkpoint only)
ROWS = ("openvino/bf16/flownet2", "openvino/fp32/flownet2", "torch/fp32/flownet2", "onnxruntime/fp32/flownet2",
        "openvino/bf16/css", "openvino/bf16/s", "torch/fp32/css", "torch/fp32/s")
SIZES = "256x256,512x768,1024x1344"
MIB = 2 ** 20


def child(args):
    """One open + two runs in this process; print one JSON line (peak bytes, seconds)."""
    import numpy as np

    from flownet2.runtime.sessions import open_model

    height, width = args.size
    t0 = time.perf_counter()
    if args.engine == "export":
        from flownet2.model.checkpoint import load_model
        from flownet2.model.export import example_inputs, export_onnx

        model, label = load_model(args.model)
        export_onnx(model, args.onnx, example_inputs(1, height, width), weights_label=label)
        run_s = None
    else:
        model = args.onnx if args.engine == "onnxruntime" else args.model
        session = open_model(model, backend=args.engine, size=(height, width), precision=args.precision,
                             check_memory=False)
        rng = np.random.default_rng(0)
        x1 = (rng.standard_normal((1, 3, height, width)) * 0.3).astype(np.float32)
        x2 = np.roll(x1, 3, axis=3).copy()
        session.run([x1, x2])
        run_s = session.run([x1, x2])[1] / 1000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"peak": peak, "run_s": run_s, "total_s": time.perf_counter() - t0}))


def measure(engine, precision, member, size, *, cache, onnx=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--engine", engine, "--precision", precision,
           "--model", stand_in_spec(member), "--size", f"{size[0]}x{size[1]}"] + (["--onnx", onnx] if onnx else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "FLOWNET2_CACHE": cache})
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def stand_in_spec(member):
    return "stand-in:0" if member == "flownet2" else f"stand-in:{member}:0"


def fit(points):
    """Least-squares line y = a + b x through [(x, y)]: (a, b)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    b = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return my - b * mx, b


def measure_row(row, sizes, tmp):
    """{stage: [(size, result)]} for one engine/precision/member."""
    engine, precision, member = row.split("/")
    stages = {}
    for size in sizes:
        cache = tempfile.mkdtemp(prefix="cache-", dir=tmp)  # fresh: the first open converts
        if engine == "onnxruntime":
            onnx = os.path.join(tmp, f"{member}_{size[0]}x{size[1]}.onnx")
            stages.setdefault("export", []).append((size, measure("export", "fp32", member, size, cache=cache,
                                                                  onnx=onnx)))
            stages.setdefault("run", []).append((size, measure(engine, precision, member, size, cache=cache,
                                                               onnx=onnx)))
            os.unlink(onnx)
        elif engine == "openvino":
            stages.setdefault("convert", []).append((size, measure(engine, precision, member, size, cache=cache)))
            stages.setdefault("cached", []).append((size, measure(engine, precision, member, size, cache=cache)))
        else:
            stages.setdefault("run", []).append((size, measure(engine, precision, member, size, cache=cache)))
        print(f"  {row} {size[0]}x{size[1]} done", file=sys.stderr, flush=True)
    return stages


def report(results):
    """The measured table and the fitted coefficients, as memory.py's TABLE takes them."""
    print("| engine | precision | member | stage | model size | peak MiB | s/pair (2nd run) |")
    print("|---|---|---|---|---|---|---|")
    for (engine, precision, member), stages in results.items():
        for stage, points in stages.items():
            for (h, w), r in points:
                run = "-" if r["run_s"] is None else f"{r['run_s']:.3f}"
                print(f"| {engine} | {precision} | {member} | {stage} | {h}x{w} | {r['peak'] / MIB:.0f} | {run} |")
    print("\nfitted (batch 1): peak = fixed + per_pixel x H x W; seconds = s_fixed + s_per_mpx x H x W / 1e6")
    print("| engine | precision | member | stage | fixed MiB | bytes per model pixel | s fixed | s per Mpx |"
          " worst fit error |")
    print("|---|---|---|---|---|---|---|---|---|")
    lines = []
    for (engine, precision, member), stages in results.items():
        for stage, points in stages.items():
            if len(points) < 2:  # one size: a measurement, not a line
                continue
            fixed, per_px = fit([(h * w, r["peak"]) for (h, w), r in points])
            worst = max(abs(fixed + per_px * h * w - r["peak"]) / r["peak"] for (h, w), r in points)
            timed = [(h * w / 1e6, r["run_s"]) for (h, w), r in points if r["run_s"] is not None]
            s_fixed, s_mpx = fit(timed) if timed else (None, None)
            tcols = f"{s_fixed:.3f} | {s_mpx:.3f}" if timed else "- | -"
            print(f"| {engine} | {precision} | {member} | {stage} | {fixed / MIB:.0f} | {per_px:.0f} | {tcols} |"
                  f" {100 * worst:.1f}% |")
            times = f", {s_fixed:.3f}, {s_mpx:.3f}" if timed else ", None, None"
            lines.append(f'    ("{engine}", "{precision}", "{member}", "{stage}"): '
                         f"Cost({round(fixed / MIB)} * MIB, {round(per_px)}{times}),")
    print("\nas memory.py's TABLE:\n" + "\n".join(lines))


def check(args):
    """Flownet2_predict.py on two 4032x3024 photos with --new-short 1024 (the frames shrunk before the
    model): peak vs estimate; then on two 8000x6000 frames: refused, how fast, nothing converted."""
    from flownet2 import memory
    from flownet2.sizes import OutputSize, model_size

    with tempfile.TemporaryDirectory() as tmp:
        paths = sintel_frames(tmp, args.check_size, "jpg")
        shrink = ["--new-short", str(args.check_new_short)] if args.check_new_short else []
        done, peak, wall = predict_run(args, paths, tmp, extra=shrink)
        if done.returncode != 0:
            sys.exit(f"Flownet2_predict.py failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        msize = model_size(*OutputSize(new_short=args.check_new_short or None).of(args.check_size))
        est = memory.estimate(engine="openvino", precision=args.precision, member=stand_in(args.model), batch=1,
                              size=msize, stage="convert")
        print(f"check: Flownet2_predict.py --model {args.model} --precision {args.precision} {' '.join(shrink)}, two "
              f"{args.check_size[1]}x{args.check_size[0]} frames (model size {msize[0]}x{msize[1]}), a fresh "
              f"OpenVINO cache (the conversion included); {machine()}")
        print("\n".join("  " + line for line in done.stdout.splitlines()
                        if "pairs/s" in line or "engine" in line or line.startswith("input")))
        print(f"measured peak {peak / 2 ** 30:.2f} GiB, estimate {est.peak / 2 ** 30:.2f} GiB: estimate / measured = "
              f"{est.peak / peak:.3f} ({100 * (est.peak - peak) / peak:+.1f}%); wall {wall:.1f} s, "
              f"estimated {est.seconds:.1f} s/pair")
        paths = sintel_frames(tmp, (6000, 8000), "jpg")
        done, peak, wall = predict_run(args, paths, tmp, cache="cache-big")
        converted = os.listdir(os.path.join(tmp, "cache-big")) if os.path.isdir(os.path.join(tmp, "cache-big")) else []
        print(f"\n8000x6000 pair: exit {done.returncode} after {wall:.1f} s wall, peak {peak / 2 ** 20:.0f} MiB, "
              f"{len(converted)} cache entries written; {machine()}\n  {done.stderr.strip()}")


def stand_in(model):
    from flownet2 import memory

    return memory.stand_in_member(model) or "flownet2"


def sintel_frames(tmp, size, ext):
    """Two Sintel frames (alley_1 1 and 2) resized to `size` (H, W), as files in `tmp`."""
    from PIL import Image

    mini = os.environ.get("FLOWNET2_SINTEL_MINI") or os.path.join(os.path.dirname(REPO), "shared", "data",
                                                                  "sintel-mini")
    paths = []
    for n in (1, 2):
        frame = Image.open(os.path.join(mini, "training", "clean", "alley_1", f"frame_{n:04d}.png")).convert("RGB")
        path = os.path.join(tmp, f"f{n}_{size[0]}.{ext}")
        frame.resize(size[::-1], Image.BILINEAR).save(path)
        paths.append(path)
    return paths


def predict_run(args, paths, tmp, cache="cache", extra=()):
    """(the finished process, its peak RSS bytes, wall seconds) of Flownet2_predict.py on `paths`."""
    cmd = [sys.executable, os.path.join(REPO, "Flownet2_predict.py"), "--model", args.model, "--input", *paths,
           "--output", os.path.join(tmp, "out"), "--precision", args.precision, "--force", *extra]
    # a wrapper process of its own: RUSAGE_CHILDREN is then the predict process's peak alone
    wrapper = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
               "print('PEAK', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024); "
               "sys.exit(done.returncode)")
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True,
                          env={**os.environ, "FLOWNET2_CACHE": os.path.join(tmp, cache)})
    wall = time.perf_counter() - t0
    peak = int(next(line.split()[1] for line in done.stdout.splitlines() if line.startswith("PEAK")))
    return done, peak, wall


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    return (f"{os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
            f"{os.getloadavg()[0]:.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default=",".join(ROWS), help="engine/precision/member, comma-separated")
    p.add_argument("--sizes", default=SIZES, help="HxW model sizes, comma-separated (multiples of 64)")
    p.add_argument("--check", action="store_true", help="a predict run's peak against the estimate instead")
    p.add_argument("--check-size", default="3024x4032", help="--check: the frames' HxW (default 3024x4032: a "
                   "12-megapixel phone photo)")
    p.add_argument("--check-new-short", type=int, default=1024, help="--check: --new-short for that run (0: none)")
    p.add_argument("--model", default="stand-in:0")
    p.add_argument("--precision", default="bf16")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--size", help=argparse.SUPPRESS)
    p.add_argument("--onnx", help=argparse.SUPPRESS)
    args = parse(p, None)
    if args.child:
        args.size = tuple(int(v) for v in args.size.split("x"))
        return child(args)
    if args.check:
        args.check_size = tuple(int(v) for v in args.check_size.split("x"))
        return check(args)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    print(f"bench_memory: {machine()} at the start (other jobs may share the cores); MemTotal "
          f"{_mem_total() / 2 ** 30:.1f} GiB")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.rows.split(","):
            results[tuple(row.split("/"))] = measure_row(row, sizes, tmp)
    report(results)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


def _mem_total():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal"))


if __name__ == "__main__":
    main()

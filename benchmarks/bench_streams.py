"""Several OpenVINO requests in flight (Flownet2_predict.py --streams): predict's end-to-end pairs/s
against bare OpenVINO's, side by side in one process.

  python benchmarks/bench_streams.py                          # FlowNet2 at 256x384, bf16 where the CPU has bf16 units
  python benchmarks/bench_streams.py --rounds 1 --frames 8    # quick look

One converted model (stand-in:0, the full FlowNet2 with stand-in weights: speed does not depend on their
values; converted through the toolkit's cache) on real Sintel frames at 256x384 (alley_1's four frames,
each cropped at six places: 24 frames, 23 pairs). Four runs, interleaved over --rounds, each round
starting one run later (the median of each is printed, every round's too, and the median over rounds of
the ratio to the same round's bare THROUGHPUT: on a shared machine, runs side by side see alike loads):
  - bare OpenVINO, LATENCY hint: `compile_model` with only the precision and the hint, what a user writes
    without the toolkit; one request, on the pairs already normalised in memory;
  - bare OpenVINO, THROUGHPUT hint: its optimal number of requests in flight (AsyncInferQueue), same pairs;
  - predict() with --streams 1 and with --streams auto: what Flownet2_predict.py runs once the model is
    open (read and normalise every frame, the model, write every .flo); its "pairs/s end to end".
Then the flows of --streams auto against --streams 1 (max and mean EPE; fp32 bound 1e-4 px, bf16 the
documented bound: mean EPE within 5 % of the mean flow length, per pair).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import numpy as np  # noqa: E402

from flownet2.cli import parse  # noqa: E402

H, W = 256, 384
CROPS = 6  # places each real frame is cropped at
BF16_RELATIVE_EPE = 0.05  # docs/cpu.md: bf16's mean EPE within 5 % of the mean flow length
FP32_TOL_PX = 1e-4


def write_frames(folder, count):
    """`count` real Sintel frames at 256x384: alley_1's four, cropped at CROPS places across the frame."""
    from PIL import Image
    from sintel_mini import MINI

    if MINI is None:
        sys.exit("the Sintel sample (sintel-mini) is needed: set FLOWNET2_SINTEL_MINI")
    scene = os.path.join(MINI, "training", "clean", "alley_1")
    images = [Image.open(os.path.join(scene, f)).convert("RGB") for f in sorted(os.listdir(scene))]
    paths = []
    for n in range(count):
        crop, frame = divmod(n, len(images))
        left = (crop % CROPS) * (images[0].width - W) // (CROPS - 1)
        top = (crop % 2) * (images[0].height - H)
        paths.append(os.path.join(folder, f"frame_{n + 1:04d}.png"))
        images[frame].crop((left, top, left + W, top + H)).save(paths[-1])
    return paths


def normalised_pairs(paths):
    from flownet2.data import images

    frames = [images.read_rgb(p) for p in paths]
    pairs = []
    for a, b in zip(frames, frames[1:]):
        x1, x2 = images.normalise_pair(a, b)
        pairs.append({name: np.ascontiguousarray(x[None], np.float32) for name, x in (("x1", x1), ("x2", x2))})
    return pairs


def bare(xml, precision, hint):
    import openvino as ov

    return ov.Core().compile_model(xml, "CPU", {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": hint})


def time_latency(compiled, pairs):
    request = compiled.create_infer_request()
    request.infer(pairs[0])  # warm-up
    t = time.perf_counter()
    for feeds in pairs:
        request.infer(feeds)
    return len(pairs) / (time.perf_counter() - t)


def time_throughput(compiled, pairs):
    import openvino as ov

    requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    queue = ov.AsyncInferQueue(compiled, requests)
    for k in range(requests):  # warm-up: every request's first run
        queue.start_async(pairs[k % len(pairs)])
    queue.wait_all()
    t = time.perf_counter()
    for feeds in pairs:
        queue.start_async(feeds)
    queue.wait_all()
    return len(pairs) / (time.perf_counter() - t)


def time_predict(session, folder, out):
    """(pairs/s end to end, pairs/s in the model) of predict() over the folder, as Flownet2_predict.py prints."""
    from flownet2.data import frames
    from flownet2.runtime import predict
    from flownet2.runtime.outputs import Outputs
    from flownet2.runtime.sessions import run_stream

    x = [np.zeros((session.batch_size, 3, H, W), np.float32)] * 2
    list(run_stream(session, [x] * session.streams))  # warm-up: every request's first run, as for bare
    source = frames.open_source([folder])
    predict.prepare_outputs(source, out, Outputs(), force=True)
    result = predict.predict(session, source, output=out, progress=False)
    return result.pairs / result.seconds, result.pairs / (result.model_ms / 1000)


def compare_flows(paths, out_one, out_auto, precision):
    from flownet2.data.flo import read_flo

    names = [os.path.splitext(os.path.basename(p))[0] + ".flo" for p in paths[:-1]]
    one = np.stack([read_flo(os.path.join(out_one, n)) for n in names]).astype(np.float64)
    auto = np.stack([read_flo(os.path.join(out_auto, n)) for n in names]).astype(np.float64)
    epe = np.sqrt(((one - auto) ** 2).sum(axis=-1))
    length = np.sqrt((one ** 2).sum(axis=-1)).mean(axis=(1, 2))
    if precision == "fp32":
        within = f"max within {FP32_TOL_PX} px: {'yes' if epe.max() < FP32_TOL_PX else 'NO'}"
    else:
        ok = np.all(epe.mean(axis=(1, 2)) < BF16_RELATIVE_EPE * length)
        within = (f"every pair's mean EPE within 5 % of its mean flow length ({length.min():.2f} px or more): "
                  f"{'yes' if ok else 'NO'}")
    return (f"flows, --streams auto against --streams 1 over {len(names)} pairs: max EPE {epe.max():.2e} px, "
            f"mean EPE {epe.mean():.2e} px; {within}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=24, help="real frames at 256x384 (default 24: 23 pairs)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the four runs (default 5)")
    p.add_argument("--precision", choices=("bf16", "fp32"), help="default: bf16 with bf16 units, else fp32")
    args = parse(p, None)
    from flownet2.runtime.cpu import cpu_precision
    from flownet2.runtime.openvino_backend import cached_ir
    from flownet2.runtime.sessions import open_model

    precision = args.precision or cpu_precision()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        frames_dir = os.path.join(folder, "frames")
        os.makedirs(frames_dir)
        paths = write_frames(frames_dir, args.frames)
        pairs = normalised_pairs(paths)
        xml, _ = cached_ir("stand-in:0", batch_size=1, size=(H, W))  # converted once, kept in the cache
        runs = {"bare OpenVINO, LATENCY hint": (bare(str(xml), precision, "LATENCY"), time_latency),
                "bare OpenVINO, THROUGHPUT hint": (bare(str(xml), precision, "THROUGHPUT"), time_throughput)}
        for streams in (1, "auto"):
            session = open_model("stand-in:0", backend="openvino", size=(H, W), precision=precision, streams=streams)
            out = os.path.join(folder, f"out_{streams}")
            runs[f"predict(), --streams {streams}"] = (session, lambda s, _, out=out: time_predict(s, frames_dir, out))
        rates = {name: [] for name in runs}
        names = list(runs)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:  # each round starts one run later
                model, timer = runs[name]
                rates[name].append(timer(model, pairs))
                print(f"{name}: {rates[name][-1]}", file=sys.stderr)
        flows = compare_flows(paths, os.path.join(folder, "out_1"), os.path.join(folder, "out_auto"), precision)
        in_flight = {name: (model.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS") if "THROUGHPUT" in name else
                            getattr(model, "streams", 1)) for name, (model, _) in runs.items()}
    print_table(args, precision, rates, in_flight, flows, load)


def print_table(args, precision, rates, in_flight, flows, load):
    from bench_cpu import cpu_line

    def end_to_end(r):
        return r[0] if isinstance(r, tuple) else r

    median = {name: statistics.median(end_to_end(r) for r in rs) for name, rs in rates.items()}
    base = rates["bare OpenVINO, THROUGHPUT hint"]
    print(f"\n{cpu_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average "
          f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other jobs share the cores)")
    print(f"FlowNet2 (stand-in:0) at {H}x{W}, batch 1, {precision}, {args.frames} real Sintel frames "
          f"({args.frames - 1} pairs), median of {args.rounds} interleaved round(s); the ratio: each round's "
          "against the same round's bare THROUGHPUT, median")
    print("| run | requests in flight | pairs/s (each round) | pairs/s in the model | vs bare THROUGHPUT |")
    print("|---|---|---|---|---|")
    for name, rs in rates.items():
        each = ", ".join(f"{end_to_end(r):.2f}" for r in rs)
        model = f"{statistics.median(r[1] for r in rs):.2f}" if isinstance(rs[0], tuple) else "-"
        ratio = statistics.median(end_to_end(r) / b for r, b in zip(rs, base))
        print(f"| {name} | {in_flight[name]} | {median[name]:.2f} ({each}) | {model} | {ratio:.2f}x |")
    print(flows)


if __name__ == "__main__":
    main()

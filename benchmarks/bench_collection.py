"""Video collections: what the formats cost and lose, how busy the model is, what Ray adds.

    python benchmarks/bench_collection.py formats            # size per pair and worst error vs .flo
    python benchmarks/bench_collection.py busy [--model stand-in:0 --clips 20 --frames 3 --size 64x128]
    python benchmarks/bench_collection.py ray [--workers 8 --clips 64 --frames 5 --pair-ms 100]
    python benchmarks/bench_collection.py scale [--model stand-in:0]   # --step, --new-short on real clips

formats: every Sintel ground-truth .flo of the sample (1024x436) written in each format and read back
through flow_formats.read_flow; the error is the largest |u, v| difference against the .flo, over the
pixels each format can hold (jpg: within +-bound; kitti: within +-512 px) and the share it clips.
busy: `--clips` short clips through one collection run (the model opened once, inside the run's
time) against the bare session.run on the same pairs already in memory; the share of the run the
model was busy, and the per-video overhead.
ray: the orchestration alone: a model that takes a fixed `--pair-ms` per pair (a sleep), one Ray
actor against `--workers` actors (Ray started here with that many logical CPUs), and the plain loop
in this process; pairs/s and per-video overhead (wall minus model time, per video).
scale: one clip per Sintel scene of the sample at its own size (436x1024; its frames forward then
back, to 6 frames), through Flownet2_predict.py: `--format jpg --rgb --step 2 --new-short 128` (files
per video and their sizes), then `--new-short 256 --rgb`, its flows written in every format: the disk
each needs per pair, and per frame for img_N.jpg.
"""
import argparse
import glob
import itertools
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flownet2.cli import parse
from flownet2.data import flow_formats, frames, images
from flownet2.data.flo import read_flo
from flownet2.data.kitti_png import LIMIT as KITTI_LIMIT
from flownet2.runtime import collection

MINI = os.environ.get("FLOWNET2_SINTEL_MINI") or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "sintel-mini")


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}; load average {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d')}"


def table(header, rows):
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


# ------------------------------------------------------------------------------------------ formats

def bench_formats(args):
    flows = sorted(glob.glob(os.path.join(MINI, "training", "flow", "*", "*.flo")))
    if not flows:
        sys.exit(f"no Sintel .flo files under {MINI}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in flow_formats.FORMATS:
            fmt = flow_formats.FlowFormat(kind, bound=args.bound)
            size, worst, total, clipped, pixels = 0, 0.0, 0.0, 0, 0
            for n, path in enumerate(flows):
                flow = read_flo(path)
                written = fmt.write(tmp, f"f{n}", n, flow)
                size += sum(os.path.getsize(p) for p in written)
                back, _ = fmt.read(written[0])
                limit = {"jpg": args.bound, "kitti": KITTI_LIMIT}.get(kind, np.inf)
                inside = (np.abs(flow) < limit).all(axis=2)
                error = np.abs(back - flow)[inside]
                worst, total = max(worst, float(error.max())), total + float(error.sum(dtype=np.float64))
                clipped += int((~inside).sum())
                pixels += inside.size
            rows.append([kind, f"{size / len(flows) / 1e6:.3f} MB", f"{worst:.4g} px",
                         f"{total / max(1, 2 * (pixels - clipped)):.4g} px",
                         f"{100 * clipped / pixels:.2f}%"])
    print(f"formats: {len(flows)} Sintel ground-truth flows ({' '.join(sorted({Path(f).parent.name for f in flows}))},"
          f" 436x1024), jpg bound {args.bound:g} px; {machine()}")
    table(["format", "size per pair", "worst error vs .flo (pixels in range)", "mean error (u and v)",
           "pixels outside the range"], rows)


# ------------------------------------------------------------------------------------------ clips

def make_clips(root, count, frame_count, size):
    """`count` short H.264 clips of Sintel frames resized to `size` (frame i of the scene, shifted by k)."""
    import av
    from PIL import Image

    scenes = sorted(glob.glob(os.path.join(MINI, "training", "clean", "*")))
    pool = [np.asarray(Image.open(f).convert("RGB").resize(size[::-1])) for s in scenes
            for f in sorted(glob.glob(os.path.join(s, "*.png")))]
    for k in range(count):
        path = Path(root) / f"class{k % 4}" / f"clip{k:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.height, stream.width, stream.pix_fmt = size[0], size[1], "yuv420p"
            for i in range(frame_count):
                frame = av.VideoFrame.from_ndarray(pool[(k + i) % len(pool)], format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return root


def bench_busy(args):
    from flownet2.runtime.sessions import open_model
    from flownet2.sizes import model_size

    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_clips(os.path.join(tmp, "v"), args.clips, args.frames, size)
        jobs = collection.find_jobs(videos)[0]
        settings = collection.Settings(args.model, os.path.join(tmp, "o"))
        load = {}

        def timed_open(*a, **k):
            t0 = time.perf_counter()
            session = open_model(*a, **k)
            load["s"] = time.perf_counter() - t0
            return session

        tally = collection.Tally(len(jobs), collection.failed_list_path(settings.output))
        collection.run_jobs(jobs, collection.Worker(settings, timed_open), tally)
        run_s = time.perf_counter() - tally.t0
        # the bare model on the same pairs, normalised and in memory
        session = open_model(args.model, size=model_size(*size))
        padder = images.InputPadder(size, session.size, "resize")
        bare_ms = 0.0
        for job in jobs:
            decoded = list(frames.open_source([job.video]).frames())
            for a, b in itertools.pairwise(decoded):
                x1, x2 = images.normalise_pair(a, b)
                bare_ms += session.run([padder.pad(x1)[None], padder.pad(x2)[None]])[1]
    pairs = tally.pairs
    overhead = (run_s - tally.model_ms / 1000 - load["s"]) / len(jobs) * 1000
    print(f"busy: {len(jobs)} clips x {args.frames} frames ({pairs} pairs) at {size[0]}x{size[1]}, "
          f"model {args.model}, one process; {machine()}")
    table(["pairs", "model opened", "load s", "run s (load included)", "model busy s", "model busy, % of run",
           "bare model s, same pairs", "per-video overhead ms"],
          [[pairs, tally.loads, f"{load['s']:.1f}", f"{run_s:.1f}", f"{tally.model_ms / 1000:.1f}",
            f"{100 * tally.model_ms / 1000 / run_s:.1f}%", f"{bare_ms / 1000:.1f}", f"{overhead:.0f}"]])


# ------------------------------------------------------------------------------------------ scale

def sintel_clips(root, length=6):
    """One H.264 clip per scene of the sample, its frames forward then back (a scene has 2 to 4)."""
    import av
    from PIL import Image

    for scene in sorted(glob.glob(os.path.join(MINI, "training", "clean", "*"))):
        files = sorted(glob.glob(os.path.join(scene, "*.png")))
        order = list(itertools.islice(itertools.cycle(files + files[-2:0:-1]), length))
        with av.open(os.path.join(root, os.path.basename(scene) + ".mp4"), "w") as out:
            stream = out.add_stream("libx264", rate=24)
            first = np.asarray(Image.open(order[0]).convert("RGB"))
            stream.height, stream.width, stream.pix_fmt = first.shape[0], first.shape[1], "yuv420p"
            for f in order:
                frame = av.VideoFrame.from_ndarray(np.asarray(Image.open(f).convert("RGB")), format="rgb24")
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return root


def predict_cli(*argv):
    import subprocess

    script = Path(__file__).resolve().parents[1] / "Flownet2_predict.py"
    done = subprocess.run([sys.executable, str(script), *map(str, argv)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"Flownet2_predict.py failed: {done.stderr.strip().splitlines()[-1]}")


def bench_scale(args):
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        clips = Path(tmp) / "clips"
        clips.mkdir()
        sintel_clips(clips)
        out = Path(tmp) / "s2"
        predict_cli("--model", args.model, "--input", clips, "--output", out, "--format", "jpg", "--rgb",
                    "--step", "2", "--new-short", "128")
        print(f"scale: {len(os.listdir(clips))} clips of 6 frames (436x1024), model {args.model}; {machine()}")
        rows = []
        for video in sorted(p for p in out.iterdir() if p.is_dir()):
            shapes = {cv2.imread(str(f)).shape[:2] for f in video.glob("*.jpg")}
            rows.append([video.name, len(list(video.glob("img_*.jpg"))), len(list(video.glob("flow_x_*.jpg"))),
                         len(list(video.glob("flow_y_*.jpg"))), " ".join(f"{h}x{w}" for h, w in sorted(shapes))])
        table(["video (--step 2 --new-short 128)", "img files", "flow_x files", "flow_y files", "sizes"], rows)
        out = Path(tmp) / "s256"
        predict_cli("--model", args.model, "--input", clips, "--output", out, "--rgb", "--new-short", "256")
        flows = sorted(out.glob("*/frame_*.flo"))
        images = sorted(out.glob("*/img_*.jpg"))
        rows = [["img_N.jpg (per frame)", f"{sum(f.stat().st_size for f in images) / len(images) / 1e3:.1f} kB"]]
        for kind in flow_formats.FORMATS:
            fmt = flow_formats.FlowFormat(kind, bound=args.bound)
            written = [fmt.write(Path(tmp) / kind, f"p{n}", n, read_flo(f)) for n, f in enumerate(flows)]
            size = sum(os.path.getsize(p) for paths in written for p in paths)
            rows.append([kind, f"{size / len(flows) / 1e3:.1f} kB"])
        shape = read_flo(flows[0]).shape[:2]
        print(f"\n{len(flows)} pairs at --new-short 256 ({shape[0]}x{shape[1]}), jpg bound {args.bound:g} px")
        table(["format", "disk per pair"], rows)
        # a --step 3 pair against the two-image run on the same decoded frames
        from PIL import Image

        clip = sorted(clips.iterdir())[0]
        predict_cli("--model", args.model, "--input", clip, "--output", Path(tmp) / "s3", "--step", "3")
        decoded = list(frames.open_source([clip]).frames())
        for n in (0, 3):
            Image.fromarray(decoded[n]).save(Path(tmp) / f"f{n}.png")
        predict_cli("--model", args.model, "--input", Path(tmp) / "f0.png", Path(tmp) / "f3.png", "--output",
                    Path(tmp) / "two")
        same = (Path(tmp) / "s3" / clip.stem / "frame_0001.flo").read_bytes() == (Path(tmp) / "two" / "f0.flo").read_bytes()
        print(f"\n{clip.name} --step 3, pair 1 vs the two-image run on frames 1 and 4: "
              f"{'byte-identical' if same else 'DIFFERENT'}")


# ------------------------------------------------------------------------------------------ ray

class SleepSession:
    """A model taking a fixed time per pair: the orchestration is all that is measured around it."""

    label = "sleep"
    copy_ms = None

    def __init__(self, size, pair_ms):
        self.size, self.batch_size, self.pair_ms = size, 1, pair_ms
        self.inputs = [(n, [1, 3, *size], np.dtype(np.float32)) for n in ("x1", "x2")]

    def run(self, arrays):
        t0 = time.perf_counter()
        time.sleep(self.pair_ms / 1000)
        return [np.zeros((1, 2) + self.size, np.float32)], (time.perf_counter() - t0) * 1000


class SleepOpener:
    def __init__(self, pair_ms):
        self.pair_ms = pair_ms

    def __call__(self, model, *, size, **_):
        return SleepSession(tuple(size), self.pair_ms)


def bench_ray(args):
    import ray

    from flownet2.runtime import ray_pool

    size = (64, 128)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_clips(os.path.join(tmp, "v"), args.clips, args.frames, size)
        jobs = collection.find_jobs(videos)[0]
        opener = SleepOpener(args.pair_ms)

        def measure(label, workers, output):
            settings = collection.Settings("sleep", os.path.join(tmp, output))
            if workers is None:
                worker = collection.Worker(settings, opener)
                worker.session(frames.open_source([jobs[0].video]))  # opened before the clock starts
                tally = collection.Tally(len(jobs), collection.failed_list_path(settings.output))
                collection.run_jobs(jobs, worker, tally)
            else:
                actors = ray_pool.start_actors(ray, settings, {"num_cpus": 1}, workers, opener)
                tally = collection.Tally(len(jobs), collection.failed_list_path(settings.output))
                ray_pool.dispatch(ray, actors, list(jobs), tally)
                for a in actors:
                    ray.kill(a)
            wall = time.perf_counter() - tally.t0
            assert tally.counts["done"] == len(jobs), tally.counts
            per_video = (wall * (workers or 1) - tally.model_ms / 1000) / len(jobs) * 1000
            rows.append([label, tally.pairs, f"{wall:.2f}", f"{tally.pairs / wall:.2f}", f"{per_video:.0f}"])
            return tally.pairs / wall

        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False,
                 object_store_memory=100 * 2 ** 20)
        try:
            measure("plain loop, this process", None, "plain")
            one = measure("Ray, 1 actor", 1, "ray1")
            many = measure(f"Ray, {args.workers} actors", args.workers, f"ray{args.workers}")
        finally:
            ray.shutdown()
    print(f"ray: {len(jobs)} clips x {args.frames} frames at 64x128, a model of {args.pair_ms:g} ms per pair "
          f"(sleep), Ray {ray.__version__}; {machine()}")
    table(["run", "pairs", "wall s", "pairs/s", "per-video overhead ms (wall x workers - model time, per video)"],
          rows)
    print(f"{args.workers} actors reach {100 * many / (args.workers * one):.1f}% of {args.workers}x one actor's pairs/s")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=("formats", "busy", "ray", "scale"))
    p.add_argument("--bound", type=float, default=flow_formats.DEFAULT_BOUND)
    p.add_argument("--model", default="stand-in:0")
    p.add_argument("--clips", type=int)
    p.add_argument("--frames", type=int)
    p.add_argument("--size", default="64x128")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--pair-ms", type=float, default=100.0)
    args = parse(p, None)
    if args.what == "formats":
        bench_formats(args)
    elif args.what == "scale":
        bench_scale(args)
    elif args.what == "busy":
        args.clips, args.frames = args.clips or 20, args.frames or 3
        bench_busy(args)
    else:
        args.clips, args.frames = args.clips or 64, args.frames or 5
        bench_ray(args)


if __name__ == "__main__":
    main()

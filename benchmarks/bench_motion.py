"""Motion scores for curation: clips/s of FlowNet2, -CSS and -S against OpenCV's Farneback, same clips,
same sampling, same scored size; how busy the model is, and what decoding costs beside it.

    python benchmarks/bench_motion.py [--clips 4 --seconds 6 --sample-fps 2 --size 576x320 --gop 48]

The sampler's own table: the same kind of clips with a keyframe every 12, 48 and 250 frames, sampled
(frames decoded, seeks, seconds) against decoding every frame: where seeking saves the decode.

The clips: `--clips` real 720p clips (1280x720, 24 fps, H.264 with a keyframe every `--gop` frames), each a
window sliding 4 px a frame over a Sintel frame of the sample enlarged 2.5x. Each model runs as
`Flownet2_predict.py --motion-score` does (a collection run in this process: sampled frames at the scored
size, no flow files), with stand-in weights of each member (speed does not depend on their values) on the
default CPU engine, OpenVINO in bf16 where the CPU has bf16 units; the model is opened (and converted, the
first time) before the clock starts. Farneback: the same sampled frames (the same sampler), grey, with
data-juicer's parameters, one pair at a time in this thread. `model busy`: the share of the run's wall time
the model ran; `decode`: the time spent decoding and resizing the sampled frames (a reader thread, beside
the model).
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flownet2.cli import parse
from flownet2.data import sampling
from flownet2.runtime import collection
from flownet2.sizes import OutputSize, parse_width_height

MINI = os.environ.get("FLOWNET2_SINTEL_MINI") or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "sintel-mini")
MEMBERS = (("FlowNet2", "stand-in:0"), ("FlowNet2-CSS", "stand-in:css:0"), ("FlowNet2-S", "stand-in:s:0"))
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2, "flags": 0}


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    return f"{os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"


def make_clips(folder, count, seconds, gop):
    import av
    import cv2
    from PIL import Image

    os.makedirs(folder)
    pictures = sorted(Path(MINI, "training", "clean").glob("*/*.png"))
    for k in range(count):
        big = np.asarray(Image.open(pictures[k % len(pictures)]).convert("RGB"))
        big = cv2.resize(big, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC)
        with av.open(os.path.join(folder, f"clip{k}.mp4"), "w") as out:
            stream = out.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
            stream.options = {"preset": "veryfast", "g": str(gop), "crf": "20"}
            for n in range(int(seconds * 24)):
                window = np.ascontiguousarray(big[100 + n:820 + n, 4 * n:4 * n + 1280])
                for packet in stream.encode(av.VideoFrame.from_ndarray(window, format="rgb24")):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return folder


def run_model(model, jobs, size, fps, output):
    settings = collection.Settings(model, output, motion=True, sample_fps=fps, flow_files=False,
                                   output_size=OutputSize(new_size=size))
    worker = collection.Worker(settings)
    worker.session(sampling.open_clip(jobs[0].video, settings.sampling(), size=settings.output_size))  # load first
    tally = collection.Tally(len(jobs), collection.failed_list_path(output))
    collection.run_jobs(jobs, worker, tally)
    wall = time.perf_counter() - tally.t0
    return {"clips": tally.counts["done"], "pairs": tally.pairs, "wall": wall, "model": tally.model_ms / 1000,
            "decode": tally.decode_ms / 1000, "engine": "/".join(worker.engine())}


def run_farneback(jobs, size, fps):
    import cv2

    t0, pairs, decode = time.perf_counter(), 0, 0.0
    for job in jobs:
        clip = sampling.open_clip(job.video, sampling.Sampling(fps=fps), size=OutputSize(new_size=size))
        previous = None
        for frame in clip.frames():
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            if previous is not None:
                cv2.calcOpticalFlowFarneback(previous, grey, None, **FARNEBACK)  # timed: data-juicer's flow
                pairs += 1
            previous = grey
        decode += clip.decode_s
    wall = time.perf_counter() - t0
    return {"clips": len(jobs), "pairs": pairs, "wall": wall, "model": wall - decode, "decode": decode,
            "engine": "OpenCV"}


def decode_table(folder, count, seconds, fps, size):
    """The sampler alone on clips with a keyframe every 12, 48 and 250 frames, against decoding every frame."""
    import av

    print(f"\nThe sampler alone ({count} clips, --sample-fps {fps:g}, resized to {size[0]}x{size[1]}) against a "
          "full decode of the same clips:")
    print("| keyframe every | frames | frames decoded | seeks | sampler s | full decode s |\n|---|---|---|---|---|---|")
    for gop in (12, 48, 250):
        videos = make_clips(os.path.join(folder, f"gop{gop}"), count, seconds, gop)
        jobs = collection.find_jobs(videos)[0]
        decoded = seeks = 0
        t0 = time.perf_counter()
        for job in jobs:
            clip = sampling.open_clip(job.video, sampling.Sampling(fps=fps), size=OutputSize(new_size=size))
            for _ in clip.frames():
                pass
            decoded, seeks = decoded + clip.decoded, seeks + clip.seeks
        sampled = time.perf_counter() - t0
        t0, frames = time.perf_counter(), 0
        for job in jobs:
            with av.open(job.video) as container:
                container.streams.video[0].thread_type = "AUTO"
                frames += sum(1 for _ in container.decode(video=0))
        print(f"| {gop} | {frames} | {decoded} | {seeks} | {sampled:.2f} | {time.perf_counter() - t0:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=4)
    p.add_argument("--seconds", type=float, default=6.0, help="length of each clip")
    p.add_argument("--sample-fps", type=float, default=2.0)
    p.add_argument("--size", default="576x320", help="scored size, WxH")
    p.add_argument("--gop", type=int, default=48, help="frames between keyframes (48: 2 s, common for web video)")
    p.add_argument("--decode-clips", type=int, default=2, help="clips per keyframe interval in the sampler's table "
                   "(0: no table)")
    args = parse(p, argv)
    size = parse_width_height(args.size)
    print(f"{machine()}; load average {os.getloadavg()[0]:.2f} at the start (other jobs may share the cores)")
    with tempfile.TemporaryDirectory() as tmp:
        videos = make_clips(os.path.join(tmp, "clips"), args.clips, args.seconds, args.gop)
        jobs = collection.find_jobs(videos)[0]
        print(f"{len(jobs)} clips of 1280x720, {args.seconds:g} s at 24 fps (keyframe every {args.gop}), "
              f"--sample-fps {args.sample_fps:g}, scored at {size[0]}x{size[1]}")
        results = [(name, run_model(model, jobs, size, args.sample_fps, os.path.join(tmp, name)))
                   for name, model in MEMBERS]
        results.append(("OpenCV Farneback", run_farneback(jobs, size, args.sample_fps)))
        table(results)
        if args.decode_clips:
            decode_table(tmp, args.decode_clips, args.seconds, args.sample_fps, size)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def table(results):
    print("| scorer | engine | clips/s | pairs/s | vs Farneback | model busy | decode s / model s |")
    print("|---|---|---|---|---|---|---|")
    base = results[-1][1]["clips"] / results[-1][1]["wall"]
    for name, r in results:
        rate = r["clips"] / r["wall"]
        busy = f"{r['model'] / r['wall']:.0%}" if r["engine"] != "OpenCV" else "-"
        print(f"| {name} | {r['engine']} | {rate:.3f} | {r['pairs'] / r['wall']:.2f} | {rate / base:.2f}x | {busy} "
              f"| {r['decode']:.1f} / {r['model']:.1f} |")


if __name__ == "__main__":
    main()

"""Flownet2_predict's streaming overhead: end-to-end pairs/s on a video against the bare model's.

  python benchmarks/bench_predict.py                 # a 30-frame 436x1024 clip, 448x1024 model, batch 1
  python benchmarks/bench_predict.py --frames 6      # quick look

One ONNX Runtime CPU session (stand-in weights, padded to 448x1024) is timed twice in one process:
bare, session.run on inputs already in memory, once per pair; and end to end, predict() on an H.264
clip: decoding, normalising, padding, the model, cropping and writing every .flo. Wall time and the
process's CPU time are both reported: on a shared machine other processes stretch the wall time of
either run, not the work each does. The clip is made
from the real Sintel frames (tests/sintel_mini.py finds them; otherwise synthetic ones), shifted a
little each frame so no two frames are the same.
"""
import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from flownet2.cli import parse  # noqa: E402

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def source_frames(folder):
    """A few real 436x1024 frames (Sintel alley_1), or synthetic ones when the sample is absent."""
    from sintel_mini import MINI

    from flownet2.data import images

    if MINI:
        scene = os.path.join(MINI, "training", "clean", "alley_1")
        return [images.read_rgb(os.path.join(scene, f)) for f in sorted(os.listdir(scene))]
    from flownet2.data.synthetic import make_synthetic_sintel

    root = make_synthetic_sintel(os.path.join(folder, "synthetic"), scenes=1, pairs=3)
    scene = os.path.join(root, "clean", "synthetic_1")
    return [images.read_rgb(os.path.join(scene, f)) for f in sorted(os.listdir(scene))]


def make_clip(path, frames, count, fps=24):
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for k in range(count):
            img = np.roll(frames[k % len(frames)], 2 * k, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def export(path, height, width):
    subprocess.run([sys.executable, os.path.join(REPO, "Flownet2_pth2onnx.py"), "--init", "random", "--seed", "0",
                    "--batch_size", "1", "--height", str(height), "--width", str(width), "--out_path", path],
                   check=True, capture_output=True)


def bare(session, pairs):
    """(wall s, CPU s) of session.run once per pair on one pair's inputs, normalised, in memory."""
    rng = np.random.default_rng(0)
    shape = [1, 3, *session.size]
    x1 = (rng.standard_normal(shape) * 0.3).astype(np.float32)
    x2 = np.roll(x1, 3, axis=3).copy()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(pairs):
        session.run([x1, x2])
    return time.perf_counter() - t0, time.process_time() - c0


def end_to_end(session, clip, folder):
    """(wall s, CPU s, s inside session.run, pairs) of predict() on the clip, .flo files written."""
    from flownet2.data import frames
    from flownet2.runtime import predict

    c0 = time.process_time()
    result = predict.predict(session, frames.open_source([clip]), output=folder, size_mode="pad", progress=False)
    return result.seconds, time.process_time() - c0, result.model_ms / 1000, result.pairs


def machine():
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name}, {os.cpu_count()} cores"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=30, help="frames in the clip (pairs = frames - 1)")
    args = parse(p, None)
    from flownet2.runtime.sessions import open_model

    with tempfile.TemporaryDirectory() as folder:
        clip, model = os.path.join(folder, "clip.mp4"), os.path.join(folder, "flownet2_bs1.onnx")
        make_clip(clip, source_frames(folder), args.frames)
        export(model, 448, 1024)
        session = open_model(model)
        pairs = args.frames - 1
        session.run([np.zeros([1, 3, 448, 1024], np.float32)] * 2)  # warm-up: ORT's first-run planning
        bare_wall, bare_cpu = bare(session, pairs)
        wall, cpu, in_model, done = end_to_end(session, clip, os.path.join(folder, "out"))
        assert done == pairs
    print(f"\n{machine()}; ONNX Runtime CPU, 436x1024 H.264 clip of {args.frames} frames, model 448x1024 "
          f"batch 1 (pad), stand-in weights; bare then end to end, one process")
    print("| pairs | bare pairs/s | end-to-end pairs/s | wall overhead | CPU s/pair bare | CPU s/pair end to end "
          "| CPU overhead | model busy, % of end-to-end wall |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {pairs} | {pairs / bare_wall:.3f} | {pairs / wall:.3f} | {(wall / bare_wall - 1) * 100:+.1f}% "
          f"| {bare_cpu / pairs:.3f} | {cpu / pairs:.3f} | {(cpu / bare_cpu - 1) * 100:+.1f}% "
          f"| {in_model / wall * 100:.1f}% |")
    print("(wall: what a user waits; CPU: the work done, what other processes on a shared machine cannot "
          "inflate; model busy: the share of the stream's time the model was running, not waiting on I/O)")


if __name__ == "__main__":
    main()

"""The Python API's time per pair against Flownet2_predict.py's "in the model" figure, same model, engine
and precision, side by side in one process.

  python benchmarks/bench_api.py                         # FlowNet2 stand-in, 12 real Sintel frames, 436x1024
  python benchmarks/bench_api.py --model stand-in:s:0 --frames 6

Rows, each after a warm-up call at the same size (the conversion and first compile are not timed):
- CLI: predict() over a folder of frames as Flownet2_predict.py runs it; its model time per pair (the
  figure the CLI prints as "pairs/s in the model") and its wall time per pair.
- model.video(folder): the API's streaming iterator, wall time per pair (decoding, normalising and the
  resize back included: the frames are prepared in a thread while the model runs).
- model(batch, batch): one call on all pairs as arrays, wall time per pair.
- model(img1, img2) per pair: nothing to overlap with, so the normalising and resizing add to it.
The machine line names the CPU and its bf16 units; read the ratio, not the seconds, on a shared machine.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import flownet2  # noqa: E402
from flownet2.cli import parse  # noqa: E402


def machine_line():
    from bench_cpu import cpu_line  # the CPU's model and bf16 flags, as every CPU table prints them

    return (f"{cpu_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"load average {os.getloadavg()[0]:.1f} at the start")


def real_frames(count):
    from sintel_mini import MINI

    if not MINI:
        raise SystemExit("needs the Sintel sample (tests/sintel_mini.py says where it is looked for)")
    scene = os.path.join(MINI, "training", "clean", "alley_1")
    names = sorted(os.listdir(scene))
    base = [np.asarray(Image.open(os.path.join(scene, n)).convert("RGB")) for n in names]
    return [np.ascontiguousarray(np.roll(base[k % len(base)], 2 * k, axis=1)) for k in range(count)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="stand-in:0")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--backend", default="auto")
    p.add_argument("--precision", default="auto")
    args = parse(p, argv)
    from flownet2.data import frames as frame_sources
    from flownet2.runtime import predict

    print(machine_line())
    images = real_frames(args.frames)
    pairs = len(images) - 1
    with tempfile.TemporaryDirectory() as work:
        folder = os.path.join(work, "frames")
        os.makedirs(folder)
        for k, img in enumerate(images):
            Image.fromarray(img).save(os.path.join(folder, f"frame_{k + 1:04d}.png"))
        model = flownet2.load(args.model, backend=args.backend, precision=args.precision)
        model(images[0], images[1])  # warm-up: converts / compiles at this size
        print(f"{args.model} on {model.engine} {model.precision}, {pairs} pairs of {images[0].shape[0]}x"
              f"{images[0].shape[1]} (real Sintel frames), weights {model.weights}")
        source = frame_sources.open_source([folder])
        session = model.flow_model.session(source.frame_size)
        t0 = time.perf_counter()
        result = predict.predict(session, source, output=os.path.join(work, "cli"), progress=False)
        cli_wall = (time.perf_counter() - t0) / pairs
        cli_model = result.model_ms / 1000 / pairs
        t0 = time.perf_counter()
        assert len(list(model.video(folder))) == pairs
        video = (time.perf_counter() - t0) / pairs
        t0 = time.perf_counter()
        model(np.stack(images[:-1]), np.stack(images[1:]))
        batch = (time.perf_counter() - t0) / pairs
        t0 = time.perf_counter()
        for a, b in zip(images[:-1], images[1:]):
            model(a, b)
        single = (time.perf_counter() - t0) / pairs
    rows = [("CLI predict(): model time (its 'in the model' figure)", cli_model),
            ("CLI predict(): wall time, files written", cli_wall),
            ("API model.video(folder)", video), ("API model(batch, batch)", batch),
            ("API model(img1, img2), one call per pair", single)]
    print("| path | s/pair | vs the CLI's model time |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / cli_model:.3f}x |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

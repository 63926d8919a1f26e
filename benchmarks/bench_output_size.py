"""What `--new-short` costs: the model at the output's size (default) against the model at the source's
(`--flow-at source`) and against the same clip shrunk beforehand, side by side in one run.

  python benchmarks/bench_output_size.py                       # FlowNet2 stand-in, 24 frames of 1280x720
  python benchmarks/bench_output_size.py --model stand-in:s:0 --frames 8

The clip: real Sintel frames (alley_1, tests/sintel_mini.py) enlarged to 1280x720 and shifted 3 px a
frame, H.264 (crf 18); the "shrunk beforehand" clip is the same frames resized to 456x256 first (455x256,
the size --new-short 256 writes, made even for H.264's 4:2:0; the same 256x512 model size) and encoded
the same way. Each row runs Flownet2_predict.py's code path
(`--format jpg --rgb --new-short 256`) after one warm-up pair at its model size (the conversion is not
timed) and prints pairs/s in the model and end to end, the model size, and the files written.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

import numpy as np  # noqa: E402

from flownet2.cli import parse  # noqa: E402


def clip_frames(count, size):
    import cv2
    from sintel_mini import MINI

    from flownet2.data import images

    if not MINI:
        raise SystemExit("needs the Sintel sample (tests/sintel_mini.py says where it is looked for)")
    scene = os.path.join(MINI, "training", "clean", "alley_1")
    base = [images.read_rgb(os.path.join(scene, f)) for f in sorted(os.listdir(scene))]
    big = [cv2.resize(f, (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for f in base]
    return [np.ascontiguousarray(np.roll(big[k % len(big)], 3 * k, axis=1)) for k in range(count)]


def encode(path, frames, fps=24):
    import av

    with av.open(path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def run(model, clip, output, size):
    """(pairs/s in the model, pairs/s end to end, model size, files written) of one predict run."""
    from flownet2.data import flow_formats, frames
    from flownet2.runtime import predict
    from flownet2.runtime.outputs import Outputs

    outputs = Outputs(fmt=flow_formats.FlowFormat("jpg"), rgb=True, size=size)
    source = frames.open_source([clip], size=size)
    session = model.session(source.frame_size)
    predict.prepare_outputs(source, output, outputs)
    result = predict.predict(session, source, output=output, outputs=outputs, progress=False)
    written = sorted(os.listdir(os.path.join(output, os.path.splitext(os.path.basename(clip))[0])))
    return result.pairs / (result.model_ms / 1000), result.pairs / result.seconds, session.size, written


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="stand-in:0")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--new-short", type=int, default=256)
    args = parse(p, argv)
    from bench_cpu import cpu_line

    from flownet2.runtime.flow_model import FlowModel
    from flownet2.sizes import OutputSize

    print(f"{cpu_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    model = FlowModel(args.model)
    print(f"{args.model} on {model.describe()}; {args.frames} frames of 1280x720 -> short side {args.new_short}")
    with tempfile.TemporaryDirectory() as work:
        frames_720 = clip_frames(args.frames, (720, 1280))
        small = OutputSize(new_short=args.new_short).of((720, 1280))
        small = (small[0] + small[0] % 2, small[1] + small[1] % 2)  # H.264's 4:2:0 needs even sides: 456x256
        from flownet2.data.frames import resize_frame

        encode(os.path.join(work, "clip.mp4"), frames_720)
        encode(os.path.join(work, "small.mp4"), [resize_frame(f, small, antialias=True) for f in frames_720])
        rows = []
        for name, clip, size in (
                ("720p, --new-short (the model at the output's size)", "clip.mp4",
                 OutputSize(new_short=args.new_short)),
                ("720p, --new-short --flow-at source", "clip.mp4",
                 OutputSize(new_short=args.new_short, flow_at="source")),
                ("the clip shrunk beforehand, no flag", "small.mp4", OutputSize())):
            warm = model.session(OutputSize.frames_of(size, (720, 1280)) if clip == "clip.mp4" else small)
            warm.run([np.zeros(s, d) for _, s, d in warm.inputs])  # compiled and warm before the clock
            rows.append((name, *run(model, os.path.join(work, clip), os.path.join(work, f"out{len(rows)}"), size)))
    base = rows[2][1]
    print("| run | model size | pairs/s in the model | vs shrunk beforehand | pairs/s end to end | files per clip |")
    print("|---|---|---|---|---|---|")
    for name, in_model, end_to_end, model_size, written in rows:
        print(f"| {name} | {model_size[0]}x{model_size[1]} | {in_model:.2f} | {in_model / base:.2f}x | "
              f"{end_to_end:.2f} | {len(written)} |")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()

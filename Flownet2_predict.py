"""Optical flow for your own frames or video, from any model the pipeline makes.

    python Flownet2_predict.py --model flownet2_bs1_sim_fix.onnx --input frame1.png frame2.png --output out
    python Flownet2_predict.py --model stand-in:0 --input frames/ --output out --png
    python Flownet2_predict.py --model FlowNet2_checkpoint.pth.tar --input clip.mp4 --output out \
        --video out/clip_flow.mp4

Writes <first frame's name>.flo per pair (a video clip.mp4: out/clip/frame_0001.flo, numbered from 1).
"""
import argparse
import os
from fractions import Fraction

from flownet2.cli import run_main
from flownet2.data import frames, sintel
from flownet2.errors import Flownet2Error
from flownet2.model import provenance
from flownet2.runtime import predict
from flownet2.runtime.sessions import open_model
from flownet2.sizes import model_size


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=".onnx (ONNX Runtime), .om (Ascend, ais_bench), a checkpoint .pth.tar or stand-in:SEED")
    p.add_argument("--input", required=True, nargs="+", metavar="INPUT",
                   help="two image files, a folder of frames, or a video file")
    p.add_argument("--output", required=True, help="folder for the .flo files (and --png pictures)")
    p.add_argument("--size-mode", choices=sintel.InputPadder.MODES, default="resize",
                   help="how frames reach the model's size: bilinear resize (default, as the official Caffe "
                        "release; u, v rescaled back) or zero padding at the bottom/right")
    p.add_argument("--batch_size", type=int, help="pairs per model run (a static model: its own batch size)")
    p.add_argument("--png", action="store_true", help="a labelled colour picture beside each .flo")
    p.add_argument("--video", metavar="OUT.mp4", help="a video of each first frame beside its flow")
    p.add_argument("--fps", type=Fraction, help="frame rate of --video (default: the source's, else 24)")
    p.add_argument("--flow-radius", type=float, metavar="PX",
                   help="flow magnitude at the colour wheel's rim (default: the first pair's largest)")
    p.add_argument("--gt", metavar="DIR", help="ground-truth .flo files of the same names: EPE per pair")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--precision", choices=("fp32", "tf32", "fp16", "bf16"), default="fp32",
                   help="PyTorch models: sub-network precision (default fp32)")
    p.add_argument("--device", type=int, default=0, help="GPU / NPU id")
    args = p.parse_args(argv)
    if args.batch_size is not None and args.batch_size < 1:
        p.error(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.flow_radius is not None and not args.flow_radius > 0:
        p.error(f"--flow-radius must be positive, got {args.flow_radius}")
    return args


def main(argv=None):
    args = parse_args(argv)
    source = frames.open_source(args.input)
    predict.prepare_outputs(source, args.output, png=args.png, video=args.video, gt_dir=args.gt,
                            force=args.force)
    session = open_model(args.model, batch_size=args.batch_size, size=model_size(*source.size),
                         precision=args.precision, device=args.device)
    if args.batch_size is not None and session.batch_size != args.batch_size:
        raise Flownet2Error(f"{args.model}: the model runs batches of {session.batch_size}, "
                            f"not {args.batch_size}")
    (h, w), (mh, mw) = source.size, session.size
    pairs = "" if source.pair_count is None else f", {source.pair_count} pair(s)"
    print(f"input: {source.path} ({h}x{w}{pairs}); model: {args.model} ({mh}x{mw}, batch "
          f"{session.batch_size}, {args.size_mode}); weights: {session.label or 'unknown'}")
    result = predict.predict(session, source, output=args.output, size_mode=args.size_mode, png=args.png,
                             video=args.video, gt_dir=args.gt, radius=args.flow_radius, fps=args.fps)
    report(args, result, session.label)
    return 0


def report(args, result, label):
    if args.gt:
        # a stand-in EPE must never be read without its warning, whichever line a reader greps
        banner = [provenance.STAND_IN_BANNER] if provenance.is_stand_in(label) else []
        lines = [f"{row['name']}.flo  EPE = {row['epe']:.6f}" for row in result.rows]
        mean = sum(row["epe"] for row in result.rows) / len(result.rows)
        print("\n".join(banner + lines + [f"{len(result.rows)} pairs, mean EPE = {mean:.6f}"] + banner))
    wrote = [f"{result.pairs} .flo" + (" + .png" if args.png else "") + f" in {os.path.abspath(args.output)}"]
    if args.video:
        wrote.append(f"video {os.path.abspath(args.video)}")
    if result.radius is not None:
        wrote.append(f"colour wheel rim = {result.radius:.3g} px")
    print("wrote " + "; ".join(wrote))
    model_rate = result.pairs / (result.model_ms / 1000) if result.model_ms else float("nan")
    print(f"{result.pairs / result.seconds:.2f} pairs/s end to end, {model_rate:.2f} pairs/s in the model")


if __name__ == "__main__":
    run_main(main)

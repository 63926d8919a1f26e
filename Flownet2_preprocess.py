"""Sintel -> normalised .bin batches for the FlowNet2 model (the Ascend guide's layout + manifest.json).

    python Flownet2_preprocess.py --dataset MPI-Sintel/training --output prep_bs1 --batch_size 1
"""
import argparse
import sys

from flownet2.cli import run_main
from flownet2.data.batches import preprocess
from flownet2.data.sintel import PASSES, RESIZE_MODES


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="the Sintel training folder (clean/, final/, flow/)")
    p.add_argument("--output", required=True, help="folder for image1/, image2/, gt/, manifest.json")
    p.add_argument("--batch_size", type=int, default=1, help="pairs per batch file (default 1)")
    p.add_argument("--pass", dest="pass_name", choices=PASSES, default="clean", help="default clean")
    p.add_argument("--scenes", default="", help="comma-separated scenes (default: all)")
    p.add_argument("--resize-mode", choices=RESIZE_MODES, default="pad",
                   help="pad: zeros bottom/right to a multiple of 64 (Ascend guide, default); "
                        "resize: bilinear to it (official Caffe release)")
    p.add_argument("--strict", action="store_true", help="missing frames are an error, not a warning")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    scenes = [s for s in args.scenes.split(",") if s]
    manifest, written, kept = preprocess(
        args.dataset, args.output, args.batch_size, args.pass_name, scenes, args.resize_mode,
        args.strict, warn=lambda line: print(f"warning: {line}", file=sys.stderr))
    h, w = manifest["model_size"]
    print(f"{manifest['num_pairs']} {args.pass_name} pairs -> {manifest['num_batches']} batches of "
          f"{args.batch_size} at {h}x{w} ({args.resize_mode}) in {args.output}: "
          f"{written} files written, {kept} intact files kept")
    return 0


if __name__ == "__main__":
    run_main(main)

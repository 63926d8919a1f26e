"""A benchmark dataset -> normalised .bin batches for the FlowNet2 model (the Ascend guide's layout + manifest.json).

    python Flownet2_preprocess.py --dataset MPI-Sintel/training --output prep_bs1 --batch_size 1
    python Flownet2_preprocess.py --dataset data_scene_flow --output prep_kitti   # 384x1280, resized

Layouts recognised (or named with --dataset-type): MPI-Sintel, KITTI 2015, KITTI 2012, HD1K,
Middlebury (other-data + other-gt-flow), FlyingChairs (data/ + --split-file for its validation pairs).
"""
import argparse
import sys

from ..cli import command, parse
from ..data.batches import preprocess
from ..data.chairs import describe_split
from ..data.datasets import DEFAULT_MODE, DEFAULT_SIZE, TYPES
from ..data.images import SIZE_MODES
from ..data.sintel import PASSES
from ..sizes import parse_size


def _defaults():
    return "; ".join(f"{t} {'x'.join(map(str, DEFAULT_SIZE[t]))} {DEFAULT_MODE[t]}" for t in DEFAULT_SIZE)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="the dataset folder (e.g. Sintel's training/, KITTI's "
                                                    "data_scene_flow/, FlyingChairs_release/)")
    p.add_argument("--dataset-type", choices=TYPES, help="the layout (default: recognised from the folder)")
    p.add_argument("--output", required=True, help="folder for image1/, image2/, gt/, mask/, manifest.json")
    p.add_argument("--batch_size", type=int, default=1, help="pairs per batch file (default 1)")
    p.add_argument("--pass", dest="pass_name", choices=PASSES, default="clean", help="Sintel: default clean")
    p.add_argument("--scenes", default="", help="comma-separated scenes / sequences (default: all)")
    p.add_argument("--size", type=parse_size, metavar="HxW",
                   help=f"the model size, multiples of 64 (default: {_defaults()}; others: the next "
                        "multiples of 64 above the largest frame)")
    p.add_argument("--size-mode", "--resize-mode", dest="size_mode", choices=SIZE_MODES,
                   help="pad: zeros bottom/right (Ascend guide); resize: bilinear, flow rescaled back (official "
                        "Caffe release, mmflow, ptlflow) (default: resize for KITTI 2012/2015, pad for the others)")
    p.add_argument("--split-file", help="FlyingChairs: FlyingChairs_train_val.txt; its validation pairs (2) are used")
    p.add_argument("--strict", action="store_true", help="missing frames are an error, not a warning")
    return parse(p, argv)


def main(argv=None):
    args = parse_args(argv)
    scenes = [s for s in args.scenes.split(",") if s]
    manifest, written, kept = preprocess(
        args.dataset, args.output, args.batch_size, args.pass_name, scenes, args.size_mode,
        args.strict, warn=lambda line: print(f"warning: {line}", file=sys.stderr),
        dataset_type=args.dataset_type, size=args.size, split_file=args.split_file)
    h, w = manifest["model_size"]
    what = manifest["dataset_type"] + (f" {manifest['pass']}" if manifest["pass"] else "")
    print(f"{manifest['num_pairs']} {what} pairs -> {manifest['num_batches']} batches of "
          f"{args.batch_size} at {h}x{w} ({manifest['resize_mode']}) in {args.output}: "
          f"{written} files written, {kept} intact files kept")
    if manifest["split"]:
        print(f"split: {describe_split(manifest['split'])}")
    return 0


cli = command(main)  # The `flownet2-preprocess` command (and `python Flownet2_preprocess.py`).


if __name__ == "__main__":
    cli()

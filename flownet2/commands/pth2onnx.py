"""FlowNet2 checkpoint -> ONNX (inputs x1, x2; output flow), as in the Ascend guide. Any member of the
family (FlowNet2, FlowNet2-C, -S, -SD, -CS, -CSS): the checkpoint's keys say which one it is.

  python Flownet2_pth2onnx.py --batch_size 1 --input_path FlowNet2_checkpoint.pth.tar --out_path flownet2_bs1.onnx
  python Flownet2_pth2onnx.py --init random --seed 0 --out_path standin.onnx   # stand-in weights
  python Flownet2_pth2onnx.py --ascend-compat --input_path FlowNet2_checkpoint.pth.tar --out_path fn2_310p.onnx
  python Flownet2_pth2onnx.py --input_path FlowNet2-CSS_checkpoint.pth.tar --arch css --out_path css_bs1.onnx
  python Flownet2_pth2onnx.py --init random --arch sd --out_path sd_standin.onnx    # stand-in FlowNet2-SD
"""
import argparse
import sys

from ..cli import command, parse
from ..errors import Flownet2Error
from ..model.checkpoint import load_model, save_checkpoint
from ..model.export import describe, example_inputs, export_onnx
from ..model.family import MEMBERS, arch_key
from ..model.ops import CORRELATION_MODES
from ..model.provenance import STAND_IN_BANNER, is_stand_in, stand_in_seed


def _arch(text):
    try:
        return arch_key(text)
    except Flownet2Error as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input_path", help="official FlowNet2_checkpoint.pth.tar, or another member's checkpoint "
                                        "(or a compatible state dict)")
    p.add_argument("--arch", type=_arch, metavar="MEMBER",
                   help="the family member expected: " + ", ".join(f"{k} ({n})" for k, (n, _) in MEMBERS.items())
                        + "; a checkpoint of another member is refused (default: whichever its keys show); "
                          "with --init random, the member to make (default flownet2)")
    p.add_argument("--out_path", required=True, help="ONNX file to write (parent folders are created)")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--opset", type=int, default=11)
    p.add_argument("--correlation", choices=CORRELATION_MODES,
                   help="matmul: few nodes, fast on ONNX Runtime (default); slices: 441 windows, the Ascend "
                        "example's form")
    p.add_argument("--ascend-compat", action="store_true",
                   help="only ops the published Ascend 310P graph compiled (no MatMul): the slices correlation; "
                        "try this first for ATC")
    p.add_argument("--init", choices=("checkpoint", "random"), default="checkpoint",
                   help="random: seeded stand-in weights instead of --input_path (tests, demos)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stand-in weights")
    p.add_argument("--save-checkpoint", metavar="PATH",
                   help="also write the weights as an official-format checkpoint (legacy pickle)")
    p.add_argument("--unsafe-pickle", action="store_true",
                   help="allow full unpickling of the checkpoint: DANGEROUS, a crafted file can run code; "
                        "only for trusted files that safe loading rejects")
    args = parse(p, argv)
    if args.ascend_compat and args.correlation == "matmul":
        p.error("--ascend-compat uses the slices correlation; drop --correlation matmul")
    args.correlation = args.correlation or ("slices" if args.ascend_compat else "matmul")
    if args.init == "checkpoint" and not args.input_path:
        p.error("--input_path is required (or --init random for stand-in weights)")
    if args.init == "random" and args.input_path:
        p.error("--input_path and --init random exclude each other")
    return args


def main(argv=None):
    args = parse_args(argv)
    inputs = example_inputs(args.batch_size, args.height, args.width)  # checked before loading 620 MB of weights
    weights = args.seed if args.init == "random" else args.input_path
    model, label = load_model(weights, arch=args.arch, corr_mode=args.correlation, unsafe_pickle=args.unsafe_pickle)
    if is_stand_in(label):
        print(STAND_IN_BANNER, file=sys.stderr)
    if args.save_checkpoint:
        # stand-in weights, from a seed or from a stand-in file, stay stand-in in the new file
        save_checkpoint(args.save_checkpoint, model.state_dict(), stand_in_seed=stand_in_seed(label))
        print(f"wrote checkpoint {args.save_checkpoint}")
    proto = export_onnx(model, args.out_path, inputs, opset=args.opset, weights_label=label)
    print(describe(proto, args.out_path))
    print(f"weights: {label}")
    return 0


cli = command(main)  # The `flownet2-pth2onnx` command (and `python Flownet2_pth2onnx.py`).


if __name__ == "__main__":
    cli()

"""What scripts/atc.sh needs to know about an ONNX model around the ATC compile.

    python -m flownet2.onnx.atc prepare MODEL.onnx      # op check (tiers in flownet2/onnx/atc_ops.py), then
                                                   # prints "batch height width" of x1 (0 0 0: not static)
    python -m flownet2.onnx.atc sidecar MODEL.onnx OUT.om   # writes OUT.om.weights (an .om keeps no metadata)
"""
import argparse
import os
import sys

from ..cli import parse, run_main
from ..errors import Flownet2Error
from ..fileio import atomic_write
from ..model.provenance import KEY as WEIGHTS_KEY
from .atc_ops import OPS_FILE, check_ops, describe_unsupported


def load_graph(path):
    """The ONNX model without its external weight files (the graph and metadata are all that is read)."""
    import onnx

    if not os.path.isfile(path):
        raise Flownet2Error(f"{path}: model file not found")
    try:
        return onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf raises its own DecodeError; any failure means the same to the user
        raise Flownet2Error(f"{path}: cannot read the ONNX model ({type(e).__name__}: {e})") from None


def static_input_shape(model):
    """(batch, height, width) of input x1 (else the first input) when it is a static NCHW tensor, else None."""
    inputs = {i.name: i for i in model.graph.input}
    first = inputs.get("x1", model.graph.input[0] if model.graph.input else None)
    dims = [d.dim_value for d in first.type.tensor_type.shape.dim] if first is not None else []
    if len(dims) != 4 or min(dims) <= 0:
        return None
    return dims[0], dims[2], dims[3]


def op_check_messages(model, path, *, ops_file=OPS_FILE):
    """Warning lines for ops only on CANN's list; raises for ops on neither list."""
    found = check_ops(model, ops_file)
    if found.unknown:
        raise Flownet2Error(f"{path}: op type(s) on neither list of {ops_file}, not known to convert with ATC: "
                            + "; ".join(describe_unsupported(found.unknown)))
    if not found.unproven:
        return []
    return ([f"warning: {len(found.unproven)} op type(s) of {path} are on CANN's ONNX operator list but not in "
             "the graph of the published Ascend guide, so unproven on this network:"]
            + [f"  {line}" for line in describe_unsupported(found.unproven)])


def weights_metadata(model):
    """The model's weights label, copied as stored (None when there is none)."""
    for prop in model.metadata_props:
        if prop.key == WEIGHTS_KEY:
            return prop.value
    return None


def write_weights_sidecar(model, om_path):
    """Write `<om>.weights` with the label; remove a stale one when the model has none. Returns the label."""
    label = weights_metadata(model)
    sidecar = os.fspath(om_path) + ".weights"
    if label:
        with atomic_write(sidecar, "w") as f:
            f.write(label + "\n")
    elif os.path.exists(sidecar):
        os.remove(sidecar)
    return label


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m flownet2.onnx.atc", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="op check; print the static batch, height, width of x1")
    prep.add_argument("model")
    prep.add_argument("--skip-op-check", action="store_true", help="do not refuse ops on neither list")
    side = sub.add_parser("sidecar", help="write OM.weights from the ONNX weights label")
    side.add_argument("model")
    side.add_argument("om")
    args = parse(p, argv)
    model = load_graph(args.model)
    if args.command == "sidecar":
        label = write_weights_sidecar(model, args.om)
        print(f"weights: {label}" if label else f"weights: unknown (no {WEIGHTS_KEY} label in {args.model})")
        return 0
    if not args.skip_op_check:
        try:
            for line in op_check_messages(model, args.model):
                print(line, file=sys.stderr)
        except Flownet2Error as e:
            raise Flownet2Error(f"{e} (to run ATC anyway: scripts/atc.sh --skip-op-check)") from None
    shape = static_input_shape(model) or (0, 0, 0)
    print(*shape)
    return 0


if __name__ == "__main__":
    run_main(main)

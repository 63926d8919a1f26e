"""A tiny stand-in for the 650 MB FlowNet2 export, with the export's contract: inputs x1, x2 of
(batch, 3, H, W) float32 and an output flow of (batch, 2, H, W), flow = Conv3x3(x1 - x2).

The doc-command tests use it where a page's command exports FlowNet2: as a function, or as a script
taking Flownet2_pth2onnx.py's arguments (the Python wrapper of run_all.sh runs it in the export's place).
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_model(path, *, batch, height, width):
    shape = [batch, 3, height, width]
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((2, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Sub", ["x1", "x2"], ["d"]),
         helper.make_node("Conv", ["d", "w"], ["flow"], pads=[1, 1, 1, 1])],
        "tiny", [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x1", "x2")],
        [helper.make_tensor_value_info("flow", TensorProto.FLOAT, [batch, 2, height, width])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main(argv):
    """Flownet2_pth2onnx.py's size and output arguments (its defaults); every other one is ignored."""
    p = argparse.ArgumentParser()
    for flag, default in (("--batch_size", 1), ("--height", 448), ("--width", 1024)):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--out_path", required=True)
    args, _ = p.parse_known_args(argv)
    tiny_model(args.out_path, batch=args.batch_size, height=args.height, width=args.width)


if __name__ == "__main__":
    main(sys.argv[1:])

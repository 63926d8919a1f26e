"""Where ONNX Runtime spends a FlowNet2 pair, and how close its convolutions run to the CPU's peak.

  python benchmarks/profile_ort.py                       # 448x1024, batch 1, default (matmul) export
  python benchmarks/profile_ort.py --correlation slices --height 128 --width 192
  python benchmarks/profile_ort.py --warp-before main     # the warp alone, this tree vs main, on ORT

Prints ORT's per-op-type kernel time (second of two profiled runs), the convolution FLOPs counted from
the graph's shapes and the GFLOP/s they ran at, then the correlation alone in both forms, on ORT and in
PyTorch, at FlowNetC's correlation size (1/8 of the input, 256 channels). Times: medians.
"""
import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_cpu import _inputs, _time, export  # noqa: E402  (this folder is on sys.path when run)

from flownet2.cli import parse  # noqa: E402
from flownet2.model.ops import CORRELATION_MODES, correlation, warp  # noqa: E402


def conv_flops(model):
    """2 x multiply-adds of every Conv / ConvTranspose, from shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":  # weight (Cout, Cin/g, kh, kw), per output pixel
            out = shapes[node.output[0]]
            total += 2 * np.prod(weights[node.input[1]]) * out[0] * out[2] * out[3]
        elif node.op_type == "ConvTranspose":  # weight (Cin, Cout/g, kh, kw), per input pixel
            inp = shapes[node.input[0]]
            total += 2 * np.prod(weights[node.input[1]]) * inp[0] * inp[2] * inp[3]
    return float(total)


def profile(path, feeds):
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(os.path.dirname(path), "ort_profile")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    for _ in range(2):  # the first run plans memory; keep the second
        session.run(None, feeds)
    with open(session.end_profiling()) as f:
        events = [e for e in json.load(f) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_op = collections.Counter()
    for e in events[len(events) // 2:]:
        by_op[e["args"]["op_name"]] += e["dur"] / 1e6
    return by_op


def correlation_alone(h, w, runs=3):
    """Seconds per call of the correlation at FlowNetC's size, per form, on ORT and PyTorch."""
    f1, f2 = torch.randn(1, 256, h // 8, w // 8), torch.randn(1, 256, h // 8, w // 8)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for mode in CORRELATION_MODES:
            module = _Corr(mode)
            path = os.path.join(folder, f"corr_{mode}.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on constant folding
                torch.onnx.export(module, (f1, f2), path, dynamo=False, opset_version=11, input_names=["a", "b"])
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            feeds = {"a": f1.numpy(), "b": f2.numpy()}
            with torch.no_grad():
                rows.append((mode, _time(lambda: session.run(None, feeds), runs),
                             _time(lambda: module(f1, f2), runs)))
    return rows


def warp_alone(h, w, before, runs=15):
    """Seconds per call of one warp of a 3-channel frame (flows of tens of px) on ORT, this tree's
    warp and the one at git revision `before`, timed alternately so both see the same machine load."""
    import importlib

    from revision import model_class

    old_warp = importlib.import_module(model_class(before).__module__.rsplit(".", 1)[0] + ".ops").warp
    img, flow = torch.randn(1, 3, h, w), torch.randn(1, 2, h, w) * 20
    feeds = {"a": img.numpy(), "b": flow.numpy()}
    sessions = []
    with tempfile.TemporaryDirectory() as folder:
        for k, fn in enumerate((warp, old_warp)):
            path = os.path.join(folder, f"warp{k}.onnx")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(_Fn(fn), (img, flow), path, dynamo=False, opset_version=11, input_names=["a", "b"])
            sessions.append(ort.InferenceSession(path, providers=["CPUExecutionProvider"]))
    times = [[], []]
    for s in sessions:
        s.run(None, feeds)
    for _ in range(runs):
        for k, s in enumerate(sessions):
            t = time.perf_counter()
            s.run(None, feeds)
            times[k].append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


class _Fn(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, a, b):
        return self.fn(a, b)


class _Corr(torch.nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.mode = mode

    def forward(self, a, b):
        return correlation(a, b, self.mode)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--correlation", choices=CORRELATION_MODES, default="matmul")
    p.add_argument("--warp-before", metavar="REV",
                   help="only time the warp alone: this tree's against git revision REV's (e.g. main)")
    args = parse(p, None)
    if args.warp_before:
        new, old = warp_alone(args.height, args.width, args.warp_before)
        print(f"warp alone, ONNX Runtime, 1x3x{args.height}x{args.width}, median of 15 alternating runs: "
              f"this tree {1000 * new:.1f} ms, {args.warp_before} {1000 * old:.1f} ms, ratio {new / old:.2f}")
        return
    args.batch = 1
    x1, x2 = _inputs(args)
    feeds = {"x1": x1, "x2": x2}
    with tempfile.TemporaryDirectory() as folder:
        path, _ = export(args, args.correlation, folder)
        flops = conv_flops(onnx.load(path))
        by_op = profile(path, feeds)
    total = sum(by_op.values())
    conv_s = by_op["Conv"] + by_op["FusedConv"] + by_op["ConvTranspose"]
    print(f"ONNX Runtime, {args.height}x{args.width}, batch 1, {args.correlation} correlation, "
          f"{os.cpu_count()} cores: {total:.3f} s of kernel time")
    print("| op | s | share |\n|---|---|---|")
    for op, sec in by_op.most_common(10):
        print(f"| {op} | {sec:.3f} | {100 * sec / total:.1f}% |")
    print(f"\nConv + ConvTranspose: {flops / 1e9:.0f} GFLOP in {conv_s:.3f} s = {flops / conv_s / 1e9:.0f} GFLOP/s "
          f"({100 * conv_s / total:.0f}% of the kernel time)")
    print(f"\ncorrelation alone at {args.height // 8}x{args.width // 8}x256 (median of 3):")
    print("| form | ONNX Runtime s | PyTorch s |\n|---|---|---|")
    for mode, ort_s, torch_s in correlation_alone(args.height, args.width):
        print(f"| {mode} | {ort_s:.3f} | {torch_s:.3f} |")


if __name__ == "__main__":
    main()

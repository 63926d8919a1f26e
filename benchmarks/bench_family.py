"""The FlowNet2 family side by side: what each member costs and how far fp16 moves its flow.

  python benchmarks/bench_family.py                        # every member, 448x1024, the sintel-mini pairs
  python benchmarks/bench_family.py --members c s sd --pairs 2

Each member with stand-in weights (seed 0) is exported to ONNX at --height x --width, batch 1 (the
default matmul correlation). Per member: parameters, GFLOP per pair counted from the exported graph
(Conv, ConvTranspose and MatMul multiply-adds x 2, from ONNX shape inference), node count, ONNX Runtime
CPU seconds per pair (median over the real pairs; the members are timed in turn on each pair, so a
noisy machine slows all of them alike) and the ratio to FlowNet2's time of the same run, then the
fp16-emulated drift: the mean end-point distance between the graph run with every tensor rounded to
fp16 (flownet2.onnx.precision.emulate_onnx) and its own fp32 flow, over the frames' real rows (the
padding cut off). The last column scales the Ascend guide's 14.36 pairs/s for FlowNet2 on a 310P3 by
GFLOP: an estimate, not a measurement. Inputs are named by content (sha256 of every frame file).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))

from profile_ort import conv_flops  # noqa: E402  (this folder is on sys.path when run)
from sintel_mini import MINI  # noqa: E402

from flownet2.cli import parse  # noqa: E402
from flownet2.data.images import InputPadder, normalise_pair, read_rgb  # noqa: E402
from flownet2.data.sintel import find_pairs  # noqa: E402
from flownet2.fileio import file_digest  # noqa: E402
from flownet2.model import family  # noqa: E402
from flownet2.model.checkpoint import load_model  # noqa: E402
from flownet2.model.export import example_inputs, export_onnx, graph_summary  # noqa: E402
from flownet2.onnx.precision import emulate_onnx  # noqa: E402

GUIDE_PAIRS_PER_S = 14.36  # FlowNet2 on an Ascend 310P3, batch 1, the Ascend guide's published figure
SEED = 0


def matmul_flops(model):
    """2 x multiply-adds of every MatMul (the default correlation), from shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    total = 0
    for node in model.graph.node:
        if node.op_type == "MatMul":
            a, out = shapes[node.input[0]], shapes[node.output[0]]
            total += 2 * int(np.prod(out)) * a[-1]
    return float(total)


def load_pairs(limit, size):
    """[(x1, x2, real rows, [(path, "sha256:<12 hex>"), ...])] for the sintel-mini clean pairs."""
    if MINI is None:
        sys.exit("sintel-mini not found (set FLOWNET2_SINTEL_MINI)")
    pairs, _ = find_pairs(MINI, "clean")
    out = []
    for pair in pairs[:limit]:
        # a size below the frame's (quick runs) crops it; the real size pads it, as preprocessing does
        img1, img2 = (read_rgb(path)[:size[0], :size[1]] for path in (pair.image1, pair.image2))
        padder = InputPadder(img1.shape[:2], size)
        x1, x2 = normalise_pair(img1, img2)
        names = [(p, file_digest(p)[:19]) for p in (pair.image1, pair.image2)]  # sha256: and 12 hex digits
        out.append((padder.pad(x1)[None], padder.pad(x2)[None], img1.shape[0], names))
    return out


def cpu_session(source, *, optimise=True):
    options = ort.SessionOptions()
    if not optimise:  # the emulated graph: fusions would skip the rounding between two nodes
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def export_member(arch, folder, size):
    model, label = load_model(f"stand-in:{arch}:{SEED}")
    params = sum(p.numel() for p in model.parameters())
    path = os.path.join(folder, f"{arch}.onnx")
    proto = export_onnx(model, path, example_inputs(1, *size), weights_label=label)
    del model
    gflop = (conv_flops(proto) + matmul_flops(proto)) / 1e9
    return {"arch": arch, "name": family.member_name(arch), "label": label, "path": path, "params": params,
            "gflop": gflop, "nodes": graph_summary(proto)[0]}


def drift(flow, ref, rows):
    return float(np.linalg.norm(flow[:, :, :rows] - ref[:, :, :rows], axis=1).mean())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--members", nargs="+", default=list(family.MEMBERS), type=family.arch_key,
                   help="arch keys (flownet2 is always included: the ratios are to it)")
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--pairs", type=int, default=5, help="real sintel-mini pairs (timing and drift)")
    p.add_argument("--no-drift", action="store_true", help="skip the fp16-emulated runs")
    args = parse(p, None)
    members = ["flownet2"] + [a for a in args.members if a != "flownet2"]
    size = (args.height, args.width)
    pairs = load_pairs(args.pairs, size)
    for _, _, _, names in pairs:
        print("pair: " + "  ".join(f"{os.path.relpath(path, MINI)} {digest}" for path, digest in names))
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for arch in members:
            t0 = time.perf_counter()
            rows.append(export_member(arch, folder, size))
            print(f"exported {rows[-1]['name']} in {time.perf_counter() - t0:.0f} s: {rows[-1]['label']}", flush=True)
        sessions = [cpu_session(r["path"]) for r in rows]
        times = {r["arch"]: [] for r in rows}
        flows = {r["arch"]: [] for r in rows}
        for x1, x2, _, _ in pairs:  # each pair through every member in turn
            for r, session in zip(rows, sessions):
                t0 = time.perf_counter()
                flows[r["arch"]].append(session.run(None, {"x1": x1, "x2": x2})[0])
                times[r["arch"]].append(time.perf_counter() - t0)
        del sessions
        for r in rows:
            r["s"] = statistics.median(times[r["arch"]])
            r["drift"] = float("nan")
            if not args.no_drift:
                emulated = cpu_session(emulate_onnx(onnx.load(r["path"]), "fp16").SerializeToString(), optimise=False)
                r["drift"] = statistics.mean(
                    drift(emulated.run(None, {"x1": x1, "x2": x2})[0], ref, real)
                    for (x1, x2, real, _), ref in zip(pairs, flows[r["arch"]]))
                print(f"fp16-emulated {r['name']}: done", flush=True)
    base = rows[0]
    print(f"\n{args.height}x{args.width}, batch 1, stand-in weights seed {SEED}, ONNX Runtime {ort.__version__} CPU, "
          f"{len(pairs)} real sintel-mini pairs")
    print("| member | parameters | GFLOP/pair | ORT CPU s/pair | vs FlowNet2 | nodes | fp16 drift (px) "
          "| 310P3 pairs/s (estimate) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        estimate = GUIDE_PAIRS_PER_S * base["gflop"] / r["gflop"]
        print(f"| {r['name']} | {r['params'] / 1e6:.1f} M | {r['gflop']:.0f} | {r['s']:.2f} | "
              f"{r['s'] / base['s']:.2f} | {r['nodes']} | {r['drift']:.4f} | ~{estimate:.0f} |")
    print(f"\n310P3 column: the guide's {GUIDE_PAIRS_PER_S} pairs/s for FlowNet2 x (FlowNet2's GFLOP / the member's): "
          "an estimate from arithmetic alone, not a measurement")
    return 0


if __name__ == "__main__":
    sys.exit(main())

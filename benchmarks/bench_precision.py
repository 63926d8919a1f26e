"""How far fp16 and bf16 move FlowNet2's flow: emulated on ONNX Runtime, before and after a change.

  python benchmarks/bench_precision.py                     # alley_1 0001->0002 clean, 448x1024, seed 0
  python benchmarks/bench_precision.py --before main --flow-px 800

For the model at git revision --before and the model of this working tree, both with stand-in
weights (seed 0), exported to ONNX at 448x1024 and run on one real Sintel pair (436x1024 padded):
ONNX Runtime fp32, then the same graph with every weight and tensor rounded to fp16 / bf16
(flownet2.onnx.precision.emulate_onnx). Drift = mean end-point distance to that model's own fp32 flow on
the 436 real rows; "finite" = the share of flow values that are neither NaN nor inf; "fails" = ONNX
Runtime refused to run the emulated graph (a gather index pushed out of range by the rounding). The second set of
rows scales the last FlowNetS's flow head so that its flow reaches --flow-px pixels, the case where
squares of flows overflow fp16. Also printed: fp32 after vs before (PyTorch; same weights) and each against the same model in
float64, and with
--torch-bf16 the mixed-precision PyTorch model in bf16 on the CPU (drift, and pairs/s side by side
with ONNX Runtime fp32 where the CPU has bf16 units).
"""
import argparse
import hashlib
import os
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from revision import model_class  # noqa: E402

from flownet2.cli import parse  # noqa: E402
from flownet2.data.images import InputPadder, normalise_pair, read_rgb  # noqa: E402
from flownet2.model.checkpoint import stand_in_state_dict  # noqa: E402
from flownet2.model.export import example_inputs, export_onnx  # noqa: E402
from flownet2.model.networks import DIV_FLOW, FlowNet2  # noqa: E402
from flownet2.model.provenance import stand_in_label  # noqa: E402
from flownet2.onnx.precision import emulate_onnx, sensitive_nodes  # noqa: E402
from flownet2.runtime.cpu import cpu_has_bf16  # noqa: E402

SEED = 0
HEAD = ("flownets_2", "predict_flow2")  # the last FlowNetS's flow head


def load_pair(dataset, scene, frame, size):
    folder = os.path.join(dataset, "training", "clean", scene)
    paths = [os.path.join(folder, f"frame_{frame + k:04d}.png") for k in (0, 1)]
    img1, img2 = (read_rgb(p) for p in paths)
    padder = InputPadder(img1.shape[:2], size)
    x1, x2 = normalise_pair(img1, img2)
    digests = [hashlib.sha256(open(p, "rb").read()).hexdigest()[:12] for p in paths]
    return padder.pad(x1)[None], padder.pad(x2)[None], img1.shape[0], list(zip(paths, digests))


def head_scale(x1, x2, target_px):
    """Factor for the last FlowNetS's flow head that brings its flow (in px) to `target_px`."""
    model = FlowNet2().eval()
    model.load_state_dict(stand_in_state_dict(model, SEED))
    seen = []
    getattr(model, HEAD[0]).register_forward_hook(lambda m, i, o: seen.append(o.abs().max().item() * DIV_FLOW))
    with torch.no_grad():
        model(torch.from_numpy(x1), torch.from_numpy(x2))
    return target_px / seen[0]


def build(cls, scale):
    model = cls().eval()
    state = stand_in_state_dict(model, SEED)
    for key in (f"{HEAD[0]}.{HEAD[1]}.weight", f"{HEAD[0]}.{HEAD[1]}.bias"):
        if key in state:
            state[key] = state[key] * scale
    model.load_state_dict(state)
    return model


def ort_run(proto, feeds, optimise=True):
    options = ort.SessionOptions()
    if not optimise:  # an emulated graph: no fusion may skip a rounding
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(["flow"], feeds)[0]


def drift(flow, ref, rows):
    """(mean end-point distance over the real rows, share of finite values)."""
    a, b = flow[..., :rows, :].astype(np.float64), ref[..., :rows, :].astype(np.float64)
    return float(np.sqrt(((a - b) ** 2).sum(axis=1)).mean()), float(np.isfinite(a).mean())


def measure(model, x1, x2, rows, folder, sensitive=False):
    path = os.path.join(folder, "model.onnx")
    proto = export_onnx(model, path, example_inputs(*x1.shape[:1], *x1.shape[2:]))
    os.remove(path)
    feeds = {"x1": x1, "x2": x2}
    ref = ort_run(proto, feeds)
    row = {"max_px": float(np.abs(ref[..., :rows, :]).max()), "nodes": len(proto.graph.node)}
    if sensitive:
        row["sensitive"] = sensitive_nodes(proto, feeds, "fp16", top=5, chunk=32)
    for kind in ("fp16", "bf16"):
        try:
            row[kind] = drift(ort_run(emulate_onnx(proto, kind), feeds, optimise=False), ref, rows)
        except ort.capi.onnxruntime_pybind11_state.Fail as e:  # e.g. a gather index pushed out of range
            row[kind] = "fails: " + str(e).split("Status Message: ")[-1].split(": ", 1)[-1].strip()[:90]
    return row, ref


def torch_flow(model, x1, x2):
    with torch.no_grad():
        return model(torch.from_numpy(x1), torch.from_numpy(x2)).numpy()


def torch_bf16(x1, x2, rows, ref, runs):
    """Mixed-precision PyTorch (bf16 sub-networks, fp32 glue) on the CPU vs ONNX Runtime fp32 `ref`."""
    try:
        from flownet2.runtime.torch_backend import MixedFlowNet2
    except ImportError:
        from flownet2.gpu import MixedFlowNet2
    model = MixedFlowNet2(build(FlowNet2, 1.0), torch.bfloat16).eval()
    start = time.perf_counter()
    flow = torch_flow(model, x1, x2).astype(np.float32)
    seconds = time.perf_counter() - start
    for _ in range(runs - 1):
        start = time.perf_counter()
        torch_flow(model, x1, x2)
        seconds = min(seconds, time.perf_counter() - start)
    return drift(flow, ref, rows), seconds


def ort_seconds(x1, x2, runs):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        export_onnx(build(FlowNet2, 1.0), path, example_inputs(1, *x1.shape[2:]))
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    session.run(None, {"x1": x1, "x2": x2})
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"x1": x1, "x2": x2})
        best = min(best, time.perf_counter() - start)
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="/work/shared/data/sintel-mini", help="a Sintel folder (training/clean/...)")
    p.add_argument("--scene", default="alley_1")
    p.add_argument("--frame", type=int, default=1, help="first frame number of the pair")
    p.add_argument("--height", type=int, default=448)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--before", default="main", help="git revision of the model to compare with")
    p.add_argument("--flow-px", type=float, default=800.0, help="flow the scaled head should reach")
    p.add_argument("--torch-bf16", action="store_true",
                   help="also run the mixed-precision PyTorch model in bf16 (very slow without bf16 units)")
    p.add_argument("--sensitive", action="store_true",
                   help="also list the fp16-sensitive nodes of this tree's model with the scaled head (slow)")
    p.add_argument("--runs", type=int, default=2, help="timed runs for the bf16 speed comparison")
    args = parse(p, None)
    from tqdm import tqdm

    x1, x2, rows, sources = load_pair(args.dataset, args.scene, args.frame, (args.height, args.width))
    scale = head_scale(x1, x2, args.flow_px)
    before = model_class(args.before)
    results, parity = [], []
    configs = [(f"before ({args.before})", before), ("after (this tree)", FlowNet2)]
    with tempfile.TemporaryDirectory() as folder:
        for flows, factor in tqdm([("ordinary", 1.0), (f"~{args.flow_px:.0f} px", scale)], desc="flow sets"):
            fp32 = {}
            for name, cls in configs:
                model = build(cls, factor)
                row, ref = measure(model, x1, x2, rows, folder,
                                   sensitive=args.sensitive and factor != 1.0 and cls is FlowNet2)
                results.append((name, flows, row))
                fp32[name] = torch_flow(model, x1, x2)
                if name.startswith("after") and factor == 1.0:
                    ort_ref = ref
            a, b = (fp32[name] for name, _ in configs)
            truth = torch_flow(build(FlowNet2, factor).double(), x1.astype(np.float64), x2.astype(np.float64))
            parity.append((flows, float(np.abs(a - b).max()), float(np.abs(a - truth).max()),
                           float(np.abs(b - truth).max())))

    print(f"\nPair: {', '.join(f'{p} (sha256 {d}...)' for p, d in sources)}; padded to {args.height}x{args.width}; "
          f"weights {stand_in_label(SEED)}; '~{args.flow_px:.0f} px': {HEAD[0]}.{HEAD[1]} x {scale:.2f}")
    print("\n| model | flows | ONNX nodes | max flow fp32 px | fp16 drift px | fp16 finite | bf16 drift px | bf16 finite |")
    print("|---|---|---|---|---|---|---|---|")
    for name, flows, r in results:
        cells = [f"{r[k][0]:.4f} | {100 * r[k][1]:.1f}%" if isinstance(r[k], tuple) else f"{r[k]} | -"
                 for k in ("fp16", "bf16")]
        print(f"| {name} | {flows} | {r['nodes']} | {r['max_px']:.1f} | {cells[0]} | {cells[1]} |")
    print("\nfp32, PyTorch, same weights, max |diff| px (float64 = this tree's model in float64):")
    print("| flows | before vs after | before vs float64 | after vs float64 |\n|---|---|---|---|")
    for flows, d, before64, after64 in parity:
        print(f"| {flows} | {d:.2e} | {before64:.2e} | {after64:.2e} |")

    for name, flows, r in results:
        if "sensitive" in r:
            print(f"\nfp16-sensitive nodes, {name}, {flows} flows (creates non-finite / share broken / "
                  "max relative drift):")
            for node, op, creates, share, rel in r["sensitive"]:
                print(f"  {node} ({op}): {'yes' if creates else 'no'} / {100 * share:.1f}% / {rel:.2e}")

    bf16_units = cpu_has_bf16()
    print(f"\nCPU: {os.cpu_count()} cores, bf16 units (AVX512_BF16 / AMX): {'yes' if bf16_units else 'no'}")
    if not args.torch_bf16:
        print("PyTorch bf16 (mixed precision) vs ONNX Runtime fp32: skipped (--torch-bf16 to run it)")
        return
    (d, fin), torch_s = torch_bf16(x1, x2, rows, ort_ref, args.runs if bf16_units else 1)
    print(f"PyTorch bf16 mixed precision vs ONNX Runtime fp32: drift {d:.4f} px, finite {100 * fin:.1f}%")
    if not bf16_units:
        print(f"speed not compared: this CPU has no bf16 units, bf16 runs emulated ({torch_s:.1f} s/pair)")
        return
    ort_s = ort_seconds(x1, x2, args.runs)
    print(f"| engine | s/pair | pairs/s |\n|---|---|---|\n| ONNX Runtime fp32 | {ort_s:.3f} | {1 / ort_s:.2f} |\n"
          f"| PyTorch bf16 mixed | {torch_s:.3f} | {1 / torch_s:.2f} | ({ort_s / torch_s:.2f}x)")


if __name__ == "__main__":
    main()

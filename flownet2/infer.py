"""ais_bench-compatible offline inference for machines without an Ascend card.

  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --input prep/image1,prep/image2 \
      --output result --output_dirname bs1 --outfmt BIN --batchsize 1
  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --loop 20      # pure performance mode
  python -m flownet2.infer --model flownet2_bs1_sim_fix.onnx --emulate fp16 ...   # fp16 storage, emulated
  python -m flownet2.infer --model FlowNet2_checkpoint.pth.tar --model_size 448,1024 ...   # PyTorch

Same flags, files and summary as Ascend's `python -m ais_bench` (Ascend/tools): the files of each
input folder are natural-sorted and matched by position; input `image1/7.bin` gives `OUT/NAME/7_0.bin`;
`OUT/NAME_summary.json` holds filesinfo, args, NPU_compute_time, H2D_latency, D2H_latency,
throughput, npu_compute_time_list, pid (plus the weights label and the sha256 of every input file).
An .onnx runs on ONNX Runtime (CUDA provider when present, else CPU); a checkpoint or stand-in:SEED on
PyTorch (CUDA when present, else CPU). An Ascend `.om` is handed to `python -m ais_bench` with exactly
the arguments given here.
"""
import argparse
import sys
import time

from .cli import add_precision, at_least_one, command, parse
from .errors import Flownet2Error
from .runtime.ais_bench_handover import hand_over_to_ais_bench, typed_model
from .runtime.engines import ENGINES, engine_for
from .runtime.inputs import device_share, files_per_input
from .runtime.runner import open_runner_session, output_folder, run_session
from .runtime.sessions import DEFAULT_SIZE
from .sizes import parse_size

# ais_bench flags that control an NPU, a compiled .om or Ascend's tools: nothing to do on this runner.
ASCEND_ONLY = {
    "--acl_json_path": "an ACL configuration for the NPU's profiling or dump",
    "--aipp_config": "an AIPP (NPU image pre-processing) configuration",
    "--auto_set_dymdims_mode": "dynamic dims of an .om",
    "--auto_set_dymshape_mode": "dynamic shapes of an .om",
    "--dump": "the NPU's tensor dump",
    "--dump_npy": "the NPU's tensor dump",
    "--dymBatch": "dynamic batch of an .om; an exported FlowNet2 has a static batch",
    "--dymDims": "dynamic dims of an .om",
    "--dymHW": "dynamic image size of an .om; an exported FlowNet2 has a static size",
    "--dymShape": "dynamic shapes of an .om",
    "--dymShape_range": "dynamic shapes of an .om",
    "--energy_consumption": "the NPU's power reading",
    "--npu_id": "the NPU's power reading",
    "--outputSize": "output buffer sizes of a dynamic-shape .om",
    "--perf": "msame-style NPU performance mode",
    "--pipeline": "ais_bench's multi-threaded NPU pipeline",
    "--profiler": "the NPU's profiler (msprof)",
    "--profiler_rename": "the NPU's profiler (msprof)",
    "--thread": "ais_bench's multi-threaded NPU pipeline",
    "--threads": "ais_bench's multi-threaded NPU pipeline",
}


def parse_args(argv):
    refuse_ascend_only(argv)
    p = argparse.ArgumentParser(prog="python -m flownet2.infer", description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", "-m", required=True,
                   help=".onnx (ONNX Runtime), checkpoint (any FlowNet2 member), stand-in:SEED or stand-in:MEMBER:SEED (PyTorch), .om (handed to ais_bench)")
    p.add_argument("--input", "-i", help="comma-separated folders (one per model input) or files")
    p.add_argument("--output", "-o", help="folder for results; without it nothing is saved")
    p.add_argument("--output_dirname", help="subfolder of --output (default: a date_time folder)")
    p.add_argument("--outfmt", default="BIN", choices=("BIN", "NPY", "TXT"))
    p.add_argument("--loop", "-l", type=at_least_one, default=1, help="runs per batch (all timed)")
    p.add_argument("--warmup_count", type=_non_negative, default=1, help="untimed runs of the first batch")
    p.add_argument("--batchsize", "--batch_size", type=at_least_one,
                   help="samples per run in the throughput figure (default: the model's batch dimension)")
    p.add_argument("--device", "-d", type=_devices, default=[0],
                   help="GPU id, or a list such as 0,1: one run per device on its share of the files, "
                        "results in NAME/deviceN")
    p.add_argument("--pure_data_type", default="zero", choices=("zero", "random"),
                   help="made-up input of performance mode")
    p.add_argument("--output_batchsize_axis", type=_non_negative, default=0,
                   help="axis along which an output is split into the run's files")
    p.add_argument("--debug", type=_bool, default=False, help="print the model's inputs and the backend")
    p.add_argument("--display_all_summary", type=_bool, default=False, help="also print H2D and D2H latencies")
    p.add_argument("--run_mode", type=_run_mode, default="array", help="array only: inputs are numpy arrays")
    # Not in ais_bench: this runner's own backends.
    p.add_argument("--backend", choices=[e.name for e in ENGINES.values() if not e.handed_over],
                   help="default: from the model (.onnx: onnxruntime; checkpoint or stand-in:SEED: torch); "
                        "openvino runs either on the CPU")
    add_precision(p, help="openvino: fp32 (default) or bf16 (a CPU with AVX512_BF16 or AMX); "
                          "torch: sub-network precision, glue always fp32 (default fp16 on CUDA, fp32 on a CPU; "
                          "bf16 on a CPU with AVX512_BF16 or AMX)")
    p.add_argument("--torch_mode", choices=("eager", "graphs", "compile"),
                   help="torch: eager, one CUDA graph (default on CUDA), or torch.compile (cached)")
    p.add_argument("--model_size", type=_size, default=DEFAULT_SIZE,
                   help="torch: H,W (or HxW) of the inputs (default 448,1024)")
    p.add_argument("--emulate", choices=("fp16", "bf16"),
                   help=".onnx: round every weight and every tensor a node writes to fp16 or bf16 "
                        "(arithmetic in fp32): roughly what a reduced-precision device computes")
    args = parse(p, argv)
    if args.output_dirname is not None and args.output is None:
        p.error("--output_dirname needs --output")
    return args


def refuse_ascend_only(argv):
    """One line per ais_bench flag that means nothing on this runner (an NPU's or an .om's controls)."""
    lines = []
    for flag, what in ASCEND_ONLY.items():
        if any(a == flag or a.startswith(flag + "=") for a in argv):
            lines.append(f"{flag} controls {what}; it has no meaning on ONNX Runtime or PyTorch")
    if lines:
        raise Flownet2Error("\nerror: ".join(lines))


def _non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative integer")
    return value


def _devices(text):
    """ais_bench's --device: one id, or a comma-separated list (0..255)."""
    ids = [_non_negative(v) for v in text.split(",")]
    if max(ids) > 255 or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text}: device ids are distinct integers in [0, 255]")
    return ids


def _bool(text):
    """ais_bench's booleans: true/false, yes/no, t/f, y/n, 1/0 (any case)."""
    value = {"true": True, "yes": True, "t": True, "y": True, "1": True,
             "false": False, "no": False, "f": False, "n": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"{text} is not a boolean (true/false, 1/0)")
    return value


def _run_mode(text):
    if text != "array":
        raise argparse.ArgumentTypeError(f"{text}: ais_bench's {text} mode stages tensors on an NPU; this runner "
                                         "feeds numpy arrays (array)")
    return text


def _size(text):
    try:
        return parse_size(text)
    except Flownet2Error as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    model = typed_model(argv)
    if model is not None and engine_for(model).handed_over:
        return hand_over_to_ais_bench(argv, model=model)
    args = parse_args(argv)
    if args.torch_mode == "compile":
        from .runtime.torch_backend import use_inductor_cache

        use_inductor_cache()  # compiled kernels kept between runs
    several = len(args.device) > 1
    name = args.output_dirname if args.output_dirname is not None else time.strftime("%Y_%m_%d-%H_%M_%S")
    throughputs = []
    for index, device in enumerate(args.device):
        session = open_runner_session(args.model, backend=args.backend, device=device, precision=args.precision,
                                      torch_mode=args.torch_mode, size=args.model_size, batchsize=args.batchsize,
                                      emulate=args.emulate)
        if args.debug:
            print(f"[DEBUG] {args.model} on {type(session).__name__}, device {device}: inputs {session.inputs}, "
                  f"weights {session.label}", file=sys.stderr)
        per_input = files_per_input(args.input, len(session.inputs)) if args.input else None
        if per_input is not None and several:
            per_input = device_share(per_input, index, len(args.device))
        folder = output_folder(args.output, name, device=device if several else None)
        summary = run_session(session, per_input=per_input, folder=folder, argv=[sys.argv[0]] + argv,
                              batchsize=args.batchsize, loop=args.loop, warmup_count=args.warmup_count,
                              outfmt=args.outfmt, pure_data_type=args.pure_data_type,
                              output_batchsize_axis=args.output_batchsize_axis,
                              display_all=args.display_all_summary)
        throughputs.append(summary["throughput"])
    if several:
        for index, (device, value) in enumerate(zip(args.device, throughputs)):
            print(f"[INFO] i:{index} device_{device} throughput:{value}")
        print(f"[INFO] summary throughput:{sum(throughputs)} (devices run one after another)")
    return 0


cli = command(main)  # The `flownet2-infer` command (and `python -m flownet2.infer`).


if __name__ == "__main__":
    cli()

"""FlowNet2 predictions ({k}_0.bin from ais_bench or our runner) -> EPE against Sintel's ground truth.

    python Flownet2_postprocess.py --gt_path prep_bs1/gt --output_path out/bs1 --batch_size 1
"""
import argparse
import os
import sys

from flownet2 import evaluate, provenance
from flownet2.cli import run_main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gt_path", required=True, help="the gt/ folder written by Flownet2_preprocess.py")
    p.add_argument("--output_path", required=True, help="the folder holding the {k}_0.bin predictions")
    p.add_argument("--batch_size", type=int, required=True, help="must match the manifest")
    p.add_argument("--manifest", help="default: <gt_path>/../manifest.json")
    p.add_argument("--model", help="the .onnx/.om that made the predictions (records the weights)")
    p.add_argument("--report", help="folder for metrics.json and per_pair.csv (default: output_path)")
    p.add_argument("--vis", help="write frame | predicted | ground truth | error PNGs here")
    p.add_argument("--vis-count", type=int, help="only the first N pairs get a picture")
    p.add_argument("--save-flo", help="write predictions as <dir>/<pass>/<scene>/frame_NNNN.flo")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    manifest = evaluate.open_manifest(args.gt_path, args.manifest, args.batch_size)
    weights, model = evaluate.run_weights(args.output_path, args.model)
    rows, warnings = evaluate.evaluate(manifest, args.gt_path, args.output_path,
                                       args.vis, args.vis_count, args.save_flo)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    report = evaluate.build_report(manifest, rows, weights, model,
                                   predictions=os.path.abspath(args.output_path))
    epe = report["overall"]["epe"]
    epe_line = f"{len(rows)} samples, Average EPE = {'nan' if epe is None else f'{epe:.6f}'}"
    # a stand-in EPE must never be read without its warning, whichever line a reader greps
    banner = [provenance.STAND_IN_BANNER] if provenance.is_stand_in(weights) else []
    print("\n".join(banner + [epe_line] + banner))
    print(f"weights: {weights}" if weights else "weights: unknown (pass --model to record them)")
    print(evaluate.format_table(report))
    json_path, csv_path = evaluate.write_report(args.report or args.output_path, report, rows)
    print(f"wrote {json_path} and {csv_path}")
    return 0


if __name__ == "__main__":
    run_main(main)

"""FlowNet2 predictions ({k}_0.bin from ais_bench or our runner) -> EPE (and KITTI's Fl) against the ground truth.

    python Flownet2_postprocess.py --gt_path prep_bs1/gt --output_path out/bs1 --batch_size 1
"""
import argparse
import math
import os
import sys

from ..cli import command, parse, print_between_banners
from ..data.chairs import describe_split
from ..score import evaluate
from ..score.custody import CustodyError

UNVERIFIED_BANNER = ("!!! UNVERIFIED: nothing shows these predictions were made from the batch files "
                     "the manifest describes; this EPE may belong to other inputs !!!")


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
    p.add_argument("--unverified", action="store_true",
                   help="score predictions whose runner summary does not show they were made from the "
                        "manifest's batch files (e.g. another tool's output); the report says so")
    return parse(p, argv)


def main(argv=None):
    args = parse_args(argv)
    manifest_path = evaluate.manifest_path_for(args.gt_path, args.manifest)
    manifest = evaluate.open_manifest(args.gt_path, args.manifest, args.batch_size)
    weights, model = evaluate.run_weights(args.output_path, args.model)
    try:
        predictions, gts, custody = evaluate.verify(manifest, manifest_path, args.gt_path, args.output_path,
                                                    unverified=args.unverified)
    except CustodyError as e:
        raise CustodyError(f"{e} (--unverified scores them anyway)") from None
    rows, warnings = evaluate.evaluate(manifest, predictions, gts, vis_dir=args.vis,
                                       vis_count=args.vis_count, save_flo_dir=args.save_flo,
                                       weights=weights)
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    report = evaluate.build_report(manifest, rows, weights, model, **custody,
                                   manifest_path=os.path.abspath(manifest_path),
                                   predictions=os.path.abspath(args.output_path))
    epe = report["overall"]["epe"]
    epe_line = f"{len(rows)} samples, Average EPE = {_number(epe)}"
    if "fl_all" in report["overall"]:
        fl = report["overall"]["fl_all"]
        epe_line += f", Fl-all = {_number(None if fl is None else 100 * fl, 4)}%"
    print_between_banners([epe_line], weights, more=[UNVERIFIED_BANNER] if args.unverified else [])
    print(f"weights: {weights}" if weights else "weights: unknown (pass --model to record them)")
    print(f"inputs: {_custody_line(custody, manifest_path)}")
    print(f"dataset: {report['dataset_type']}" + (f" ({report['pass']} pass)" if report["pass"] else "")
          + f", {report['resize_mode']} to {'x'.join(map(str, report['model_size']))}, scored at each pair's own size")
    if report["split"]:
        print(f"split: {describe_split(report['split'])}")
    for rule, text in report["rules"].items():
        print(f"rule {rule}: {text}")
    print(evaluate.format_table(report))
    json_path, csv_path = evaluate.write_report(args.report or args.output_path, report, rows)
    print(f"wrote {json_path} and {csv_path}")
    return 0


def _number(x, digits=6):
    return "nan" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _custody_line(custody, manifest_path):
    level, summary = custody["custody"], custody["summary"]
    if level == "digests":
        return f"made from the batch files {manifest_path} records (sha256 of each, as read: {summary})"
    if level == "paths":
        return (f"{summary} names the batch files {manifest_path} records, and they still hold them; "
                "what the runner read at run time is not recorded")
    return "UNVERIFIED (not checked against the manifest)"


cli = command(main)  # The `flownet2-postprocess` command (and `python Flownet2_postprocess.py`).


if __name__ == "__main__":
    cli()

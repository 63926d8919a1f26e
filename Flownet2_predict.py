"""Optical flow for your own frames, video or video collection, from any model the pipeline makes.

    python Flownet2_predict.py --model flownet2_bs1_sim_fix.onnx --input frame1.png frame2.png --output out
    python Flownet2_predict.py --model stand-in:0 --input frames/ --output out --png
    python Flownet2_predict.py --model FlowNet2_checkpoint.pth.tar --input clip.mp4 --output out \
        --video out/clip_flow.mp4
    python Flownet2_predict.py --model FlowNet2_checkpoint.pth.tar --input UCF101/ --output flow \
        --format jpg --rgb [--shard 2/8 | --ray [ADDRESS]]

Writes <first frame's name>.flo per pair (a video clip.mp4: out/clip/frame_0001.flo, numbered from 1).
A folder tree of videos or a list of video paths (.txt, one a line) is a collection: one model load,
OUT/<relative path without extension>/ per video, resumable (rerun the same command).

Exit codes: 0 done; 1 some videos of a collection failed (listed in OUT/failed.txt); 2 refused (one
line says why); 3 the output folder is full, over quota, read-only or not writable: the run stopped,
the unfinished video removed; fix it and run the same command again to resume.
"""
import argparse
import os
from fractions import Fraction

from flownet2.cli import add_precision, at_least_one, parse, print_between_banners, run_main
from flownet2.data import flow_formats, frames, images
from flownet2.errors import Flownet2Error
from flownet2.runtime import collection, engines, predict
from flownet2.runtime.outputs import Outputs
from flownet2.runtime.sessions import open_model
from flownet2.score import quality
from flownet2.sizes import OutputSize, model_size, parse_width_height


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=".onnx (ONNX Runtime), .om (Ascend, ais_bench), a checkpoint .pth.tar (any FlowNet2 member), stand-in:SEED or stand-in:MEMBER:SEED (stand-in:css:0)")
    p.add_argument("--input", required=True, nargs="+", metavar="INPUT",
                   help="two image files, a folder of frames, a video file; or a collection: a folder tree "
                        "of videos or a list of video paths (.txt, relative to the list's folder)")
    p.add_argument("--output", required=True, help="folder for the flow files (and --png pictures)")
    p.add_argument("--format", choices=flow_formats.FORMATS, default="flo",
                   help="flo (float32, default); jpg (flow_x_N.jpg / flow_y_N.jpg, 8-bit, as mmaction2 "
                        "and denseflow); kitti (16-bit PNG, 1/64 px); npy (float16)")
    p.add_argument("--bound", type=float, default=flow_formats.DEFAULT_BOUND, metavar="PX",
                   help="jpg: the flow at pixel 0 and 255 is -PX and +PX (default 20, as mmaction2's scripts)")
    p.add_argument("--start-index", type=int, default=1, metavar="N",
                   help="jpg: number of the first flow_x / img file (default 1, as mmaction2 reads; denseflow: 0)")
    p.add_argument("--rgb", action="store_true", help="every frame as img_N.jpg beside the flow (mmaction2 rawframes)")
    p.add_argument("--step", type=at_least_one, default=1, metavar="K",
                   help="flow from frame i to frame i+K (denseflow's -s; default 1): N frames give N-K flows")
    p.add_argument("--new-short", type=int, metavar="S",
                   help="write flows, --rgb frames and pictures with short side S, the aspect ratio kept "
                        "(denseflow's --ns, mmaction2's Kinetics: 256); never larger than the source "
                        "unless --enlarge")
    p.add_argument("--new-size", metavar="WxH", help="write them at exactly W x H (denseflow's --nw, --nh)")
    p.add_argument("--enlarge", action="store_true", help="--new-short: also enlarge smaller sources")
    p.add_argument("--shard", metavar="I/N", help="collection: only shard I of N of the sorted videos "
                   "(Slurm arrays: --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT; one per GPU)")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="collection: run on Ray, one worker per GPU / NPU (or --workers CPU workers); "
                        "without ADDRESS, the cluster in RAY_ADDRESS or a local one")
    p.add_argument("--workers", type=at_least_one, metavar="N", help="--ray: number of workers (default: one per "
                   "GPU or NPU of the cluster, else 1)")
    p.add_argument("--accelerator", choices=("gpu", "npu", "cpu"),
                   help="--ray: what each worker holds (default: gpu if the cluster has GPUs, else npu, else cpu)")
    p.add_argument("--size-mode", choices=images.SIZE_MODES, default="resize",
                   help="how frames reach the model's size: bilinear resize (default, as the official Caffe "
                        "release; u, v rescaled back) or zero padding at the bottom/right")
    p.add_argument("--batch-size", type=at_least_one, help="pairs per model run (a static model: its own batch size)")
    p.add_argument("--png", action="store_true", help="a labelled colour picture beside each .flo")
    p.add_argument("--video", metavar="OUT.mp4", help="a video of each first frame beside its flow")
    p.add_argument("--fps", type=Fraction, help="frame rate of --video (default: the source's, else 24)")
    p.add_argument("--flow-radius", type=float, metavar="PX",
                   help="flow magnitude at the colour wheel's rim (default: the first pair's largest)")
    p.add_argument("--backward", action="store_true", help="also the flow from each pair's second frame to "
                   "its first: <pair>_bwd.flo (jpg: bwd_flow_x_N.jpg); the model runs twice per pair")
    p.add_argument("--occlusion", action="store_true", help="a mask per pair from forward-backward "
                   "consistency: <pair>_occ.png, 255 = consistent (runs the backward pass)")
    p.add_argument("--quality", action="store_true", help="scores per pair without ground truth (consistent "
                   "fraction, photometric error, mean magnitude) in quality.csv, suspect pairs flagged")
    p.add_argument("--occ-alpha1", type=float, default=quality.ALPHA1, metavar="A1",
                   help="consistency rule: |wf + wb|^2 < A1 (|wf|^2 + |wb|^2) + A2 (default 0.01)")
    p.add_argument("--occ-alpha2", type=float, default=quality.ALPHA2, metavar="A2",
                   help="consistency rule's constant term, px^2 (default 0.5)")
    p.add_argument("--gt", metavar="DIR", help="ground truth of the same names (.flo, KITTI .png, .npy; or "
                   "flow_x_N.jpg by number): EPE per pair")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (a collection: redo every video)")
    p.add_argument("--backend", choices=("auto", *engines.ENGINES), default="auto",
                   help="the engine: auto (default) is OpenVINO on a CPU, ONNX Runtime (an .onnx) or PyTorch (a "
                        "checkpoint) on a CUDA GPU, ais_bench for an .om")
    add_precision(p, help="default: bf16 on a CPU with bf16 units (AVX512_BF16 or AMX), else fp32; fp32 is always "
                          "full precision; fp16 and tf32: PyTorch on a CUDA GPU")
    p.add_argument("--device", type=int, default=0, help="GPU / NPU id")
    args = parse(p, argv)
    if args.flow_radius is not None and not args.flow_radius > 0:
        p.error(f"--flow-radius must be positive, got {args.flow_radius}")
    if args.new_short is not None and args.new_size is not None:
        p.error("--new-short and --new-size: choose one")
    if args.enlarge and args.new_short is None:
        p.error("--enlarge goes with --new-short")
    if not (args.occ_alpha1 >= 0 and args.occ_alpha2 >= 0):
        p.error(f"--occ-alpha1 and --occ-alpha2 must be 0 or more, got {args.occ_alpha1}, {args.occ_alpha2}")
    return args


def output_size(args):
    new_size = parse_width_height(args.new_size) if args.new_size else None
    return OutputSize(new_short=args.new_short, new_size=new_size, enlarge=args.enlarge)


def main(argv=None):
    args = parse_args(argv)
    found = collection.find_jobs(args.input[0]) if len(args.input) == 1 else None
    if found is not None:
        return run_collection(args, *found)
    for flag in ("shard", "ray", "workers", "accelerator"):
        if getattr(args, flag) is not None:
            raise Flownet2Error(f"--{flag} is for a collection (a folder tree of videos or a list of videos); "
                                f"{args.input[0]} is a single source")
    backend, precision = engines.choose(args.model, args.backend, args.precision)
    print(engines.describe(backend, precision))
    fmt = flow_formats.FlowFormat(args.format, bound=args.bound, start_index=args.start_index)
    outputs = Outputs(fmt=fmt, png=args.png, video=args.video, fps=args.fps, gt_dir=args.gt, rgb=args.rgb,
                      radius=args.flow_radius, size=output_size(args), **checks(args))
    source = frames.open_source(args.input, step=args.step)
    predict.prepare_outputs(source, args.output, outputs, force=args.force)
    # refused here, in one line, when too big for this machine's memory; a large estimate is printed
    session = open_model(args.model, backend=backend, batch_size=args.batch_size, size=model_size(*source.size),
                         precision=precision, device=args.device, frame_size=source.size, announce=print)
    if args.batch_size is not None and session.batch_size != args.batch_size:
        raise Flownet2Error(f"{args.model}: the model runs batches of {session.batch_size}, "
                            f"not {args.batch_size}")
    (h, w), (mh, mw), (oh, ow) = source.size, session.size, outputs.size.of(source.size)
    pairs = "" if source.pair_count is None else f", {source.pair_count} pair(s)"
    pairs += f", frames i and i+{args.step}" if args.step > 1 else ""
    written = f"; written at {oh}x{ow}" if (oh, ow) != (h, w) else ""
    what = {"images": "two images", "folder": f"a folder of {source.frame_count} frames", "video": "a video"}
    turned = f"; {source.orientation_note}" if source.orientation_note else ""
    print(f"input: {what[source.kind]}, {source.path} ({h}x{w}{pairs}{turned}); model: {args.model} ({mh}x{mw}, "
          f"batch {session.batch_size}, {args.size_mode}); weights: {session.label or 'unknown'}{written}")
    result = predict.predict(session, source, output=args.output, outputs=outputs, size_mode=args.size_mode)
    report(args, result, session.label, outputs)
    return 0


def run_collection(args, jobs, found):
    """Every video of the collection (or of its shard), here or on Ray; exit 1 when any failed."""
    for flag in ("video", "gt"):
        if getattr(args, flag) is not None:
            raise Flownet2Error(f"--{flag} is for a single source; {args.input[0]} is {found}")
    settings = collection.Settings(
        model=os.path.abspath(args.model) if os.path.isfile(args.model) else args.model,
        output=os.path.abspath(args.output), format=args.format, bound=args.bound,
        start_index=args.start_index, rgb=args.rgb, png=args.png, radius=args.flow_radius,
        size_mode=args.size_mode, batch_size=args.batch_size, backend=args.backend, precision=args.precision,
        device=args.device, force=args.force, step=args.step, output_size=output_size(args), **checks(args))
    # a bad --bound or --start-index, or pictures beside KITTI flow, refused before anything is written
    predict.check_pictures(settings.outputs())
    spec = collection.parse_shard(args.shard) if args.shard else None
    if spec is not None:
        jobs = collection.shard(jobs, *spec)
        found += f"; shard {spec[0]}/{spec[1]}: {len(jobs)} of them"
    collection.check_inputs_kept(settings, args.input[0], jobs, spec)
    if args.ray is not None:
        from flownet2.runtime import ray_pool

        ray_pool.require_ray()  # before anything is written
    where = " (here; each Ray worker chooses on its own machine)" if args.ray is not None else ""
    print(engines.describe(*engines.choose(settings.model, settings.backend, settings.precision)) + where)
    collection.check_settings(settings)
    print(f"input: {found}\noutput: {settings.output}/<video>/ as {args.format}; model: {args.model}")
    tally = collection.Tally(len(jobs), collection.failed_list_path(settings.output, spec))
    if args.ray is not None:
        ray_pool.run(jobs, settings, tally, address=args.ray or None, workers=args.workers,
                     accelerator=args.accelerator)
    else:
        collection.run_jobs(jobs, collection.Worker(settings), tally)
    summary = tally.summary()
    if args.quality:
        path, flagged, videos = collection.write_quality_table(jobs, settings.output, shard_spec=spec)
        summary.append(f"quality: {flagged} of {videos} finished video(s) have flagged pairs; a row per video: {path}")
    print("\n".join(summary))
    return 1 if tally.failures else 0


def checks(args):
    """The choices of flow checked without ground truth, as Outputs and collection.Settings take them."""
    return {"backward": args.backward, "occlusion": args.occlusion, "quality": args.quality,
            "occ_alpha1": args.occ_alpha1, "occ_alpha2": args.occ_alpha2}


def report(args, result, label, outputs):
    if args.gt:
        suffix = {"flo": ".flo", "kitti": ".png", "npy": ".npy"}.get(args.format, "")
        lines = [f"{row['name']}{suffix}  EPE = {row['epe']:.6f}" for row in result.rows]
        mean = sum(row["epe"] for row in result.rows) / len(result.rows)
        print_between_banners(lines + [f"{len(result.rows)} pairs, mean EPE = {mean:.6f}"], label)
    fmt, n = outputs.fmt, result.pairs
    files = [fmt.describe(n)] + ([f"{fmt.describe(n)} backward"] if outputs.backward else [])
    files += [f"{n} _occ.png masks"] if outputs.occlusion else []
    files += [f"{n} .png pictures"] if outputs.png else []
    files += [f"{n + args.step if n else 0} img_N.jpg frames"] if outputs.rgb else []
    wrote = [" + ".join(files) + f" in {os.path.abspath(args.output)}"]
    if args.video:
        wrote.append(f"video {os.path.abspath(args.video)}")
    if result.radius is not None:
        wrote.append(f"colour wheel rim = {result.radius:.3g} px")
    print("wrote " + "; ".join(wrote))
    if result.quality is not None:
        print(quality.summary_line(result.quality))
    model_rate = result.pairs / (result.model_ms / 1000) if result.model_ms else float("nan")
    runs = " (2 model runs per pair: forward and backward)" if outputs.two_way else ""
    print(f"{result.pairs / result.seconds:.2f} pairs/s end to end, {model_rate:.2f} pairs/s in the model{runs}")


if __name__ == "__main__":
    run_main(main)

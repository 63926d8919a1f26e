"""Optical flow for your own frames, video or video collection, from any model the pipeline makes.

    python Flownet2_predict.py --model flownet2_bs1_sim_fix.onnx --input frame1.png frame2.png --output out
    python Flownet2_predict.py --model stand-in:0 --input frames/ --output out --png
    python Flownet2_predict.py --model FlowNet2_checkpoint.pth.tar --input clip.mp4 --output out \
        --video out/clip_flow.mp4
    python Flownet2_predict.py --model FlowNet2_checkpoint.pth.tar --input UCF101/ --output flow \
        --format jpg --rgb [--shard 2/8 | --ray [ADDRESS]]
    python Flownet2_predict.py --model FlowNet2_checkpoint.pth.tar --input meta.csv --output scores \
        --motion-score --sample-fps 2 --new-size 576x320 --min-motion 0.25

Writes <first frame's name>.flo per pair (a video clip.mp4: out/clip/frame_0001.flo, numbered from 1).
A folder tree of videos or a list of video paths (.txt, one a line) is a collection: one model load,
OUT/<relative path without extension>/ per video, resumable (rerun the same command). --motion-score
scores a collection (or a .csv table with a path column) from sampled frames: OUT/motion.csv, a row per
clip, and for a table a copy of it with the scores (OUT/<table>_flow.csv); no flow files unless asked.

Exit codes: 0 done; 1 some videos of a collection failed (listed in OUT/failed.txt); 2 refused (one
line says why); 3 the output folder is full, over quota, read-only or not writable: the run stopped,
the unfinished video removed; fix it and run the same command again to resume.
"""
import argparse
import os
from fractions import Fraction

from ..cli import add_precision, at_least_one, auto_or_at_least_one, command, parse, print_between_banners
from ..data import flow_formats, frames, images, sampling
from ..errors import Flownet2Error
from ..runtime import collection, curation, engines, predict
from ..runtime.flow_model import FlowModel
from ..runtime.outputs import Outputs
from ..score import quality
from ..sizes import FLOW_AT, OutputSize, parse_width_height


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=".onnx (ONNX Runtime), .om (Ascend, ais_bench), a checkpoint .pth.tar (any FlowNet2 member), stand-in:SEED or stand-in:MEMBER:SEED (stand-in:css:0)")
    p.add_argument("--input", required=True, nargs="+", metavar="INPUT",
                   help="two image files, a folder of frames, a video file; or a collection: a folder tree "
                        "of videos or a list of video paths (.txt, relative to the list's folder)")
    p.add_argument("--output", required=True, help="folder for the flow files (and --png pictures)")
    p.add_argument("--format", choices=flow_formats.FORMATS,
                   help="default: flo (float32; with --motion-score, flow files only when a format is named); "
                        "jpg (flow_x_N.jpg / flow_y_N.jpg, 8-bit, as mmaction2 and denseflow); kitti (16-bit PNG, "
                        "1/64 px); npy (float16)")
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
    p.add_argument("--flow-at", choices=FLOW_AT, default="output",
                   help="with --new-short / --new-size: output (default) resizes the frames first and runs the model "
                        "at that size; source runs the model at the source's size and resizes its flow")
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
    p.add_argument("--motion-score", action="store_true", help="collection: motion scores per clip from sampled "
                   "frames in OUT/motion.csv (a .csv input with a path column: also a copy of it with the scores, "
                   "OUT/<name>_flow.csv); flow files only with --format")
    p.add_argument("--sample-fps", type=float, metavar="F", help="--motion-score: F frames per second of the clip "
                   "(data-juicer's rule: every round(fps / F)-th frame; default 2)")
    p.add_argument("--frames", metavar="I,J,...", help="--motion-score: these frame indices instead, from 0 "
                   "(Open-Sora's: 0,10,20,30)")
    p.add_argument("--transpose-portrait", action="store_true", help="--motion-score: a portrait clip is scored "
                   "with its axes swapped, as Open-Sora does, so that --new-size 576x320 fits it")
    p.add_argument("--min-motion", type=float, metavar="PX", help="--motion-score: a keep column, 1 where motion "
                   ">= PX (data-juicer's min_score: 0.25)")
    p.add_argument("--max-motion", type=float, metavar="PX", help="--motion-score: ... and motion <= PX")
    p.add_argument("--relative", action="store_true", help="--min-motion, --max-motion compare motion_relative "
                   "(motion / the frame's diagonal; data-juicer's relative=True)")
    p.add_argument("--gt", metavar="DIR", help="ground truth of the same names (.flo, KITTI .png, .npy; or "
                   "flow_x_N.jpg by number): EPE per pair")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs (a collection: redo every video)")
    p.add_argument("--backend", choices=("auto", *engines.ENGINES), default="auto",
                   help="the engine: auto (default) is OpenVINO on a CPU, ONNX Runtime (an .onnx) or PyTorch (a "
                        "checkpoint) on a CUDA GPU, ais_bench for an .om")
    add_precision(p, help="default: bf16 on a CPU with bf16 units (AVX512_BF16 or AMX), else fp32; fp32 is always "
                          "full precision; fp16 and tf32: PyTorch on a CUDA GPU")
    p.add_argument("--device", type=int, default=0, help="GPU / NPU id")
    p.add_argument("--streams", type=auto_or_at_least_one, default="auto", metavar="N",
                   help="OpenVINO: model runs kept in flight (default auto: OpenVINO's optimal number for the "
                        "machine, one for a single pair; 1: one at a time, all cores on each); other engines run "
                        "one at a time")
    args = parse(p, argv)
    if args.flow_radius is not None and not args.flow_radius > 0:
        p.error(f"--flow-radius must be positive, got {args.flow_radius}")
    if args.new_short is not None and args.new_size is not None:
        p.error("--new-short and --new-size: choose one")
    if args.enlarge and args.new_short is None:
        p.error("--enlarge goes with --new-short")
    check_motion_flags(p, args)
    if not (args.occ_alpha1 >= 0 and args.occ_alpha2 >= 0):
        p.error(f"--occ-alpha1 and --occ-alpha2 must be 0 or more, got {args.occ_alpha1}, {args.occ_alpha2}")
    return args


def check_motion_flags(p, args):
    """The sampling flags go with --motion-score; flow files are written in a motion run only when a
    format is named."""
    flags = ("sample_fps", "frames", "min_motion", "max_motion")
    used = [f for f in flags if getattr(args, f) is not None] + [f for f in ("transpose_portrait", "relative")
                                                                 if getattr(args, f)]
    if used and not args.motion_score:
        p.error(f"--{used[0].replace('_', '-')} goes with --motion-score")
    if args.motion_score and args.step != 1:
        p.error("--step goes without --motion-score: its sampling rule (--sample-fps, --frames) picks the frames")
    if None not in (args.min_motion, args.max_motion) and args.min_motion > args.max_motion:
        p.error(f"--min-motion {args.min_motion} is above --max-motion {args.max_motion}: no clip would be kept")
    if args.sample_fps is not None and args.frames is not None:
        p.error("--sample-fps and --frames: choose one")
    if args.sample_fps is not None and not args.sample_fps > 0:
        p.error(f"--sample-fps must be positive, got {args.sample_fps}")
    if args.frames is not None:
        try:
            args.frames = sampling.parse_indices(args.frames)
        except Flownet2Error as e:
            p.error(f"--frames: {e}")
    if args.motion_score and args.frames is None and args.sample_fps is None:
        args.sample_fps = 2.0
    args.flow_files = not args.motion_score or args.format is not None
    args.format = args.format or "flo"


def output_size(args):
    new_size = parse_width_height(args.new_size) if args.new_size else None
    return OutputSize(new_short=args.new_short, new_size=new_size, enlarge=args.enlarge, flow_at=args.flow_at)


def main(argv=None):
    args = parse_args(argv)
    found = collection.find_jobs(args.input[0]) if len(args.input) == 1 else None
    if found is not None:
        return run_collection(args, *found)
    if args.motion_score:
        raise Flownet2Error(f"--motion-score scores a collection (a folder tree of videos, a list, a .csv table); "
                            f"{args.input[0]} is a single source: list it in a .txt file")
    for flag in ("shard", "ray", "workers", "accelerator"):
        if getattr(args, flag) is not None:
            raise Flownet2Error(f"--{flag} is for a collection (a folder tree of videos or a list of videos); "
                                f"{args.input[0]} is a single source")
    fmt = flow_formats.FlowFormat(args.format, bound=args.bound, start_index=args.start_index)
    outputs = Outputs(fmt=fmt, png=args.png, video=args.video, fps=args.fps, gt_dir=args.gt, rgb=args.rgb,
                      radius=args.flow_radius, size=output_size(args), **checks(args))
    source = frames.open_source(args.input, step=args.step, size=outputs.size)
    # one pair has nothing to overlap: one request on every core is its fastest run
    streams = 1 if args.streams == "auto" and source.pair_count == 1 and not outputs.two_way else args.streams
    model = FlowModel(args.model, backend=args.backend, precision=args.precision, device=args.device,
                      batch_size=args.batch_size, size_mode=args.size_mode, streams=streams)
    print(model.describe())
    predict.prepare_outputs(source, args.output, outputs, force=args.force)
    # too big for this machine's memory: refused here in one line; a large estimate is printed
    session = model.session(source.frame_size, source_size=source.size, announce=print)
    print(input_line(args, source, session, outputs))
    result = predict.predict(session, source, output=args.output, outputs=outputs, size_mode=args.size_mode)
    report(args, result, session.label, outputs)
    return 0


def input_line(args, source, session, outputs):
    """What is read, at which size the model runs, with which weights, and the size written."""
    (h, w), (mh, mw), (oh, ow) = source.size, session.size, outputs.size.of(source.size)
    pairs = "" if source.pair_count is None else f", {source.pair_count} pair(s)"
    pairs += f", frames i and i+{args.step}" if args.step > 1 else ""
    written = ""
    if (oh, ow) != (h, w):
        where = "frames resized first" if source.frame_size != tuple(source.size) else "flow resized after"
        written = f"; written at {oh}x{ow} ({where})"
    what = {"images": "two images", "folder": f"a folder of {source.frame_count} frames", "video": "a video"}
    turned = f"; {source.orientation_note}" if source.orientation_note else ""
    flight = f", {session.streams} requests in flight" if getattr(session, "streams", 1) > 1 else ""
    return (f"input: {what[source.kind]}, {source.path} ({h}x{w}{pairs}{turned}); model: {args.model} ({mh}x{mw}, "
            f"batch {session.batch_size}, {args.size_mode}{flight}); weights: {session.label or 'unknown'}{written}")


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
        device=args.device, force=args.force, step=args.step, output_size=output_size(args), streams=args.streams,
        **checks(args),
        motion=args.motion_score, sample_fps=args.sample_fps, sample_frames=args.frames,
        transpose_portrait=args.transpose_portrait, flow_files=args.flow_files)
    # a bad --bound or --start-index, or pictures beside KITTI flow, refused before anything is written
    predict.check_pictures(settings.outputs())
    spec = collection.parse_shard(args.shard) if args.shard else None
    all_jobs, table = jobs, args.input[0] if args.input[0].lower().endswith(".csv") else None
    if args.motion_score:
        curation.check_outputs(settings.output, [j.video for j in jobs], shard_spec=spec, table=table)
    if spec is not None:
        jobs = collection.shard(jobs, *spec)
        found += f"; shard {spec[0]}/{spec[1]}: {len(jobs)} of them"
    collection.check_inputs_kept(settings, args.input[0], jobs, spec)
    if args.ray is not None:
        from flownet2.runtime import ray_pool

        ray_pool.require_ray()  # before anything is written
    where = " (here; each Ray worker chooses on its own machine)" if args.ray is not None else ""
    print(engines.describe(*engines.choose(settings.model, settings.backend, settings.precision), settings.streams)
          + where)
    collection.check_settings(settings)
    writes = f"{settings.output}/<video>/ as {args.format}" if args.flow_files else f"{settings.output}/motion.csv"
    print(f"input: {found}\noutput: {writes}; model: {args.model}")
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
    if args.motion_score:
        keep = curation.Keep(args.min_motion, args.max_motion, relative=args.relative)
        summary += curation.write_tables(jobs, settings.output, keep=keep, shard_spec=spec, table=table,
                                         table_jobs=all_jobs)
        summary.append(curation.speed_line(tally))
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


cli = command(main)  # The `flownet2-predict` command (and `python Flownet2_predict.py`).


if __name__ == "__main__":
    cli()

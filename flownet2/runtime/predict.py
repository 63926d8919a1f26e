"""Flow for a frame source, streaming: batches to a model session; .flo, pictures, video, EPE out.

Three stages overlap through bounded queues, so memory stays flat whatever the length (a long video
is never held) and the model does not wait on I/O: a reader thread decodes frames and fills batches,
the calling thread runs the model, a writer thread brings each flow back to its frame's size and
writes it. Every file is written atomically; an error stops all three and is raised in the caller.
"""
import contextlib
import functools
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..data import decode, frames, images
from ..data.flo import UNKNOWN_THRESHOLD
from ..data.flow_formats import OCCLUSION_SUFFIX, OUTPUT_FILE, FlowFormat, write_jpeg
from ..errors import Flownet2Error
from ..fileio import check_inputs_kept, check_writable, output_faults, remove_temporaries, save_png
from ..score import metrics, motion, quality, visualize
from .flow_model import flow_back, frame_pairs, put_unless_stopped, stream
from .outputs import Outputs

QUEUED_BATCHES = 2  # per queue: enough to hide a slow decode or write, small enough to stay bounded
_DONE = object()
GT_EXTS = (".flo", ".png", ".npy")  # ground truth by the pair's name; else a flow_x_N.jpg pair


@dataclass
class Result:
    pairs: int = 0
    seconds: float = 0.0  # wall time of the whole stream
    model_ms: float = 0.0  # wall time the model was busy: the union of its runs' in-flight times
    radius: float | None = None  # the colour wheel's radius used for every picture
    rows: list = field(default_factory=list)  # [{"name", "epe"}] per pair with ground truth
    scores: list = field(default_factory=list)  # [(pair name, quality.PairScores)] with quality
    quality: dict | None = None  # quality.video_summary() of the source, with quality
    motion: object = None  # with motion: a motion.MotionSums, the sums the clip's motion scores come from


def picture_path(source, output, i):
    return os.path.join(output, source.pair_name(i) + ".png")


def occlusion_path(source, output, i):
    return os.path.join(output, source.pair_name(i) + OCCLUSION_SUFFIX + ".png")


def quality_path(source, output):
    """quality.csv beside the flow: in a video's folder, else in the output folder."""
    return os.path.join(video_folder(source, output) if source.kind == "video" else output, "quality.csv")


def gt_path(source, gt_dir, i, fmt=None):
    """Ground truth for pair i in `gt_dir`: <pair's file name>.flo, .png (KITTI) or .npy, else the
    flow_x_N.jpg of its number (`fmt`'s start index); the first that exists, else the .flo's name."""
    name = os.path.basename(source.pair_name(i))
    candidates = [os.path.join(gt_dir, name + ext) for ext in GT_EXTS]
    candidates.append(os.path.join(gt_dir, (fmt or FlowFormat("jpg")).files(name, i)[0]))
    return next((p for p in candidates if os.path.isfile(p)), candidates[0])


def video_folder(source, output):
    """The folder a video's outputs go to: <output>/<video's stem>."""
    return os.path.join(output, os.path.dirname(source.pair_name(0)))


def remove_video_outputs(folder):
    """Delete our outputs in a video's output folder (every format, pictures, frames); how many."""
    old = sorted(f for f in os.listdir(folder) if OUTPUT_FILE.match(f)) if os.path.isdir(folder) else []
    for f in old:
        os.remove(os.path.join(folder, f))
    return old


def check_pictures(outputs):
    """Pictures beside the flow files need names of their own: not with KITTI's .png flow."""
    if outputs.png and outputs.fmt.kind == "kitti":
        raise Flownet2Error("pictures (.png) and KITTI flow (.png) would share names; "
                            "choose one, or another format")


def planned_files(source, output, outputs, *, png=None):
    """Every file a run over pictures (two images, a folder) writes: flows (both ways), occlusion masks,
    pictures (`png` overrides outputs.png), frames, the quality table."""
    fmt, png = outputs.fmt, outputs.png if png is None else png
    paths = []
    for i in range(source.pair_count):
        name = source.pair_name(i)
        paths += [os.path.join(output, f) for f in fmt.files(name, i)] if outputs.flow else []
        paths += [os.path.join(output, f) for f in fmt.files(name, i, backward=True)] if outputs.backward else []
        paths += [occlusion_path(source, output, i)] if outputs.occlusion else []
        paths += [picture_path(source, output, i)] if png else []
    paths += [os.path.join(output, fmt.frame_file(source.pair_name(0), n)) for n in range(source.frame_count)
              if outputs.rgb]
    paths += [quality_path(source, output)] if outputs.quality else []
    return list(dict.fromkeys(paths))


def clear_outputs(source, output, outputs):
    """Remove what a run over `source` wrote, and its temporaries (a run stopped by its output)."""
    if source.kind == "video":
        remove_video_outputs(video_folder(source, output))
        remove_temporaries(video_folder(source, output))
        return
    paths = planned_files(source, output, outputs)
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    remove_temporaries(output, names=[os.path.basename(p) for p in paths])


def prepare_outputs(source, output, outputs, *, force=False):
    """Refuse, before any work, outputs that exist (unless `force`), outputs that would land on the
    inputs (whatever `force` says), ground truth that does not exist and an output folder that cannot
    take files (errors.OutputError).

    A video's pairs are counted only as it decodes: its subfolder must hold none of our files, and
    with `force` the old ones go first, so a shorter clip leaves no stale pair behind.
    """
    fmt, video, gt_dir = outputs.fmt, outputs.video, outputs.gt_dir
    check_pictures(outputs)
    if video:
        frames.check_video_out(video)
    planned = [] if source.kind == "video" else planned_files(source, output, outputs)
    reads = list(source.files or [source.path])
    if gt_dir is not None:  # ground truth is an input too
        reads += [gt_path(source, gt_dir, i, fmt) for i in range(source.pair_count or 0)]
        if source.kind == "video":  # its outputs are named only as it decodes: keep them out of gt_dir
            check_inputs_kept(video_folder(source, output), read_folders=[gt_dir])
    check_inputs_kept(output, read_folders=[source.path] if source.kind == "folder" else [],
                      inputs=reads, writes=planned + ([video] if video else []))
    existing = [video] if video and os.path.exists(video) else []
    if source.kind == "video":
        folder = video_folder(source, output)
        old = sorted(f for f in os.listdir(folder) if OUTPUT_FILE.match(f)) if os.path.isdir(folder) else []
        existing += [os.path.join(folder, f) for f in old]
    else:
        # pictures count even without --png: one left by an earlier run would not match the new flow
        existing += [p for p in planned_files(source, output, outputs, png=True) if os.path.exists(p)]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise Flownet2Error(f"{existing[0]}: already exists{more}; not overwritten without force")
    if gt_dir is not None:
        if not os.path.isdir(gt_dir):
            raise Flownet2Error(f"{gt_dir}: ground-truth folder not found")
        for i in range(source.pair_count or 0):
            if not os.path.isfile(gt_path(source, gt_dir, i, fmt)):
                raise Flownet2Error(f"{gt_path(source, gt_dir, i, fmt)}: ground truth not found")
    check_writable(video_folder(source, output) if source.kind == "video" else output)
    if force and source.kind == "video":
        remove_video_outputs(video_folder(source, output))


class _Stages:
    """Bounded hand-overs between threads; the first error stops every stage."""

    def __init__(self):
        self.stop = threading.Event()
        self.error = None

    def fail(self, error):
        if self.error is None:
            self.error = error
        self.stop.set()

    def put(self, q, item):
        return put_unless_stopped(q, item, self.stop)

    def get(self, q):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass
        return _DONE

    def thread(self, fn, *args):
        def body():
            try:
                fn(*args)
            except BaseException as e:  # raised again in the caller's thread
                self.fail(e)
        t = threading.Thread(target=body, daemon=True)
        t.start()
        return t


class _Writer:
    """Everything done with one pair's flow, by name: the flow file(s), EPE, picture, video frame; and
    with each frame as it decodes: the rgb frame files. A new output is one entry and its function."""

    def __init__(self, source, padder, output, outputs, *, write_video, result, bar, weights):
        self.source, self.padder, self.output, self.outputs = source, padder, output, outputs
        self.fmt, self.gt_dir = outputs.fmt, outputs.gt_dir
        self.weights = weights  # named on the pictures when they are stand-ins
        self.write_video = write_video
        self.result, self.bar = result, bar
        self.result.radius = outputs.radius
        self.size = outputs.size.of(source.size)  # (height, width) of the flows, frames and pictures
        # name -> function of one pair, run in this order ("epe" reads the ground truth the pictures show)
        self.per_pair = {"flow": self._flow} if outputs.flow else {}
        if self.gt_dir:
            self.per_pair["epe"] = self._epe
        if outputs.png:
            self.per_pair["png"] = self._png
        if write_video:
            self.per_pair["video"] = self._video
        if outputs.backward:
            self.per_pair["backward"] = self._backward
        if outputs.occlusion:
            self.per_pair["occlusion"] = self._occlusion
        if outputs.quality:
            self.per_pair["quality"] = self._quality
        if outputs.motion:
            self.result.motion = motion.MotionSums()
            self.per_pair["motion"] = self._motion
        self.per_frame = {"rgb": self._rgb} if outputs.rgb else {}  # name -> function of one decoded frame
        self.frame_name = source.pair_name(0)  # a video's frames go beside its first pair's flow

    def pair(self, i, model_flow, model_back, pair_frames):
        # flows (h, w, 2) at the output size; the backward one when the model ran both ways
        done = {"flow": self._unpad(model_flow), "frame": pair_frames[0], "next": pair_frames[1], "gt": None,
                "back": None if model_back is None else self._unpad(model_back)}
        for write in self.per_pair.values():
            write(i, done)
        self.result.pairs += 1
        self.bar.update(1)

    def _unpad(self, model_flow):
        return flow_back(self.padder, model_flow, self.size)

    def frame(self, n, frame):
        for write in self.per_frame.values():
            write(n, frame)

    def _flow(self, i, done):
        self.fmt.write(self.output, self.source.pair_name(i), i, done["flow"])

    def _epe(self, i, done):
        done["gt"] = self._gt(i, done["flow"])

    def _picture(self, done):
        if "picture" not in done:
            if self.result.radius is None:  # one radius for the whole sequence: the first pair's
                self.result.radius = visualize.flow_radius(done["flow"] if done["gt"] is None else done["gt"])
            frame = frames.resize_frame(decode.to_uint8(done["frame"]), self.size)
            done["picture"] = visualize.side_by_side(frame, done["flow"], done["gt"],
                                                     radius=self.result.radius, weights=self.weights)
        return done["picture"]

    def _png(self, i, done):
        save_png(picture_path(self.source, self.output, i), self._picture(done))

    def _video(self, i, done):
        self.write_video(self._picture(done))

    def _backward(self, i, done):
        self.fmt.write(self.output, self.source.pair_name(i), i, done["back"], backward=True)

    def _consistency(self, done):
        """(scores, mask) of the pair, computed once for the occlusion mask and the quality table."""
        if "consistency" not in done:
            o = self.outputs
            # the photometric error compares the frames at the flow's (output) size
            pair_frames = [frames.resize_frame(done[k], self.size) for k in ("frame", "next")] if o.quality else None
            done["consistency"] = quality.score_pair(done["flow"], done["back"], frames=pair_frames,
                                                     alpha1=o.occ_alpha1, alpha2=o.occ_alpha2)
        return done["consistency"]

    def _occlusion(self, i, done):
        save_png(occlusion_path(self.source, self.output, i), quality.occlusion_png(self._consistency(done)[1]))

    def _quality(self, i, done):
        self.result.scores.append((os.path.basename(self.source.pair_name(i)), self._consistency(done)[0]))

    def _motion(self, i, done):
        # float64 sums of the flow as written (the output size); the consistency mask where it ran
        mask = self._consistency(done)[1] if self.outputs.two_way else None
        self.result.motion.add(done["flow"], consistent=mask)

    def _rgb(self, n, frame):
        # 8-bit JPEG at the output size, as training code reads it; a 16-bit frame rounded
        write_jpeg(os.path.join(self.output, self.fmt.frame_file(self.frame_name, n)),
                   frames.resize_frame(decode.to_uint8(frame), self.size))

    def _gt(self, i, flow):
        path = gt_path(self.source, self.gt_dir, i, self.fmt)
        if not os.path.isfile(path):
            raise Flownet2Error(f"{path}: ground truth not found")
        gt, valid = self.fmt.read(path)
        if valid is not None:  # KITTI's invalid pixels become unknown, which the metrics leave out
            gt = np.where(valid[..., None], gt, np.float32(2 * UNKNOWN_THRESHOLD))
        if gt.shape != flow.shape:
            raise Flownet2Error(f"{path}: ground truth is {gt.shape[0]}x{gt.shape[1]}, the frames are "
                                f"{flow.shape[0]}x{flow.shape[1]}")
        epe = metrics.compute_metrics(flow, gt)["epe"]
        self.result.rows.append({"name": self.source.pair_name(i), "epe": epe})
        return gt


def predict(session, source, *, output, outputs=None, size_mode="resize", progress=True):
    """Run every pair of `source` (frames i, i + source.step) through `session`; returns a Result.

    `session`: an object with .batch_size, .size (H, W) and .run([x1, x2]) -> (outputs, ms), as
    `sessions.open_model` gives (opened with several streams, it keeps that many runs in flight, the
    flows still written in order). `outputs`: what is written beside the flow, and at what size (an
    Outputs; default: .flo files only, at the source's size); with its backward flow, occlusion masks
    or quality scores the model runs each pair twice, the second time with the frames swapped. Call
    `prepare_outputs` first. The output's own faults (full, read-only...) remove what this run wrote
    and raise errors.OutputError.
    """
    outputs = outputs or Outputs()
    clear = functools.partial(clear_outputs, source, output, outputs)
    padder = images.padder_for(source.frame_size, session.size, size_mode, name=source.path)
    result = Result()
    stages = _Stages()
    to_writer = queue.Queue(QUEUED_BATCHES)
    bar = tqdm(total=source.pair_count, unit="pair", desc="predict", disable=not progress)
    t0 = time.perf_counter()
    video = _maybe_video(outputs.video, outputs.fps or source.fps)
    with output_faults(output, on_fault=clear), bar, video as write_video:
        writer = _Writer(source, padder, output, outputs, write_video=write_video, result=result, bar=bar,
                         weights=getattr(session, "label", None))
        on_frame = writer.frame if writer.per_frame else None
        pairs = frame_pairs(source.frames(), source.step, on_frame)

        def write():
            while (batch := stages.get(to_writer)) is not _DONE:
                for s in range(batch.count):
                    writer.pair(batch.first + s, batch.flow[s], None if batch.back is None else batch.back[s],
                                batch.kept[s])

        thread = stages.thread(write)
        try:
            with contextlib.closing(stream(session, padder, pairs, two_way=outputs.two_way,
                                           keep_frames=outputs.keeps_frames)) as batches:
                for batch in batches:
                    result.model_ms += batch.ms
                    if not stages.put(to_writer, batch):
                        break
            stages.put(to_writer, _DONE)
        except BaseException as e:
            stages.fail(e)
        thread.join()
        if stages.error is not None:
            raise stages.error
    result.seconds = time.perf_counter() - t0
    write_quality(result, source, output, outputs)
    return result


def write_quality(result, source, output, outputs):
    """With quality scores: the source's quality.csv, and its summary in result.quality."""
    if outputs.quality and result.scores:
        names, scores = zip(*result.scores)
        result.quality = quality.write_video_table(quality_path(source, output), names=names, scores=scores)


def pair_writer(source, padder, output, outputs, *, result, weights=None):
    """What predict() does with each pair's flow (writer.pair(i, flow, back, frames)), for a caller that
    runs the model itself (runtime/motion_groups.py: the pairs of several clips in one stream of
    batches); no progress bar, no video. Call write_quality() once the source's pairs are all in."""
    return _Writer(source, padder, output, outputs, write_video=None, result=result, bar=tqdm(disable=True),
                   weights=weights)


def _maybe_video(path, fps):
    return frames.video_writer(path, fps) if path else contextlib.nullcontext()

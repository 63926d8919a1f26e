"""Flow for a frame source, streaming: batches to a model session; .flo, pictures, video, EPE out.

Three stages overlap through bounded queues, so memory stays flat whatever the length (a long video
is never held) and the model does not wait on I/O: a reader thread decodes frames and fills batches,
the calling thread runs the model, a writer thread brings each flow back to its frame's size and
writes it. Every file is written atomically; an error stops all three and is raised in the caller.
"""
import contextlib
import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from ..data import frames, sintel
from ..data.flo import read_flo, write_flo
from ..errors import Flownet2Error
from ..fileio import save_png
from ..score import metrics, visualize

QUEUED_BATCHES = 2  # per queue: enough to hide a slow decode or write, small enough to stay bounded
_DONE = object()
_OUR_VIDEO_OUTPUTS = re.compile(r"^frame_\d{4,}\.(flo|png)$")


@dataclass
class Result:
    pairs: int = 0
    seconds: float = 0.0  # wall time of the whole stream
    model_ms: float = 0.0  # time spent in session.run
    radius: float | None = None  # the colour wheel's radius used for every picture
    rows: list = field(default_factory=list)  # [{"name", "epe"}] per pair with ground truth


def flo_path(source, output, i):
    return os.path.join(output, source.pair_name(i) + ".flo")


def gt_path(source, gt_dir, i):
    """Ground truth for pair i: the .flo of the same file name in `gt_dir`."""
    return os.path.join(gt_dir, os.path.basename(source.pair_name(i)) + ".flo")


def prepare_outputs(source, output, *, png=False, video=None, gt_dir=None, force=False):
    """Refuse, before any work, outputs that exist (unless `force`) and ground truth that does not.

    A video's pairs are counted only as it decodes: its subfolder must hold none of our files, and
    with `force` the old ones go first, so a shorter clip leaves no stale pair behind.
    """
    if video:
        frames.check_video_out(video)
    existing = [video] if video and os.path.exists(video) else []
    if source.kind == "video":
        folder = os.path.dirname(flo_path(source, output, 0))
        old = sorted(f for f in os.listdir(folder) if _OUR_VIDEO_OUTPUTS.match(f)) if os.path.isdir(folder) else []
        existing += [os.path.join(folder, f) for f in old]
        if force:
            for f in old:
                os.remove(os.path.join(folder, f))
    else:
        for i in range(source.pair_count):
            path = flo_path(source, output, i)
            existing += [p for p in (path, path[:-4] + ".png") if os.path.exists(p)]
    if existing and not force:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise Flownet2Error(f"{existing[0]}: already exists{more}; not overwritten without force")
    if gt_dir is not None:
        if not os.path.isdir(gt_dir):
            raise Flownet2Error(f"{gt_dir}: ground-truth folder not found")
        for i in range(source.pair_count or 0):
            if not os.path.isfile(gt_path(source, gt_dir, i)):
                raise Flownet2Error(f"{gt_path(source, gt_dir, i)}: ground truth not found")


def _batches(source, padder, batch_size, model_size, keep_frames):
    """Yield (first pair index, real pairs, x1, x2, first frames or None); a short last batch is
    filled by repeating its last pair (a static model always takes `batch_size`)."""
    shape = (batch_size, 3) + tuple(model_size)
    x1 = x2 = None
    kept, n, previous = [], 0, None
    for frame in source.frames():
        if previous is not None:
            if x1 is None:
                x1, x2, kept = np.empty(shape, np.float32), np.empty(shape, np.float32), []
            slot = n % batch_size
            # normalise straight into the slot's corner (pad mode), as the preprocess does
            a, b = sintel.normalise_pair(previous, frame, padder.corner(x1[slot]), padder.corner(x2[slot]))
            padder.pad(a, out=x1[slot])
            padder.pad(b, out=x2[slot])
            kept.append(previous if keep_frames else None)
            n += 1
            if slot == batch_size - 1:
                yield n - batch_size, batch_size, x1, x2, kept
                x1 = None
        previous = frame
    if x1 is not None:
        count = n % batch_size
        x1[count:], x2[count:] = x1[count - 1], x2[count - 1]
        yield n - count, count, x1, x2, kept


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
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

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
    """Everything done with one pair's flow: .flo, EPE, picture, video frame."""

    def __init__(self, source, padder, output, *, png, write_video, gt_dir, radius, result, bar):
        self.source, self.padder, self.output = source, padder, output
        self.png, self.write_video, self.gt_dir = png, write_video, gt_dir
        self.result, self.bar = result, bar
        self.result.radius = radius

    def pair(self, i, model_flow, frame):
        flow = self.padder.unpad(model_flow).transpose(1, 2, 0)  # (h, w, 2) at the frame's size
        path = flo_path(self.source, self.output, i)
        write_flo(path, flow)
        gt = self._gt(i, flow) if self.gt_dir else None
        if self.png or self.write_video:
            if self.result.radius is None:  # one radius for the whole sequence: the first pair's
                self.result.radius = visualize.flow_radius(flow if gt is None else gt)
            picture = visualize.side_by_side(frame, flow, gt, radius=self.result.radius)
            if self.png:
                save_png(path[:-4] + ".png", picture)
            if self.write_video:
                self.write_video(picture)
        self.result.pairs += 1
        self.bar.update(1)

    def _gt(self, i, flow):
        path = gt_path(self.source, self.gt_dir, i)
        if not os.path.isfile(path):
            raise Flownet2Error(f"{path}: ground truth not found")
        gt = read_flo(path)
        if gt.shape != flow.shape:
            raise Flownet2Error(f"{path}: ground truth is {gt.shape[0]}x{gt.shape[1]}, the frames are "
                                f"{flow.shape[0]}x{flow.shape[1]}")
        epe = metrics.compute_metrics(flow, gt)["epe"]
        self.result.rows.append({"name": self.source.pair_name(i), "epe": epe})
        return gt


def predict(session, source, *, output, size_mode="resize", png=False, video=None, gt_dir=None,
            radius=None, fps=None, progress=True):
    """Run every consecutive pair of `source` through `session`; returns a Result.

    `session`: an object with .batch_size, .size (H, W) and .run([x1, x2]) -> (outputs, ms), as
    `sessions.open_model` gives. Call `prepare_outputs` first.
    """
    padder = frames.check_size(source, session.size, size_mode)
    result = Result()
    stages = _Stages()
    to_model, to_writer = queue.Queue(QUEUED_BATCHES), queue.Queue(QUEUED_BATCHES)
    bar = tqdm(total=source.pair_count, unit="pair", desc="predict", disable=not progress)
    t0 = time.perf_counter()
    with bar, _maybe_video(video, fps or source.fps) as write_video:
        writer = _Writer(source, padder, output, png=png, write_video=write_video, gt_dir=gt_dir,
                         radius=radius, result=result, bar=bar)
        batches = _batches(source, padder, session.batch_size, session.size, png or bool(video))

        def read():
            for batch in batches:
                if not stages.put(to_model, batch):
                    return
            stages.put(to_model, _DONE)

        def write():
            while (item := stages.get(to_writer)) is not _DONE:
                (first, count, _, _, kept), flow = item
                for s in range(count):
                    writer.pair(first + s, flow[s], kept[s])

        threads = [stages.thread(read), stages.thread(write)]
        try:
            while (batch := stages.get(to_model)) is not _DONE:
                x1, x2 = (x.astype(dtype, copy=False) for x, (_, _, dtype) in zip(batch[2:4], session.inputs))
                outputs, ms = session.run([x1, x2])
                result.model_ms += ms
                stages.put(to_writer, (batch, outputs[0]))
            stages.put(to_writer, _DONE)
        except BaseException as e:
            stages.fail(e)
        for t in threads:
            t.join()
        if stages.error is not None:
            raise stages.error
    result.seconds = time.perf_counter() - t0
    return result


def _maybe_video(path, fps):
    return frames.video_writer(path, fps) if path else contextlib.nullcontext()

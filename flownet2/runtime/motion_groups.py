"""Motion scores of several clips in one stream of model runs: the sampled pairs of a group of clips go
to the model one after the other, so a batch holds pairs of several clips and only the group's last
batch is filled by repeating a pair (clip by clip, Open-Sora's 3 pairs a clip at batch 8 would run 5
repeats in every batch).

It applies to a motion-score run that writes no flow files, pictures or frames (runtime/collection.py's
Settings) with a model batch larger than 1: `group_size` clips a group, the model's batch. Each clip
keeps what the clip-by-clip run (collection.Worker.run) gives it: its lock, its folder cleared first,
the same per-pair arithmetic (predict.pair_writer: the flow brought back to the scored size, its sums,
the consistency mask when the model also runs backwards), the same marker written when its last pair
is in, so motion.csv does not depend on the grouping. A clip that cannot be decoded fails with its
reason and the rest of the group goes on; clips of another frame size (--new-short) run in a stream of
their own within the group. The model time of each batch is shared among its pairs.
"""
import contextlib
import os
import time
import types
from dataclasses import dataclass, field

from ..data import sampling
from ..fileio import atomic_save
from . import predict
from .outcomes import MARKER, Outcome, clear, hold, raise_unless_the_videos, reason
from .flow_model import frame_pairs, stream
from .jobs import Job


def applies(settings):
    """Whether a collection run may group its clips: motion scores, with no flow files, pictures or frames."""
    return settings.motion and not (settings.flow_files or settings.png or settings.rgb)


def group_size(worker):
    """Clips per group: the batch the worker's model runs (an .onnx or .om: its own; else --batch-size);
    1 (clip by clip) where grouping does not apply."""
    if not applies(worker.settings):
        return 1
    model = worker.model()
    if not model.engine.static:
        return worker.settings.batch_size or 1
    loads = worker.loads
    # a static model has one session whatever the frame size: opened here, counted by the next outcome
    size = worker.session(types.SimpleNamespace(frame_size=None)).batch_size
    worker.pending_loads += worker.loads - loads
    return size


def outcomes(jobs, worker):
    """The outcome of every job, in groups of group_size() clips (one-process runs); a finished clip is
    skipped at once, and the model opens when the first clip to score comes."""
    size, group = None, []
    for job in jobs:
        if not worker.settings.force and os.path.isfile(_marker(worker, job)):
            yield worker.run(job)  # skipped, as it says
            continue
        size = size or group_size(worker)
        if size == 1:
            yield worker.run(job)
            continue
        group.append(job)
        if len(group) == size:
            yield from worker.run_group(group)
            group = []
    if group:
        yield from worker.run_group(group)


def _marker(worker, job):
    return os.path.join(worker.settings.output, job.key, MARKER)


@dataclass
class _Clip:
    job: Job
    lock: contextlib.ExitStack
    source: object = None
    writer: object = None
    result: predict.Result = field(default_factory=predict.Result)
    # set by the thread reading the frames, read by the one running the model
    sent: int = 0  # pairs handed to the model
    ended: bool = False  # every pair sent, or the clip failed
    error: Exception | None = None  # what stopped its decoding
    back: int = 0  # pairs come back from the model
    outcome: Outcome | None = None


def run_group(worker, jobs):
    """[Outcome] of `jobs` (collection.Worker.run_group); what no clip is to blame for (the model, the
    output folder, an interrupt) escapes after clearing the clips not finished."""
    t0, loads = time.perf_counter(), worker.loads - worker.pending_loads  # the loads since the last outcome
    worker.pending_loads = 0
    held, done = [], {}
    try:
        for job in jobs:
            clip = _hold(worker, job)
            if isinstance(clip, Outcome):
                done[job.key] = clip
            else:
                held.append(clip)
        by_size = {}
        for clip in held:
            if _open(worker, clip):
                by_size.setdefault(clip.source.frame_size, []).append(clip)
        for clips in by_size.values():
            _run_clips(worker, clips, t0)
    finally:
        for clip in held:
            if clip.outcome is None:  # escaping: nothing half-done stays behind
                with contextlib.suppress(OSError):
                    clear(*_paths(worker, clip))
                _release(worker, clip)
    done.update((clip.job.key, clip.outcome) for clip in held)
    found = [done[job.key] for job in jobs]
    found[0].loads += worker.loads - loads - sum(o.loads for o in found)  # the clips run alone counted theirs
    return found


def _paths(worker, clip):
    folder = os.path.join(worker.settings.output, clip.job.key)
    return folder, os.path.join(folder, MARKER)


def _output(worker, clip):
    """The folder the clip's source names its pairs from (<video stem>/frame_0001), as Worker._predict's."""
    return os.path.dirname(_paths(worker, clip)[0])


def _hold(worker, job):
    """A _Clip holding the clip's lock, its folder cleared; or its Outcome (skipped, busy)."""
    held = hold(job, os.path.dirname(_marker(worker, job)), force=worker.settings.force)
    return held if isinstance(held, Outcome) else _Clip(job, held)


def _open(worker, clip):
    """Open the clip's sampled frames (its header is read); False when it failed (then recorded)."""
    s = worker.settings
    try:
        clip.source = sampling.open_clip(clip.job.video, s.sampling(), size=s.output_size,
                                         transpose_portrait=s.transpose_portrait)
        return True
    except Exception as e:  # noqa: BLE001 - the clip's own failure (what is not escapes from _fail)
        _fail(worker, clip, e)
        return False


def _run_clips(worker, clips, t0):
    """Score `clips` (frames of one size) in one stream of batches. Any other error than a clip's own
    decoding (the model's run, a frame the model cannot take) sends the clips not finished back to
    the clip-by-clip run, so that each failure is its own clip's."""
    session = worker.session(clips[0].source)  # ModelError: the run stops
    try:  # one frame size, one padder
        padder = worker.model().padder(clips[0].source.frame_size, session, name=clips[0].source.path)
    except Exception as e:  # noqa: BLE001 - pad mode and frames larger than the model: each clip's failure
        for clip in clips:
            _fail(worker, clip, e)
        return
    for clip in clips:
        clip.writer = predict.pair_writer(clip.source, padder, _output(worker, clip), worker.outputs,
                                          result=clip.result, weights=getattr(session, "label", None))
    try:
        _stream(worker, clips, session, padder, t0)
    except Exception as e:  # noqa: BLE001 - sorted below
        raise_unless_the_videos(e, worker.settings.output)
        for clip in clips:
            if clip.outcome is None:
                with contextlib.suppress(OSError):
                    clear(*_paths(worker, clip))
                _release(worker, clip)
                clip.outcome = worker.run(clip.job)


def _stream(worker, clips, session, padder, t0):
    tags = []  # (clip, pair index) of every pair sent, in order (the stream keeps the order)
    waiting = list(clips)  # not finished yet, in order
    outputs = worker.outputs
    pairs = _pairs(clips, tags)
    with contextlib.closing(stream(session, padder, pairs, two_way=outputs.two_way,
                                   keep_frames=outputs.keeps_frames)) as batches:
        for batch in batches:
            for s in range(batch.count):
                clip, i = tags[batch.first + s]
                clip.back += 1
                clip.result.model_ms += batch.ms / batch.count  # the batch's time shared among its pairs
                if clip.error is None:  # a clip that failed later is dropped when it closes
                    clip.writer.pair(i, batch.flow[s], None if batch.back is None else batch.back[s],
                                     batch.kept[s])
            _close_ended(worker, waiting, session, t0)
    _close_ended(worker, waiting, session, t0)
    if waiting:  # the stream ended: every clip must have ended
        raise RuntimeError(f"{len(waiting)} clip(s) of a group not finished at the end of its stream")


def _pairs(clips, tags):
    """The clips' consecutive sampled pairs, one clip after the other; a clip's decoding error is
    kept as its own (the next clip goes on). Runs in the stream's preparing thread."""
    for clip in clips:
        try:
            for i, pair in enumerate(frame_pairs(clip.source.frames())):
                tags.append((clip, i))
                clip.sent += 1
                yield pair
        except Exception as e:  # noqa: BLE001 - judged when the clip closes (collection.raise_unless_the_videos)
            clip.error = e
        clip.ended = True


def _close_ended(worker, waiting, session, t0):
    """Finish the clips whose pairs are all back, in order: a marker, or the clip's failure."""
    while waiting and waiting[0].ended and waiting[0].back == waiting[0].sent:
        clip = waiting.pop(0)
        if clip.error is not None:
            _fail(worker, clip, clip.error)
            continue
        marker = _paths(worker, clip)[1]
        try:
            predict.write_quality(clip.result, clip.source, _output(worker, clip), worker.outputs)
            atomic_save(marker, worker.marker(clip.job, clip.result, clip.source, session))
        except BaseException as e:  # noqa: BLE001 - as collection.Worker._run: nothing half-done stays
            _fail(worker, clip, e)
            continue
        source, result = clip.source, clip.result
        clip.outcome = Outcome(clip.job.key, clip.job.name, "done", pairs=result.pairs,
                               seconds=time.perf_counter() - t0, model_ms=result.model_ms, rotation=source.rotation,
                               model_size=tuple(session.size), decode_ms=1000 * source.decode_s)
        _release(worker, clip)


def _fail(worker, clip, error):
    """Record the clip's failure with its reason, its folder cleared; what is no clip's fault is raised."""
    with contextlib.suppress(OSError):  # a read-only folder cannot be cleared
        clear(*_paths(worker, clip))
    raise_unless_the_videos(error, worker.settings.output)
    clip.outcome = Outcome(clip.job.key, clip.job.name, "failed", reason=reason(error, clip.job))
    _release(worker, clip)


def _release(worker, clip):
    clip.lock.close()
    if clip.outcome is None or clip.outcome.status == "failed":
        with contextlib.suppress(OSError):
            os.rmdir(_paths(worker, clip)[0])  # only when empty: a failed clip leaves no folder

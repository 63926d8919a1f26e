"""What became of one video of a collection: its Outcome, its marker's name, the errors that stop a
whole run (the model, the output folder, an interrupt) against those that are one video's own, taking
a video's folder for a run (its lock) and clearing what a video left half-done. Shared by the
clip-by-clip run (collection.Worker) and the grouped motion-score run (motion_groups)."""
import contextlib
import os
import re
from dataclasses import dataclass

from ..errors import Flownet2Error
from ..fileio import folder_lock, output_fault, remove_temporaries
from . import predict

MARKER = ".flownet2_done.json"  # written last in a finished video's folder


class ModelError(Flownet2Error):
    """The model cannot be opened: not one video's fault, so the whole run stops."""


@dataclass
class Outcome:
    key: str
    name: str
    status: str  # done, skipped (finished before), busy (another run holds it), failed
    pairs: int = 0
    seconds: float = 0.0
    model_ms: float = 0.0
    reason: str = ""
    loads: int = 0  # models this worker opened for this job
    rotation: int = 0  # degrees the video's display matrix turned its frames
    model_size: tuple | None = None  # (height, width) the model ran at
    decode_ms: float = 0.0  # motion scores: time spent decoding and resizing the sampled frames


def raise_unless_the_videos(error, output):
    """Raise what no single video is to blame for, so the run stops: an interrupt, the model, the
    output folder; return for the rest (a decoder's or a model run's error), recorded as the video's."""
    if isinstance(error, ModelError) or not isinstance(error, Exception):
        raise error
    fault = output_fault(error, output)
    if fault is not None:
        raise fault from None


def clear(folder, marker):
    with contextlib.suppress(FileNotFoundError):
        os.remove(marker)
    predict.remove_video_outputs(folder)
    remove_temporaries(folder)


def reason(error, job):
    text = str(error) if isinstance(error, Flownet2Error) else f"{type(error).__name__}: {error}"
    text = text.replace(job.video + ": ", "").replace(job.video, "the video")
    text = re.sub(r"\[Errno -?\d+\] ", "", text)  # FFmpeg's error numbers say nothing to a reader
    return " ".join(text.split()) or type(error).__name__


def hold(job, folder, *, force=False):
    """Take a video's folder for a run: an ExitStack holding its lock (fileio.folder_lock), the folder
    cleared of what an earlier, unfinished run left; or the Outcome that says why not: skipped (its
    marker is there, unless `force`), busy (another run holds it)."""
    marker = os.path.join(folder, MARKER)
    if not force and os.path.isfile(marker):
        return Outcome(job.key, job.name, "skipped")
    lock = contextlib.ExitStack()
    try:
        lock.enter_context(folder_lock(folder, "another collection run"))
    except Flownet2Error:
        return Outcome(job.key, job.name, "busy")
    try:
        if not force and os.path.isfile(marker):  # finished while we waited for the lock
            lock.close()
            return Outcome(job.key, job.name, "skipped")
        clear(folder, marker)
    except BaseException:
        lock.close()
        raise
    return lock

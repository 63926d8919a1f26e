"""Flow for a video collection: a list of jobs (one video each), a worker that owns one opened model,
a marker written last per finished video.

The same `Worker.run(job)` serves one process (`run_jobs`), Slurm-style arrays (`shard`) and Ray
actors (`ray_pool`). A video is done only when `OUT/<key>/.flownet2_done.json` exists: it is written
(atomically) after every output file of that video is complete, so a run killed at any point is
resumed by running it again: finished videos are skipped, a half-done one is cleared and redone. A
per-video flock (fileio.folder_lock) keeps two runs into one output folder, on one machine or on
several sharing it, off the same video; a run that finds a video held skips it.
"""
import contextlib
import json
import os
import re
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from tqdm import tqdm

from .. import fileio
from ..data import frames
from ..data.flow_formats import DEFAULT_BOUND, FlowFormat
from ..errors import Flownet2Error, OutputError
from ..fileio import atomic_save, folder_lock, natural_sorted, output_fault, output_faults, remove_temporaries
from ..score import quality
from ..score.quality import ALPHA1, ALPHA2
from ..sizes import OutputSize, model_size
from . import predict
from .engines import choose, engine_for
from .outputs import Outputs

MARKER = ".flownet2_done.json"
SETTINGS_FILE = ".flownet2_collection.json"
LIST_EXTS = (".txt", ".lst", ".list")
SESSIONS_KEPT = 2  # PyTorch models are built per frame size; a mixed collection keeps the last two


class ModelError(Flownet2Error):
    """The model cannot be opened: not one video's fault, so the whole run stops."""


@dataclass(frozen=True)
class Job:
    video: str  # absolute path
    key: str  # output folder relative to OUT: the video's relative path without its extension
    name: str  # the video as the input names it (relative to the folder or the list)


@dataclass
class Settings:
    """What a worker needs (picklable, for Ray): the model, the output folder, how to write."""

    model: str
    output: str
    format: str = "flo"
    bound: float = DEFAULT_BOUND
    start_index: int = 1
    rgb: bool = False
    png: bool = False
    radius: float | None = None
    size_mode: str = "resize"
    batch_size: int | None = None
    backend: str = "auto"  # engines.choose decides, in each worker's process (a Ray worker: on its machine)
    precision: str | None = None  # None: the engine's fast path (engines.choose)
    device: int = 0
    force: bool = False
    step: int = 1  # pairs are frames (i, i + step)
    output_size: OutputSize = field(default_factory=OutputSize)
    backward: bool = False
    occlusion: bool = False
    quality: bool = False
    occ_alpha1: float = ALPHA1
    occ_alpha2: float = ALPHA2
    streams: int | str = "auto"  # OpenVINO's requests in flight; a speed setting, not in record(): markers say it

    def flow_format(self):
        return FlowFormat(self.format, bound=self.bound, start_index=self.start_index)

    def outputs(self):
        """What each video's prediction writes (no ground truth or flow video in a collection)."""
        return Outputs(fmt=self.flow_format(), png=self.png, rgb=self.rgb, radius=self.radius, size=self.output_size,
                       **{k: getattr(self, k) for k in CHECKS})

    def record(self):
        """What the files depend on, beside the weights (recorded per video): a rerun must match it."""
        kept = ("format", "bound", "start_index", "rgb", "png", "size_mode", "backend", "precision", "step", *CHECKS)
        return {**{k: getattr(self, k) for k in kept}, **self.output_size.record()}


CHECKS = ("backward", "occlusion", "quality", "occ_alpha1", "occ_alpha2")  # flow checked without ground truth
# what a settings file written before a setting existed meant by its absence
_RECORD_DEFAULTS = Settings(model="", output="").record()


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


# ------------------------------------------------------------------------------------------ jobs

def find_jobs(path):
    """(jobs, one line saying what was found) for a folder tree of videos or a list file; None for
    anything else (two images, a folder of frames, one video: today's single source)."""
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.splitext(path)[1].lower() in LIST_EXTS:
        jobs = _list_jobs(path)
        return jobs, f"a list of {len(jobs)} video(s) ({path})"
    if not os.path.isdir(path):
        return None
    top = [f for f in os.listdir(path) if os.path.splitext(f)[1].lower() in frames.IMAGE_EXTS
           and not frames.is_hidden(f)]
    if len(top) >= 2:
        return None  # a folder of frames keeps its meaning
    videos, loops = _tree_videos(path)
    if not videos:
        return None
    jobs = _jobs([os.path.relpath(v, path) for v in videos], os.path.abspath(path), path)
    subfolders = len({os.path.dirname(j.key) for j in jobs})
    skipped = f"; {loops} folder link(s) back into the tree not followed" if loops else ""
    return jobs, f"a folder tree of {len(jobs)} video(s) in {subfolders} folder(s) ({path}){skipped}"


def _tree_videos(path):
    """(videos by their path in the tree, links skipped): folder links are followed, except one to a
    folder above it (by real path), which would loop; hidden files and folders are skipped."""
    videos, loops = [], 0
    above = {path: (os.path.realpath(path),)}  # each folder: the real paths from the top down to it
    for folder, dirs, files in os.walk(path, followlinks=True):
        kept = []
        for d in dirs:
            if frames.is_hidden(d):
                continue
            real = os.path.realpath(os.path.join(folder, d))
            if real in above[folder]:
                loops += 1
                continue
            above[os.path.join(folder, d)] = above[folder] + (real,)
            kept.append(d)
        dirs[:] = kept
        videos += [os.path.join(folder, f) for f in files
                   if os.path.splitext(f)[1].lower() in frames.VIDEO_EXTS and not frames.is_hidden(f)]
    return videos, loops


def _list_jobs(list_path):
    """One video a line, relative to the list's folder (absolute paths as they are); blank lines and
    lines starting with # are skipped; UTF-8 with or without a byte-order mark, LF or CRLF. Output
    keys: the path relative to the list's folder."""
    base = os.path.dirname(os.path.abspath(list_path))
    try:  # utf-8-sig: a byte-order mark (Windows editors) is not part of the first line; CRLF or LF
        with open(list_path, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f]
    except UnicodeDecodeError as e:
        raise Flownet2Error(f"{list_path}: not UTF-8 text (byte {e.start}); save the list as UTF-8") from None
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise Flownet2Error(f"{list_path}: no video paths in the list")
    outside = [n for n in names if os.path.relpath(os.path.join(base, n), base).startswith("..")]
    if outside:
        raise Flownet2Error(f"{list_path}: {outside[0]} is outside the list's folder, so it has no place "
                            "under the output folder; list paths below the list's folder")
    return _jobs(names, base, list_path)


def _jobs(names, base, where):
    seen, jobs = {}, []
    for name in dict.fromkeys(names):  # a video listed twice runs once
        video = os.path.normpath(os.path.join(base, name))
        key = os.path.splitext(os.path.relpath(video, base))[0].replace(os.sep, "/")
        if key in seen:
            raise Flownet2Error(f"{where}: {name} and {seen[key]} would write into one folder ({key}); "
                                "rename one")
        seen[key] = name
        jobs.append(Job(video, key, name))
    order = {k: i for i, k in enumerate(natural_sorted([j.key for j in jobs]))}
    return sorted(jobs, key=lambda j: order[j.key])


def parse_shard(text):
    """'I/N' -> (I, N), 1 <= I <= N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise Flownet2Error(f"shard must look like I/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= i <= n:
        raise Flownet2Error(f"shard {text}: I must be between 1 and N")
    return i, n


def shard(jobs, i, n):
    """Shard i of n (1-based) of the sorted jobs: every n-th, so each shard gets a mix of folders."""
    return jobs[i - 1::n]


def check_inputs_kept(settings, path, jobs, shard_spec=None):
    """Refuse an output folder that is or lies inside the folder tree read (`path`), or files this
    run writes that are its inputs: nothing is written over a video or the list, `force` or not."""
    fileio.check_inputs_kept(
        settings.output, read_folders=[path] if os.path.isdir(path) else [],
        inputs=[j.video for j in jobs] + ([] if os.path.isdir(path) else [path]),
        writes=[os.path.join(settings.output, SETTINGS_FILE), failed_list_path(settings.output, shard_spec)])


def check_settings(settings):
    """The output folder's settings must match this run's (or --force): one folder, one format."""
    path = os.path.join(settings.output, SETTINGS_FILE)
    record = settings.record()
    if os.path.isfile(path) and not settings.force:
        with open(path, encoding="utf-8") as f:
            old = {**_RECORD_DEFAULTS, **json.load(f)}
        if old != record:
            diff = ", ".join(f"{k} {old.get(k)!r} (now {record.get(k)!r})" for k in dict.fromkeys([*record, *old])
                             if old.get(k) != record.get(k))
            raise Flownet2Error(f"{settings.output}: made with {diff}; use the same settings, another "
                                "folder, or --force to redo every video")
    with output_faults(settings.output):  # an output that cannot take files: refused before any model opens
        os.makedirs(settings.output, exist_ok=True)
        atomic_save(path, (json.dumps(record, indent=1) + "\n").encode())


# ---------------------------------------------------------------------------------------- worker

class Worker:
    """Runs jobs with one opened model (per frame size for PyTorch, which builds for one size)."""

    def __init__(self, settings, opener=None):
        from .sessions import open_model

        self.settings, self.opener = settings, opener or open_model
        self.outputs = settings.outputs()
        self.sessions = OrderedDict()
        self.loads = 0
        self.chosen = None

    def engine(self):
        """(engine name, precision) this worker runs, chosen once in its own process (engines.choose)."""
        if self.chosen is None:
            s = self.settings
            try:
                self.chosen = choose(s.model, s.backend, s.precision)
            except Flownet2Error as e:
                raise ModelError(str(e)) from None
        return self.chosen

    def session(self, source):
        backend, precision = self.engine()
        # a static model has one input size, whatever the frames
        key = None if engine_for(self.settings.model, backend).static else model_size(*source.size)
        if key not in self.sessions:
            s = self.settings
            try:
                self.sessions[key] = self.opener(s.model, backend=backend, batch_size=s.batch_size, size=key,
                                                 precision=precision, device=s.device, streams=s.streams)
            except Exception as e:  # noqa: BLE001 - any backend's load error stops the run, in one line
                raise ModelError(str(e) if isinstance(e, Flownet2Error) else f"{s.model}: {type(e).__name__}: {e}") \
                    from None
            if s.batch_size is not None and self.sessions[key].batch_size != s.batch_size:
                raise ModelError(f"{s.model}: the model runs batches of {self.sessions[key].batch_size}, "
                                 f"not {s.batch_size}")
            self.loads += 1
            while len(self.sessions) > SESSIONS_KEPT:
                self.sessions.popitem(last=False)
        self.sessions.move_to_end(key)
        return self.sessions[key]

    def run(self, job):
        """Outcome of one video. What is no video's fault escapes, after clearing its partial files: an
        interrupt (Ctrl-C), the model (ModelError), the output folder (OutputError: full, read-only...)."""
        with output_faults(self.settings.output):
            return self._run(job)

    def _run(self, job):
        folder = os.path.join(self.settings.output, job.key)
        marker = os.path.join(folder, MARKER)
        force = self.settings.force
        if not force and os.path.isfile(marker):
            return Outcome(job.key, job.name, "skipped")
        loads = self.loads
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(folder_lock(folder, "another collection run"))
            except Flownet2Error:
                return Outcome(job.key, job.name, "busy")
            if not force and os.path.isfile(marker):  # finished while we waited for the lock
                return Outcome(job.key, job.name, "skipped")
            _clear(folder, marker)
            try:
                result, label, rotation, streams = self._predict(job, folder)
                backend, precision = self.engine()
                record = {"video": job.name, "pairs": result.pairs, "weights": label, **self.settings.record(),
                          "engine": {"name": backend, "precision": precision, "streams": streams},
                          **({"scores": result.quality} if result.quality is not None else {})}
                atomic_save(marker, (json.dumps(record, indent=1) + "\n").encode())
                failure = None
            except BaseException as e:  # noqa: BLE001 - nothing half-done stays behind, whatever stopped it
                with contextlib.suppress(OSError):  # a read-only folder cannot be cleared
                    _clear(folder, marker)
                _raise_unless_the_videos(e, self.settings.output)
                failure = Outcome(job.key, job.name, "failed", reason=_reason(e, job), loads=self.loads - loads)
        if failure is not None:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when empty: a failed video leaves no folder for a reader to count
            return failure
        return Outcome(job.key, job.name, "done", pairs=result.pairs, seconds=time.perf_counter() - t0,
                       model_ms=result.model_ms, loads=self.loads - loads, rotation=rotation)

    def _predict(self, job, folder):
        s = self.settings
        source = frames.open_source([job.video], step=s.step)
        if source.kind != "video":
            raise Flownet2Error(f"{job.video}: not a video")
        session = self.session(source)
        output = os.path.dirname(folder)  # the source names its pairs <video stem>/frame_0001
        result = predict.predict(session, source, output=output, outputs=self.outputs, size_mode=s.size_mode,
                                 progress=False)
        return result, getattr(session, "label", None), source.rotation, getattr(session, "streams", 1)


def _raise_unless_the_videos(error, output):
    """Raise what no single video is to blame for, so the run stops: an interrupt, the model, the
    output folder; return for the rest (a decoder's or a model run's error), recorded as the video's."""
    if isinstance(error, ModelError) or not isinstance(error, Exception):
        raise error
    fault = output_fault(error, output)
    if fault is not None:
        raise fault from None


def _clear(folder, marker):
    with contextlib.suppress(FileNotFoundError):
        os.remove(marker)
    predict.remove_video_outputs(folder)
    remove_temporaries(folder)


def _reason(error, job):
    text = str(error) if isinstance(error, Flownet2Error) else f"{type(error).__name__}: {error}"
    text = text.replace(job.video + ": ", "").replace(job.video, "the video")
    text = re.sub(r"\[Errno -?\d+\] ", "", text)  # FFmpeg's error numbers say nothing to a reader
    return " ".join(text.split()) or type(error).__name__


# ----------------------------------------------------------------------------------- the run

@dataclass
class Tally:
    """Outcomes as they arrive: the progress bar, the failed list (rewritten atomically), the summary."""

    total: int
    failed_path: str
    counts: dict = field(default_factory=lambda: {"done": 0, "skipped": 0, "busy": 0, "failed": 0})
    failures: list = field(default_factory=list)
    pairs: int = 0
    model_ms: float = 0.0
    loads: int = 0
    rotated: int = 0  # videos turned to display orientation by their display matrix
    t0: float = field(default_factory=time.perf_counter)
    bar: object = None

    def __post_init__(self):
        self.bar = tqdm(total=self.total, unit="video", desc="videos", file=sys.stderr)
        if os.path.exists(self.failed_path):
            os.remove(self.failed_path)  # an older run's list: the videos in it are tried again now

    def add(self, outcome):
        self.counts[outcome.status] += 1
        self.pairs += outcome.pairs
        self.model_ms += outcome.model_ms
        self.loads += outcome.loads
        self.rotated += bool(outcome.rotation)
        if outcome.status == "failed":
            self.failures.append(outcome)
            lines = "".join(f"{o.name}\t{o.reason}\n" for o in sorted(self.failures, key=lambda o: o.key))
            with output_faults(os.path.dirname(self.failed_path)):
                atomic_save(self.failed_path, lines.encode())
            tqdm.write(f"failed: {outcome.name}: {outcome.reason}", file=sys.stderr)
        elapsed = time.perf_counter() - self.t0
        self.bar.set_postfix_str(f"{self.pairs / elapsed:.2f} pairs/s, {self.counts['failed']} failed", refresh=False)
        self.bar.update(1)

    def close(self):
        self.bar.close()

    def summary(self):
        c, seconds = self.counts, time.perf_counter() - self.t0
        held = f", {c['busy']} held by another run" if c["busy"] else ""
        lines = [(f"videos: {c['done']} done, {c['skipped']} skipped (finished before), {c['failed']} failed"
                  f"{held} of {self.total}"),
                 (f"pairs: {self.pairs} computed in {seconds:.1f} s, {self.pairs / seconds:.2f} pairs/s; "
                  f"model busy {self.model_ms / 1000:.1f} s; model opened {self.loads} time(s)")]
        if self.rotated:
            lines.append(f"{self.rotated} video(s) turned to display orientation by their display matrix")
        if self.failures:
            lines.append(f"failed videos and their reasons: {self.failed_path}")
        return lines


def failed_list_path(output, shard_spec=None):
    return os.path.join(output, "failed.txt" if shard_spec is None else f"failed.shard-{shard_spec[0]}-of-{shard_spec[1]}.txt")


def quality_table_path(output, shard_spec=None):
    return os.path.join(output, "quality.csv" if shard_spec is None else
                        f"quality.shard-{shard_spec[0]}-of-{shard_spec[1]}.csv")


def write_quality_table(jobs, output, *, shard_spec=None):
    """The collection's quality.csv, a row per finished video of `jobs` (this run's or an earlier
    one's), from the scores in its marker; returns (its path, videos with a flagged pair, videos)."""
    summaries = {}
    for job in jobs:
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            with open(os.path.join(output, job.key, MARKER), encoding="utf-8") as f:
                summaries[job.key] = json.load(f)["scores"]
    path = quality_table_path(output, shard_spec)
    quality.write_collection_table(path, summaries)
    return path, sum(bool(s["flagged"]) for s in summaries.values()), len(summaries)


def run_jobs(jobs, worker, tally):
    """The one-process loop; Ctrl-C drops the current video (its files cleared) and says how to resume."""
    try:
        for job in jobs:
            tally.add(worker.run(job))
    except OutputError:
        tally.close()
        raise
    except KeyboardInterrupt:
        tally.close()
        print(f"interrupted: {tally.counts['done']} video(s) finished in this run are kept; the one in "
              "progress was cleared. Run the same command again to resume (finished videos are skipped).",
              file=sys.stderr)
        raise
    tally.close()
    return tally


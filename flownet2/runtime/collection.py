"""Flow for a video collection: a list of jobs (one video each, runtime/jobs.py), a worker that owns one model,
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
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from .. import fileio
from ..data import frames, sampling
from ..data.flow_formats import DEFAULT_BOUND, FlowFormat
from ..errors import Flownet2Error, OutputError
from ..fileio import atomic_save, output_faults
from ..score import motion, quality
from ..score.quality import ALPHA1, ALPHA2
from ..sizes import OutputSize
from . import predict
from .flow_model import FlowModel
from .jobs import Job, find_jobs, parse_shard, shard  # noqa: F401 - a collection's jobs (runtime/jobs.py)
from .motion_groups import applies, outcomes, run_group
from .outcomes import MARKER, ModelError, Outcome, clear, hold, raise_unless_the_videos, reason  # noqa: F401
from .outputs import Outputs

SETTINGS_FILE = ".flownet2_collection.json"


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
    motion: bool = False  # motion scores of sampled frames (data/sampling.py) in each marker
    sample_fps: float | None = None  # the sampling rule: a rate, or ...
    sample_frames: tuple | None = None  # ... frame indices
    transpose_portrait: bool = False
    flow_files: bool = True  # the flow files (a motion run writes none unless asked)

    def sampling(self):
        return sampling.Sampling(fps=self.sample_fps, indices=self.sample_frames)
    streams: int | str = "auto"  # OpenVINO's requests in flight; a speed setting, not in record(): markers say it

    def flow_format(self):
        return FlowFormat(self.format, bound=self.bound, start_index=self.start_index)

    def outputs(self):
        """What each video's prediction writes (no ground truth or flow video in a collection)."""
        return Outputs(fmt=self.flow_format(), png=self.png, rgb=self.rgb, radius=self.radius, size=self.output_size,
                       flow=self.flow_files, motion=self.motion, **{k: getattr(self, k) for k in CHECKS})

    def record(self):
        """What the files depend on, beside the weights (recorded per video): a rerun must match it."""
        kept = ("format", "bound", "start_index", "rgb", "png", "size_mode", "backend", "precision", "step", *CHECKS,
                "motion", "sample_fps", "transpose_portrait", "flow_files")
        frames_list = None if self.sample_frames is None else list(self.sample_frames)  # as JSON reads it back
        return {**{k: getattr(self, k) for k in kept}, "sample_frames": frames_list, **self.output_size.record()}


CHECKS = ("backward", "occlusion", "quality", "occ_alpha1", "occ_alpha2")  # flow checked without ground truth
# what a settings file written before a setting existed meant by its absence
_RECORD_DEFAULTS = Settings(model="", output="").record()


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
            old = json.load(f)
        # a folder from before `flow_at` existed ran the model at the source's size
        old = {**_RECORD_DEFAULTS, "flow_at": "source" if old.get("new_short") or old.get("new_size") else None,
               **old}
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
    """Runs jobs with one model (flow_model.FlowModel: a session per model size, the last few kept)."""

    def __init__(self, settings, opener=None):
        self.settings, self.opener = settings, opener
        self.outputs = settings.outputs()
        self._model = None
        self.pending_loads = 0  # loads no outcome has counted yet (motion_groups.group_size opens the model)

    def model(self):
        """The FlowModel this worker runs, made once in its own process (a Ray worker: on its machine)."""
        if self._model is None:
            s = self.settings
            try:
                self._model = FlowModel(s.model, backend=s.backend, precision=s.precision, device=s.device,
                                        batch_size=s.batch_size, size_mode=s.size_mode, streams=s.streams,
                                        opener=self.opener)
            except Flownet2Error as e:
                raise ModelError(str(e)) from None
        return self._model

    @property
    def loads(self):
        return 0 if self._model is None else self._model.loads

    def engine(self):
        """(engine name, precision) this worker runs (engines.choose)."""
        return self.model().backend, self.model().precision

    def session(self, source):
        model = self.model()
        try:
            return model.session(source.frame_size, source_size=getattr(source, "size", None))
        except Exception as e:  # noqa: BLE001 - any backend's load error stops the run, in one line
            raise ModelError(str(e) if isinstance(e, Flownet2Error) else f"{model.model}: {type(e).__name__}: {e}") \
                from None

    def run(self, job):
        """Outcome of one video. What is no video's fault escapes, after clearing its partial files: an
        interrupt (Ctrl-C), the model (ModelError), the output folder (OutputError: full, read-only...)."""
        with output_faults(self.settings.output):
            outcome = self._run(job)
        outcome.loads, self.pending_loads = outcome.loads + self.pending_loads, 0
        return outcome

    def _run(self, job):
        folder = os.path.join(self.settings.output, job.key)
        marker = os.path.join(folder, MARKER)
        loads = self.loads
        t0 = time.perf_counter()
        held = hold(job, folder, force=self.settings.force)
        if isinstance(held, Outcome):  # skipped or busy
            return held
        with held:
            try:
                result, source, session = self._predict(job, folder)
                model_size = tuple(session.size)
                atomic_save(marker, self.marker(job, result, source, session))
                failure = None
            except BaseException as e:  # noqa: BLE001 - nothing half-done stays behind, whatever stopped it
                with contextlib.suppress(OSError):  # a read-only folder cannot be cleared
                    clear(folder, marker)
                raise_unless_the_videos(e, self.settings.output)
                failure = Outcome(job.key, job.name, "failed", reason=reason(e, job), loads=self.loads - loads)
        if failure is not None:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when empty: a failed video leaves no folder for a reader to count
            return failure
        return Outcome(job.key, job.name, "done", pairs=result.pairs, seconds=time.perf_counter() - t0,
                       model_ms=result.model_ms, loads=self.loads - loads, rotation=source.rotation,
                       model_size=model_size, decode_ms=1000 * getattr(source, "decode_s", 0.0))

    def marker(self, job, result, source, session):
        """The bytes of a finished video's marker: what it was made with, its scores."""
        backend, precision = self.engine()
        record = {"video": job.name, "pairs": result.pairs, "weights": getattr(session, "label", None),
                  **self.settings.record(),
                  "engine": {"name": backend, "precision": precision, "streams": getattr(session, "streams", 1)},
                  **({"scores": result.quality} if result.quality is not None else {}),
                  **({"motion": motion.clip_record(result.motion, source, model_ms=result.model_ms)}
                     if result.motion is not None else {})}
        return (json.dumps(record, indent=1) + "\n").encode()

    def run_group(self, jobs):
        """Outcomes of several clips' motion scores, their pairs run in one stream of batches
        (runtime/motion_groups.py); the same markers, failures and locks as run() gives each."""
        with output_faults(self.settings.output):
            return run_group(self, jobs)

    def _predict(self, job, folder):
        s = self.settings
        if s.motion:  # the sampled frames, at the size they are scored at
            source = sampling.open_clip(job.video, s.sampling(), size=s.output_size,
                                        transpose_portrait=s.transpose_portrait)
        else:
            source = frames.open_source([job.video], step=s.step, size=s.output_size)
        if source.kind != "video":
            raise Flownet2Error(f"{job.video}: not a video")
        session = self.session(source)
        output = os.path.dirname(folder)  # the source names its pairs <video stem>/frame_0001
        result = predict.predict(session, source, output=output, outputs=self.outputs, size_mode=s.size_mode,
                                 progress=False)
        return result, source, session


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
    decode_ms: float = 0.0
    loads: int = 0
    rotated: int = 0  # videos turned to display orientation by their display matrix
    model_sizes: set = field(default_factory=set)  # every (height, width) the model ran at
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
        self.decode_ms += outcome.decode_ms
        self.loads += outcome.loads
        self.rotated += bool(outcome.rotation)
        if outcome.model_size is not None:
            self.model_sizes.add(outcome.model_size)
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
                  f"model busy {self.model_ms / 1000:.1f} s; model opened {self.loads} time(s)"
                  f"{_sizes_note(self.model_sizes)}")]
        if self.rotated:
            lines.append(f"{self.rotated} video(s) turned to display orientation by their display matrix")
        if self.failures:
            lines.append(f"failed videos and their reasons: {self.failed_path}")
        return lines


def _sizes_note(sizes):
    if not sizes:
        return ""
    listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
    return f" for {len(sizes)} model size(s) ({listed})" if len(sizes) <= 4 else f" for {len(sizes)} model sizes"


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
    """The one-process loop; Ctrl-C drops the current video (its files cleared) and says how to resume.
    Motion scores at a model batch above 1 run clips in groups (runtime/motion_groups.py)."""
    try:

        for outcome in outcomes(jobs, worker) if applies(worker.settings) else map(worker.run, jobs):
            tally.add(outcome)
    except OutputError:
        tally.close()
        raise
    except KeyboardInterrupt:
        tally.close()
        print(f"interrupted: {tally.counts['done']} video(s) finished in this run are kept; the one(s) in "
              "progress were cleared. Run the same command again to resume (finished videos are skipped).",
              file=sys.stderr)
        raise
    tally.close()
    return tally


"""Sampled frames of a video clip, for motion scores: which frames (a sampling rule), decoded without
keeping the clip, seeking where the container allows it, yielded at the size they are scored at.

Two rules, as the curation pipelines people copy use them:
- every `fps`-th of a second (data-juicer's video_motion_score_filter): step = round(clip fps / fps)
  (Python's round, as data-juicer's), at least 1 and at most frames - 1 (a clip that does not say how
  many frames it has: its last frame stands in for a second sample past its end); samples 0, step,
  2 step... up to the last frame.
- fixed `indices` (Open-Sora's optical-flow scoring: 0, 10, 20, 30): a clip shorter than the last
  index uses the indices it has and then its last frame, once (Open-Sora repeats the last frame for
  each missing index, which scores a frame against itself; that zero pair is left out here) and
  reads as short.
Pairs are consecutive samples. A frame's index is its presentation time times the clip's frame rate
(exact for a constant-rate clip), so a seek lands on the same frame a full decode would count.

Seeking: the next sample more than SEEK_GAP frames ahead is reached by a seek to the keyframe before
it, then decoding up to it. A seek that lands where the decoder already was (keyframes further apart
than the samples) saves nothing: the clip is decoded straight through from then on.
"""
import os
import time
from dataclasses import dataclass, field
from fractions import Fraction

from ..errors import Flownet2Error
from ..sizes import OutputSize
from . import decode, frames

SEEK_GAP = 8  # frames: a shorter way ahead is decoded, not sought


@dataclass(frozen=True)
class Sampling:
    """A sampling rule: `fps` (samples per second of the clip) or `indices` (0-based frame numbers)."""

    fps: float | None = None
    indices: tuple | None = None

    def __post_init__(self):
        if (self.fps is None) == (self.indices is None):
            raise Flownet2Error("a sampling rule is a sampling rate or a list of frame indices, one of them")
        if self.fps is not None and not self.fps > 0:
            raise Flownet2Error(f"the sampling rate must be positive, got {self.fps}")
        if self.indices is not None:
            ind = list(self.indices)
            if len(ind) < 2 or any(i < 0 for i in ind) or any(b <= a for a, b in zip(ind, ind[1:])):
                raise Flownet2Error(f"frame indices must be two or more increasing numbers from 0, got {ind}")

    def step(self, clip_fps, frame_count=None):
        """The sampling step in frames (the rate rule), as data-juicer takes it."""
        step = max(round(float(clip_fps) / self.fps), 1)
        return max(min(step, frame_count - 1), 1) if frame_count else step

    def plan(self, clip_fps, frame_count=None):
        """The indices to sample, as far as the header tells: a generator, endless for the rate rule
        when the clip does not say how many frames it has (then the end of the clip ends it)."""
        if self.indices is not None:
            return iter(self.indices)
        step = self.step(clip_fps, frame_count)
        return iter(range(0, frame_count, step)) if frame_count else _count(step)

    def record(self):
        return {"sample_fps": self.fps, "sample_frames": None if self.indices is None else list(self.indices)}


def _count(step):
    n = 0
    while True:
        yield n
        n += step


def parse_indices(text):
    """"0,10,20,30" -> (0, 10, 20, 30)."""
    try:
        indices = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        raise Flownet2Error(f"frame indices must look like 0,10,20,30, got {text!r}") from None
    Sampling(indices=indices)  # checked
    return indices


@dataclass
class SampledClip:
    """A frame source (the interface predict.predict reads from frames.FrameSource) of a clip's
    sampled frames, at `size` = `frame_size`, the size they are scored at. After frames() has run,
    `used` lists the indices it yielded, `short` says whether the clip ended before the rule's last
    index, and `decode_s` is the time spent decoding and resizing."""

    path: str
    size: tuple  # (height, width) the frames are yielded and scored at
    sampling: Sampling
    display_size: tuple  # (height, width) of the clip as displayed (its rotation applied)
    fps: Fraction
    frame_count: int | None  # from the header; None where it does not say
    rotation: int = 0
    transposed: bool = False  # a portrait clip turned landscape by swapping its axes (Open-Sora)
    kind: str = "video"
    files: list | None = None
    step: int = 1
    used: list = field(default_factory=list)
    short: bool = False
    decode_s: float = 0.0
    decoded: int = 0  # frames the decoder gave (sought past frames are not decoded)
    seeks: int = 0

    @property
    def frame_size(self):
        return self.size

    @property
    def orientation_note(self):
        notes = [f"rotated {self.rotation} degrees counter-clockwise by the video's display matrix"] \
            if self.rotation else []
        return "; ".join(notes + (["portrait, transposed"] if self.transposed else []))

    @property
    def pair_count(self):
        if self.frame_count is None:
            return None
        planned = [i for i in self.sampling.plan(self.fps, self.frame_count) if i < self.frame_count]
        short = self.sampling.indices is not None and self.sampling.indices[-1] >= self.frame_count
        return len(planned) - 1 + (short and planned[-1] != self.frame_count - 1)

    def pair_name(self, i):
        """<clip stem>/frame_NNNN named after the pair's first frame (1-based, as a full run names it)."""
        first = self.used[i] if i < len(self.used) else i  # a pair is written after its frames are read
        return os.path.join(os.path.splitext(os.path.basename(self.path))[0], f"frame_{first + 1:04d}")

    def frames(self):
        """Yield the sampled frames, RGB as displayed (transposed if so), at `size`."""
        self.used, self.short, self.decode_s, self.decoded, self.seeks = [], False, 0.0, 0, 0
        t0 = time.perf_counter()
        for index, frame in self._decoded():
            frame = decode.rotate(frames.video_rgb(frame), self.rotation)
            if self.transposed:
                frame = frame.swapaxes(0, 1)
            frame = frames.resize_frame(frame, self.size, antialias=True)
            self.used.append(index)
            self.decode_s += time.perf_counter() - t0
            yield frame
            t0 = time.perf_counter()
        self.decode_s += time.perf_counter() - t0
        if len(self.used) < 2:
            raise Flownet2Error(f"{self.path}: {len(self.used)} frame(s) sampled, need at least 2")

    def _decoded(self):
        """(index, PyAV frame) of every sample; the last frame for indices past the end."""
        av = frames.require_av()
        try:
            with av.open(self.path) as container:
                yield from _Seeker(self, container).samples()
        except (av.FFmpegError, OSError, ValueError) as e:
            raise Flownet2Error(f"{self.path}: cannot decode ({e})") from None


class _Seeker:
    """Frames of one stream by index, decoding forward and seeking ahead when that saves decoding."""

    def __init__(self, clip, container):
        self.clip, self.container = clip, container
        self.stream = container.streams.video[0]
        self.stream.thread_type = "AUTO"
        self.start = self.stream.start_time or 0
        self.decoding = None  # the decoder's frames from where it stands
        self.last = None  # (index, frame) last decoded
        self.seeking = True
        self.counted = 0  # frames the decoder gave since the start (right while it has not sought)

    def index(self, frame):
        """The frame's number from its time; without a timestamp (some AVI files) by counting, and
        then never seeking (a count is only right from the start)."""
        if frame.pts is None:
            self.seeking = False
            return self.counted - 1
        return round((frame.pts - self.start) * self.stream.time_base * self.clip.fps)

    def samples(self):
        clip = self.clip
        for target in clip.sampling.plan(clip.fps, clip.frame_count):
            found = self.frame_at(target)
            if found is None:  # the clip ended before the target: its last frame closes the samples
                # where the rule asked for more (indices), or where a clip that does not say its length
                # had one sample only (a step of at most frames - 1, as the rate rule takes it)
                clip.short = clip.sampling.indices is not None
                last = self.last is not None and (not clip.used or self.last[0] > clip.used[-1])
                if last and (clip.short or len(clip.used) == 1):
                    yield self.last
                return
            yield found

    def frame_at(self, target):
        """(index, frame) of the first frame at or after `target`; None at the end of the clip."""
        ahead = target - (self.last[0] + 1 if self.last else 0)
        if self.seeking and ahead > SEEK_GAP:
            self.seek(target)
        for frame in self.decoder():
            self.clip.decoded += 1
            self.counted += 1
            self.last = (self.index(frame), frame)
            if self.last[0] >= target:
                return self.last
        return None

    def decoder(self):
        if self.decoding is None:
            self.decoding = self.container.decode(self.stream)
        return self.decoding

    def seek(self, target):
        """Seek to the keyframe at or before `target`; stop seeking when it lands no further ahead."""
        was = self.last[0] if self.last else -1
        pts = self.start + int(Fraction(target) / self.clip.fps / self.stream.time_base)
        self.container.seek(pts, stream=self.stream, backward=True, any_frame=False)
        self.clip.seeks += 1
        self.decoding = self.container.decode(self.stream)
        first = next(self.decoding, None)
        if first is None:
            self.decoding = iter(())
            return
        index = self.index(first)
        if index <= was:  # keyframes are further apart than the samples: decode straight through
            self.seeking = False
        if index > target:  # the container cannot land before the target: start again and decode
            self.container.seek(self.start, stream=self.stream, backward=True, any_frame=False)
            self.decoding, self.seeking = self.container.decode(self.stream), False
            return
        self.decoding = _chain(first, self.decoding)


def _chain(first, rest):
    yield first
    yield from rest


def open_clip(path, sampling, *, size=None, transpose_portrait=False):
    """A SampledClip of the video at `path`: its header read and its first two frames decoded (a file
    that cannot give two is refused now); `size` (an OutputSize) says the scored size, from the clip's
    displayed size (transposed first, with `transpose_portrait`, when it is portrait)."""
    info = frames.open_source([path])
    if info.kind != "video":
        raise Flownet2Error(f"{path}: not a video")
    h, w = info.size
    transposed = transpose_portrait and h > w
    shown = (w, h) if transposed else (h, w)
    scored = (size or OutputSize()).of(shown)
    return SampledClip(info.path, tuple(scored), sampling, display_size=info.size, fps=Fraction(info.fps),
                       frame_count=info.frame_count, rotation=info.rotation, transposed=transposed)

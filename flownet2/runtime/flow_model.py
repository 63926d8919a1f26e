"""A FlowNet2 model opened once for frames of any size, and the arithmetic of a pair that every caller
shares (Flownet2_predict.py, collections and the Python API alike, so they cannot drift apart).

    model = FlowModel("stand-in:0")                 # the engine chosen as predict chooses (engines.choose)
    session = model.session((436, 1024))            # opened for frames of that size, kept for the next call
    padder = model.padder((436, 1024), session, name="clip.mp4")
    for batch in stream(session, padder, pairs):    # pairs: an iterable of (frame, frame)
        flows = [flow_back(padder, f, (436, 1024)) for f in batch.flow[:batch.count]]

A pair's arithmetic: both frames normalised together (images.normalise_pair), brought to the model's
size (pad, or bilinear resize: the size mode), run in batches of the model's batch size (a short last
batch filled with its last pair), and the flow brought back to the size asked for with u and v scaled
to its pixels (images.InputPadder.unpad).

A checkpoint or stand-in is built (PyTorch) or converted (OpenVINO) for one input size, the next
multiples of 64 of the frames': its sessions are kept per model size, the last SESSIONS_KEPT of them,
so a loop over mixed sizes does not convert every call. An .onnx or .om has one size for all frames.
"""
import collections
import os
import queue
import threading
from dataclasses import dataclass

import numpy as np

from ..data import images
from ..errors import Flownet2Error
from ..sizes import model_size
from .engines import choose, describe, engine_for, streams_for
from .sessions import run_stream

SESSIONS_KEPT = 3  # model sizes kept open per model (each holds its compiled model's memory)
QUEUED_BATCHES = 2  # batches prepared ahead of the model: enough to hide the normalisation, bounded


# --------------------------------------------------------------------------------- a pair, by hand

def fill_slot(padder, frame1, frame2, x1, x2):
    """Normalise a pair straight into one batch slot each (x1, x2: (3, H, W) float32 at the model size)."""
    a, b = images.normalise_pair(frame1, frame2, padder.corner(x1), padder.corner(x2))
    padder.pad(a, out=x1)
    padder.pad(b, out=x2)


def flow_back(padder, model_flow, size=None):
    """(2, H, W) model-size flow -> (h, w, 2) float32 at `size` (default: the frames'), u and v in its pixels."""
    return padder.unpad(model_flow, size=size).transpose(1, 2, 0)


def frame_pairs(frames, step=1, on_frame=None):
    """(frame n, frame n + step) for n = 0, 1, ...; only step + 1 frames are held (a long video never is).
    `on_frame(n, frame)` sees every frame as it goes by."""
    held = collections.deque(maxlen=step + 1)
    for n, frame in enumerate(frames):
        if on_frame is not None:
            on_frame(n, frame)
        held.append(frame)
        if len(held) == held.maxlen:
            yield held[0], frame


@dataclass
class Batch:
    first: int  # index of its first pair
    count: int  # real pairs in it (the rest repeat the last one)
    x1: np.ndarray  # (B, 3, H, W) float32, normalised, at the model size
    x2: np.ndarray
    kept: list  # [(frame, next frame)] per real pair when kept, else (None, None)
    flow: np.ndarray | None = None  # (B, 2, H, W): the model's flow, once run
    back: np.ndarray | None = None  # the flow of the pairs the other way round, when asked for
    ms: float = 0.0  # model time of this batch


def batches(pairs, padder, *, batch_size, keep_frames=False):
    """Batches of `batch_size` pairs at the padder's model size; a short last batch is filled by
    repeating its last pair (a static model always takes its own batch size)."""
    shape = (batch_size, 3, padder.H, padder.W)
    batch, n = None, 0
    for frame1, frame2 in pairs:
        if batch is None:
            batch = Batch(n, 0, np.empty(shape, np.float32), np.empty(shape, np.float32), [])
        fill_slot(padder, frame1, frame2, batch.x1[batch.count], batch.x2[batch.count])
        batch.kept.append((frame1, frame2) if keep_frames else (None, None))
        batch.count += 1
        n += 1
        if batch.count == batch_size:
            yield batch
            batch = None
    if batch is not None:
        batch.x1[batch.count:], batch.x2[batch.count:] = batch.x1[batch.count - 1], batch.x2[batch.count - 1]
        yield batch


def stream(session, padder, pairs, *, two_way=False, keep_frames=False):
    """Run every pair through `session`, in order: yields each Batch with its flow (and with `two_way`
    the flow of each pair the other way round: normalise_pair treats both frames alike, so swapping the
    normalised inputs is the swapped pair). The batches are prepared in a thread, ahead of the model;
    an error there is raised here, and closing the generator stops the thread. A session opened with
    several streams keeps that many runs in flight (sessions.run_stream); each batch's `ms` is then the
    model's busy wall time its runs added."""
    prepared = queue.Queue(QUEUED_BATCHES)
    stop, failure = threading.Event(), []
    done = object()

    def prepare():
        try:
            for batch in batches(pairs, padder, batch_size=session.batch_size, keep_frames=keep_frames):
                if not put_unless_stopped(prepared, batch, stop):
                    return
        except BaseException as e:  # raised again in the caller's thread
            failure.append(e)
        put_unless_stopped(prepared, done, stop)

    in_flight = collections.deque()  # batches whose runs have started, in order

    def model_inputs():
        while (batch := prepared.get()) is not done:
            x1, x2 = (x.astype(dtype, copy=False) for x, (_, _, dtype) in zip((batch.x1, batch.x2), session.inputs))
            in_flight.append(batch)
            yield [x1, x2]
            if two_way:
                yield [x2, x1]

    thread = threading.Thread(target=prepare, daemon=True)
    thread.start()
    runs = 2 if two_way else 1
    try:
        flows = []
        # several runs in flight where the engine keeps them (an OpenVINO session with streams), in order
        for (flow, *_), ms in run_stream(session, model_inputs()):
            flows.append(flow)
            in_flight[0].ms += ms
            if len(flows) == runs:
                batch = in_flight.popleft()
                batch.flow, batch.back = flows[0], flows[1] if two_way else None
                flows = []
                yield batch
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()


def _size_or_none(size):
    return None if size is None else tuple(size)


def put_unless_stopped(q, item, stop):
    """Put `item` on the bounded queue `q`, waiting while it is full; False (not put) once `stop` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            pass
    return False


# --------------------------------------------------------------------------------- the model

class FlowModel:
    """One model for frames of any size: the engine and precision chosen once (engines.choose: OpenVINO
    on a CPU, bf16 where the CPU has bf16 units; ais_bench for an .om; the CUDA engine on a GPU), a
    session per model size. `opener` replaces sessions.open_model (tests, benchmarks)."""

    def __init__(self, model, *, backend="auto", precision=None, device=0, batch_size=None, size_mode="resize",
                 streams=1, opener=None, keep=SESSIONS_KEPT):
        self.model = os.fspath(model)
        self.backend, self.precision = choose(self.model, backend or "auto", precision)
        self.engine = engine_for(self.model, self.backend)
        self.streams = streams
        streams_for(self.engine, streams)  # several in flight where the engine runs one: refused now
        images.check_size_mode(size_mode)
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise Flownet2Error(f"batch size must be a whole number of at least 1, got {batch_size!r}")
        self.device, self.batch_size, self.size_mode, self.keep = device, batch_size, size_mode, keep
        if opener is None:
            from .sessions import open_model as opener
        self._opener = opener
        self._sessions = collections.OrderedDict()
        self.loads = 0  # sessions opened (a size opened again after it was dropped counts again)
        self.model_sizes = set()  # every model size opened

    def describe(self):
        """The line a run starts with: the engine, its precision and the requests in flight."""
        return describe(self.backend, self.precision, self.streams)

    @property
    def label(self):
        """The weights label: the last session's (a checkpoint's is computed when it opens), else the file's."""
        for session in reversed(self._sessions.values()):
            return getattr(session, "label", None)
        return self.engine.weights_label(self.model)

    def model_size(self, frame_size):
        """The size the model runs at for frames of `frame_size` (None: the model's own, static size)."""
        return None if self.engine.static else model_size(*frame_size)

    def session(self, frame_size, *, source_size=None, announce=None):
        """The session for frames of `frame_size` (height, width), opened on first use. Opening checks the
        model's peak memory at that size first (sessions.open_model): too big is refused in one line with
        the short side that fits frames of `source_size` (default: frame_size); a large estimate goes to
        `announce` (e.g. print)."""
        key = self.model_size(frame_size)
        if key not in self._sessions:
            session = self._opener(self.model, backend=self.backend, batch_size=self.batch_size, size=key,
                                   precision=self.precision, device=self.device, streams=self.streams,
                                   frame_size=_size_or_none(source_size or frame_size), announce=announce)
            if self.batch_size is not None and session.batch_size != self.batch_size:
                raise Flownet2Error(f"{self.model}: the model runs batches of {session.batch_size}, "
                                    f"not {self.batch_size}")
            self._sessions[key] = session
            self.loads += 1
            self.model_sizes.add(tuple(session.size))
            while len(self._sessions) > self.keep:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(key)
        return self._sessions[key]

    def padder(self, frame_size, session, *, name="the frames"):
        """How frames of `frame_size` reach `session`'s size; pad mode cannot shrink a frame."""
        return images.padder_for(frame_size, session.size, self.size_mode, name=name)

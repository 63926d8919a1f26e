"""FlowNet2 on OpenVINO's CPU plug-in: fp32, or bf16 where the CPU has bf16 units.

    session = open_openvino("flownet2_bs1_sim_fix.onnx")                          # an .onnx, read directly
    session = open_openvino("stand-in:0", size=(448, 1024), precision="bf16")     # exported once, cached
    outputs, ms = session.run([x1, x2])
    session = open_openvino("flownet2_bs1_sim_fix.onnx", streams="auto")  # several requests in flight
    for outputs, ms in session.run_stream(inputs):  # inputs: an iterable of [x1, x2]; outputs in its order
        ...

The session has the interface of every session (flownet2.runtime.sessions). `streams` 1 (the default)
compiles for latency: one request, all threads on it. "auto" compiles with OpenVINO's throughput hint and
keeps its optimal number of requests in flight (`session.streams`), a number N asks for N streams; the
threads are split between them, so one request alone is slower and a stream of them is faster. A checkpoint or a
stand-in is exported with the toolkit's own exporter and converted to OpenVINO's IR once; the IR is
kept in the cache folder (FLOWNET2_CACHE, else ~/.cache/flownet2; `cache_dir=` overrides both) under a
key made of the weights file's content digest (or the stand-in spec), the batch, the size, the
correlation form, the model code and the OpenVINO version, so changed weights or code never hit an old
entry. A hit reads the same IR file a miss wrote and compiles it the same way: the same output bytes.
Delete the folder (or call clear_cache) to clear it.
"""
import collections
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..errors import Flownet2Error
from ..fileio import atomic_write, file_digest
from ..model.provenance import stand_in_spec, weights_label
from . import cpu
from .engines import check_streams

PRECISIONS = ("fp32", "bf16")
CORR_MODE = "matmul"  # the exporter's default form: the fewest nodes, and the fastest on CPU engines
CACHE_ENV = "FLOWNET2_CACHE"
ENTRY = "entry.json"  # the weights label of a cached IR (OpenVINO does not keep ONNX metadata)


class OpenVinoSession:
    """An OpenVINO compiled model on the CPU with the toolkit's view of a model (see sessions.py)."""

    copy_ms = None  # inputs and outputs are copied inside infer(): the run's time includes them

    def __init__(self, model, *, label, precision="fp32", threads=None, streams=1):
        import openvino as ov

        self.precision = precision
        self.threads = threads or cpu.cpu_threads()
        config = compile_config(precision, threads=self.threads, streams=streams)
        try:
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        except Exception as e:  # OpenVINO raises RuntimeError and its own types for an unusable model
            raise Flownet2Error(f"{model}: OpenVINO cannot compile the model ({type(e).__name__}: {e})") from None
        # requests kept in flight by run_stream: OpenVINO's optimal number for the streams it made
        self.streams = 1 if streams == 1 else int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self.requests = [self.compiled.create_infer_request() for _ in range(self.streams)]
        self.request = self.requests[0]
        self.inputs = [(p.get_any_name(), [int(d) for d in p.get_shape()], np.dtype(p.get_element_type().to_dtype()))
                       for p in self.compiled.inputs]
        self.label = label
        shape = self.inputs[0][1]
        self.batch_size = shape[0] if shape else 1
        self.size = tuple(shape[2:4]) if len(shape) == 4 else None

    def _feeds(self, arrays):
        return {name: np.ascontiguousarray(a, dtype) for (name, _, dtype), a in zip(self.inputs, arrays)}

    def run(self, arrays):
        """Outputs for the input arrays and the time of the run in ms (copies included)."""
        feeds = self._feeds(arrays)
        t0 = time.perf_counter()
        result = self.request.infer(feeds)  # copies the outputs out of the request's buffers
        outputs = [result[port] for port in self.compiled.outputs]
        return outputs, (time.perf_counter() - t0) * 1000.0

    def run_stream(self, stream):
        """(outputs, ms) for each input list of `stream`, in its order, with up to `self.streams` requests
        in flight. ms is the model's busy wall time that this run adds: the time it was in flight and no
        earlier run still was, so the sum over a stream is the union of the in-flight intervals (one
        request at a time: each run's own time, as run() gives)."""
        if self.streams == 1:
            yield from map(self.run, stream)
            return
        free, flight = collections.deque(self.requests), collections.deque()  # flight: [request, start, end]
        busy_until = 0.0  # the latest end among the runs given back (they start in stream order)

        def given_back(outputs, start, end):
            nonlocal busy_until
            ms = max(0.0, end - max(start, busy_until)) * 1000.0
            busy_until = max(busy_until, end)
            return outputs, ms

        inputs = iter(stream)
        try:
            while True:
                while flight and flight[0][2] is not None:  # finished ones go out before waiting on input
                    yield given_back(*self._reap(flight, free))
                arrays = next(inputs, None)
                if arrays is None:
                    break
                feeds = self._feeds(arrays)
                first = self._reap(flight, free) if not free else None  # all in flight: wait for the first
                request = free.popleft()
                entry = [request, time.perf_counter(), None]
                request.set_callback(_finished, entry)
                request.start_async(feeds)  # copies the inputs into the request's own buffers
                flight.append(entry)
                if first is not None:  # given back once its request runs the next input
                    yield given_back(*first)
            while flight:
                yield given_back(*self._reap(flight, free))
        finally:  # a consumer that stopped early: no request may still be running when the session is reused
            for request, _, _ in flight:
                try:
                    request.wait()
                except Exception:  # noqa: BLE001 - the run that failed is not the error being raised
                    pass

    def _reap(self, flight, free):
        """(outputs, start, end) of the first request in flight, which goes back to the free ones."""
        request, start, _ = flight[0]
        request.wait()  # raises what the run raised
        outputs = [request.get_tensor(port).data.copy() for port in self.compiled.outputs]  # the buffers are reused
        end = flight.popleft()[2] or time.perf_counter()
        free.append(request)
        return outputs, start, end

    def compiled_property(self, name):
        """A property of the compiled model as OpenVINO reports it (INFERENCE_NUM_THREADS, ...)."""
        return self.compiled.get_property(name)


def _finished(entry):
    """OpenVINO's callback when a request is done (in its own thread): when the model stopped on it."""
    entry[2] = time.perf_counter()


def compile_config(precision, *, threads, streams=1):
    """The CPU plug-in's settings: the precision spelled out (fp32 is then exact fp32 on every CPU,
    including those where OpenVINO would pick bf16 by itself), no more threads than given, and the
    latency hint for one stream or the throughput hint for several ("auto": as many as OpenVINO finds best)."""
    import openvino as ov
    import openvino.properties as props
    import openvino.properties.hint as hints

    if precision not in PRECISIONS:
        raise Flownet2Error(f"precision {precision}: OpenVINO on the CPU runs {' or '.join(PRECISIONS)}")
    cpu.check_cpu_precision(precision)
    check_streams(streams)
    mode = hints.PerformanceMode.LATENCY if streams == 1 else hints.PerformanceMode.THROUGHPUT
    config = {hints.inference_precision: ov.Type.bf16 if precision == "bf16" else ov.Type.f32,
              hints.performance_mode: mode, props.inference_num_threads: int(threads)}
    if streams not in (1, "auto"):
        config[props.streams.num] = int(streams)
    return config


def open_openvino(model, *, batch_size=None, size=None, precision="fp32", threads=None, streams=1, cache_dir=None):
    """A session for an .onnx file (its own batch and size), a checkpoint or a stand-in spec (exported at
    `batch_size` and `size`, through the cache); `streams`: 1, N or "auto" (see the module's notes)."""
    model = os.fspath(model)
    if precision not in PRECISIONS:  # before a minute of exporting
        raise Flownet2Error(f"precision {precision}: OpenVINO on the CPU runs {' or '.join(PRECISIONS)}")
    cpu.check_cpu_precision(precision)
    check_streams(streams)
    options = dict(precision=precision, threads=threads, streams=streams)
    if model.endswith(".onnx"):
        if not os.path.isfile(model):
            raise Flownet2Error(f"{model}: model file does not exist")
        return OpenVinoSession(model, label=weights_label(model), **options)
    if model.endswith(".om"):
        raise Flownet2Error(f"{model}: an Ascend .om runs on ais_bench only, not on OpenVINO")
    xml, label = cached_ir(model, batch_size=batch_size or 1, size=size, cache_dir=cache_dir)
    return OpenVinoSession(str(xml), label=label, **options)


# --------------------------------------------------------------------------- the IR cache

def cache_folder(cache_dir=None):
    """Where converted models are kept: `cache_dir`, else $FLOWNET2_CACHE, else ~/.cache/flownet2."""
    base = cache_dir or os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "flownet2")
    return Path(base) / "openvino"


def clear_cache(cache_dir=None):
    """Delete every converted model; the next open converts again."""
    shutil.rmtree(cache_folder(cache_dir), ignore_errors=True)


def cache_key(weights, *, batch_size, size):
    """Hex key of one conversion: what the weights are (file content, or the stand-in spec), the shape,
    the form, the model code that traces them and the OpenVINO version that converts them."""
    import openvino as ov

    spec = stand_in_spec(weights)
    if spec is None:
        if not os.path.isfile(weights):
            raise Flownet2Error(f"{weights}: model file does not exist (an .onnx, a checkpoint, stand-in:SEED "
                                "or stand-in:MEMBER:SEED)")
        what = _weights_digest(weights)
    else:
        what = f"stand-in:{(spec[0] or 'flownet2').lower()}:{spec[1]}"
    fields = {"weights": what, "batch": batch_size, "size": list(size), "form": CORR_MODE,
              "code": _model_code_digest(), "openvino": ov.__version__}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


_DIGESTS = {}  # (path, size, mtime): digest; is_cached and cached_ir ask one after the other


def _weights_digest(path):
    """file_digest of a checkpoint, read once per process while the file is unchanged (~1 s for 620 MB)."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]


def is_cached(weights, *, batch_size, size, cache_dir=None):
    """Whether `weights` at this batch and size is converted already: the next open reads the IR,
    without exporting (what runtime/sessions' memory check needs to know)."""
    return (cache_folder(cache_dir) / cache_key(weights, batch_size=batch_size, size=size) / ENTRY).is_file()


def _model_code_digest():
    """Digest of the network and exporter sources: a change to them changes what an export gives."""
    h = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parents[1] / "model").glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def cached_ir(weights, *, batch_size, size, cache_dir=None):
    """(IR .xml path, weights label) for `weights` at this batch and size, converted on a miss."""
    from ..sizes import check_batch_size, check_input_size

    if size is None:
        raise Flownet2Error(f"{weights}: an input size (H, W) is needed to export it for OpenVINO")
    check_input_size(*size)
    check_batch_size(batch_size)
    entry = cache_folder(cache_dir) / cache_key(weights, batch_size=batch_size, size=size)
    if not (entry / ENTRY).is_file():
        _convert(weights, entry, batch_size=batch_size, size=size)
    try:
        label = json.loads((entry / ENTRY).read_text())["label"]
    except (OSError, ValueError, KeyError) as e:
        raise Flownet2Error(f"{entry / ENTRY}: unreadable cache entry ({e}); delete {entry}") from None
    return entry / "model.xml", label


def _convert(weights, entry, *, batch_size, size):
    """Export with the toolkit's exporter, convert to IR (fp32 weights, not OpenVINO's default fp16
    compression), and publish the entry folder in one rename: a reader sees all of it or none."""
    import openvino as ov

    from ..model.checkpoint import load_model
    from ..model.export import example_inputs, export_onnx

    inputs = example_inputs(batch_size, *size)
    model, label = load_model(weights, corr_mode=CORR_MODE)
    entry.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        export_onnx(model, work / "model.onnx", inputs, weights_label=label)
        del model
        ov.save_model(ov.Core().read_model(str(work / "model.onnx")), str(work / "model.xml"), compress_to_fp16=False)
        (work / "model.onnx").unlink()
        with atomic_write(work / ENTRY, "w") as f:
            json.dump({"label": label, "weights": str(weights), "batch": batch_size, "size": list(size)}, f)
        try:
            os.rename(work, entry)
        except OSError:  # another process published the same entry first: keep theirs
            if not (entry / ENTRY).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

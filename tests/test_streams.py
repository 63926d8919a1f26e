"""Several OpenVINO requests in flight (--streams): the flow of one request at a time, in order, forward and
backward; the model's busy time; other engines one at a time; the setting through the CLI and a collection.

FlowNet2-S (stand-in:s:0) at 64x128 on six real Sintel frames (alley_1's four, then cave_2's two: a cut),
resized by PIL to the model's size, so predict runs them as they are.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from sintel_mini import MINI, needs_mini  # noqa: E402
from test_openvino import BF16_RELATIVE_EPE, FP32_TOL_PX, H, W  # noqa: E402

from flownet2.data import flo, frames  # noqa: E402
from flownet2.errors import Flownet2Error  # noqa: E402
from flownet2.runtime import cpu, engines, predict  # noqa: E402
from flownet2.runtime.openvino_backend import open_openvino  # noqa: E402
from flownet2.runtime.outputs import Outputs  # noqa: E402
from flownet2.runtime.sessions import open_model, run_stream  # noqa: E402

pytest.importorskip("openvino")
SCENES = (("alley_1", (1, 2, 3, 4)), ("cave_2", (2, 3)))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    if MINI is None:
        pytest.skip("sintel-mini sample not found")
    out = tmp_path_factory.mktemp("streams_frames")
    n = 0
    for scene, numbers in SCENES:
        for k in numbers:
            n += 1
            img = Image.open(Path(MINI) / "training" / "clean" / scene / f"frame_{k:04d}.png").convert("RGB")
            img.resize((W, H), Image.BILINEAR).save(out / f"frame_{n:02d}.png")
    return out


@pytest.fixture(scope="module")
def sessions():
    """(precision, streams) -> an OpenVINO session of FlowNet2-S at 64x128 on two threads (a test worker
    runs with OMP_NUM_THREADS=1, and OpenVINO keeps one request per thread), opened once."""
    opened = {}

    def get(precision, streams):
        if (precision, streams) not in opened:
            opened[precision, streams] = open_openvino("stand-in:s:0", size=(H, W), precision=precision,
                                                       streams=streams, threads=2)
        return opened[precision, streams]
    return get


def flows_of(session, folder, out, *, backward=False):
    """(forward flows, backward flows or None, Result) of predict over the folder: pairs x H x W x 2."""
    source = frames.open_source([str(folder)])
    outputs = Outputs(backward=backward)
    predict.prepare_outputs(source, str(out), outputs)
    result = predict.predict(session, source, output=str(out), outputs=outputs, progress=False)
    names = [source.pair_name(i) for i in range(source.pair_count)]
    forward = np.stack([flo.read_flo(out / f"{name}.flo") for name in names])
    back = np.stack([flo.read_flo(out / f"{name}_bwd.flo") for name in names]) if backward else None
    return forward, back, result


def epe(a, b):
    """Per-pixel end-point error between flows of shape ... x H x W x 2 (float64)."""
    return np.sqrt(((a.astype(np.float64) - b) ** 2).sum(axis=-1))


def distinct(flows, tol):
    """Each pair's flow is far from the next one's: a result given back out of order would show."""
    return all(epe(flows[i], flows[i + 1]).mean() > 100 * tol for i in range(len(flows) - 1))


@needs_mini
def test_fp32_streams_give_one_request_at_a_times_flow_in_order(folder, sessions, tmp_path):
    one, several = sessions("fp32", 1), sessions("fp32", 2)
    assert (one.streams, several.streams) == (1, 2)
    assert str(one.compiled_property("PERFORMANCE_HINT")) == "LATENCY"
    assert several.compiled_property("NUM_STREAMS") == 2
    want, _, _ = flows_of(one, folder, tmp_path / "one")
    got, _, result = flows_of(several, folder, tmp_path / "two")
    assert got.shape == want.shape == (5, H, W, 2) and distinct(want, FP32_TOL_PX)
    assert epe(got, want).max() < FP32_TOL_PX
    assert 0 < result.model_ms <= result.seconds * 1000  # busy wall time: never more than the run's wall time


@needs_mini
def test_the_backward_flow_with_streams(folder, sessions, tmp_path):
    want, want_back, _ = flows_of(sessions("fp32", 1), folder, tmp_path / "one", backward=True)
    got, got_back, result = flows_of(sessions("fp32", 2), folder, tmp_path / "two", backward=True)
    assert result.pairs == 5 and epe(want, want_back).mean() > 100 * FP32_TOL_PX  # forward and back differ
    assert epe(got, want).max() < FP32_TOL_PX and epe(got_back, want_back).max() < FP32_TOL_PX


@needs_mini
def test_bf16_streams_stay_within_the_bf16_bound(folder, sessions, tmp_path):
    if not cpu.cpu_has_bf16():
        pytest.skip("this CPU has no bf16 units: bf16 is refused here")
    reference, _, _ = flows_of(sessions("fp32", 1), folder, tmp_path / "fp32")
    one, _, _ = flows_of(sessions("bf16", 1), folder, tmp_path / "one")
    got, _, _ = flows_of(sessions("bf16", 2), folder, tmp_path / "two")
    length = np.sqrt((reference.astype(np.float64) ** 2).sum(axis=-1)).mean(axis=(1, 2))  # per pair
    for flows in (got, one):
        assert np.all(epe(flows, reference).mean(axis=(1, 2)) < BF16_RELATIVE_EPE * length)
    assert np.all(epe(got, one).mean(axis=(1, 2)) < BF16_RELATIVE_EPE * length)


def test_busy_time_is_the_union_of_the_runs_in_flight(sessions):
    session = sessions("fp32", 2)
    rng = np.random.default_rng(0)
    inputs = [[rng.standard_normal((1, 3, H, W)).astype(np.float32) for _ in range(2)] for _ in range(8)]
    want = [session.run(x)[0][0] for x in inputs]  # one request at a time on the same compiled model
    t0 = time.perf_counter()
    got = list(run_stream(session, inputs))
    wall_ms = (time.perf_counter() - t0) * 1000
    assert all(np.abs(g[0][0] - w).max() < FP32_TOL_PX for g, w in zip(got, want))
    busy = sum(ms for _, ms in got)
    # the inputs are ready at once, so a request is always in flight: busy is nearly all of the wall
    # time, where adding each run's own time (two in flight) would give about twice it
    assert 0.5 * wall_ms < busy <= wall_ms


def test_a_stream_stopped_early_leaves_no_request_running(sessions):
    session = sessions("fp32", 2)
    x = [np.zeros((1, 3, H, W), np.float32)] * 2
    stream = run_stream(session, [x] * 6)
    next(stream)
    stream.close()  # the consumer failed: the session is reused for the next video
    assert len(list(run_stream(session, [x] * 3))) == 3


def test_other_engines_run_one_request_at_a_time(tmp_path):
    from test_predict import tiny_model as identity_model

    model = identity_model(tmp_path / "m.onnx", size=(H, W))
    session = open_model(model, streams="auto")  # ONNX Runtime: "auto" is one at a time
    x = [np.random.default_rng(1).standard_normal((1, 3, H, W)).astype(np.float32)] * 2
    (flow,), _ = next(iter(run_stream(session, [x])))
    np.testing.assert_array_equal(flow, x[0][:, :2])
    with pytest.raises(Flownet2Error, match=r"^streams 2: ONNX Runtime runs one request at a time; several in "
                                            "flight run on OpenVINO$"):
        open_model(model, streams=2)
    for bad in (0, "2", True, 1.5):
        with pytest.raises(Flownet2Error, match=r"^streams .*: requests in flight are 'auto' or a whole number"):
            open_model(model, backend="openvino", streams=bad)
    assert engines.describe("openvino", "bf16", "auto") == "engine: OpenVINO, bf16, streams auto"
    assert engines.describe("onnxruntime", "fp32", "auto") == "engine: ONNX Runtime, fp32"


def test_the_cli_passes_streams_and_says_them_first(tmp_path, capsys, monkeypatch):
    from test_predict import run_cli
    from test_predict import tiny_model as identity_model

    monkeypatch.setattr(cpu, "cpu_has_bf16", lambda: False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # test workers run on one thread; OpenVINO keeps a request per thread
    model = identity_model(tmp_path / "m.onnx", size=(H, W))
    (tmp_path / "f").mkdir()
    for k in (1, 2):
        Image.fromarray(np.full((H, W, 3), 40 * k, np.uint8)).save(tmp_path / "f" / f"frame_{k}.png")
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o",
                              "--backend", "openvino", "--streams", "2"], capsys)
    assert code == 0, err
    first, second = out.splitlines()[:2]
    assert first == "engine: OpenVINO, fp32, streams 2" and ", 2 requests in flight)" in second
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o2",
                            "--backend", "onnxruntime", "--streams", "2"], capsys)
    assert code == 2 and "streams 2: ONNX Runtime runs one request at a time" in err
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o3",
                            "--streams", "0"], capsys)
    assert code == 2 and "0 is not a whole number of at least 1" in err


def test_a_collection_worker_opens_with_the_streams_of_its_settings(tmp_path):
    from flownet2.runtime import collection

    asked = []

    def opener(model, **options):
        asked.append(options["streams"])
        raise Flownet2Error("opened")

    source = type("Source", (), {"size": (H, W), "frame_size": (H, W)})()
    for streams in ("auto", 3):
        worker = collection.Worker(collection.Settings(model="stand-in:s:0", output=str(tmp_path), backend="openvino",
                                                       streams=streams), opener=opener)
        with pytest.raises(collection.ModelError, match="^opened$"):
            worker.session(source)
    assert asked == ["auto", 3] and collection.Settings(model="m", output="o").streams == "auto"


def test_the_runner_runs_one_request_at_a_time(tmp_path):
    from test_predict import tiny_model as identity_model

    from flownet2.runtime.runner import open_runner_session

    session = open_runner_session(identity_model(tmp_path / "m.onnx", size=(H, W)), backend="openvino")
    assert session.streams == 1 and str(session.compiled_property("PERFORMANCE_HINT")) == "LATENCY"


def test_streams_asked_beyond_the_threads_get_one_per_thread(tmp_path):
    from test_predict import tiny_model as identity_model

    session = open_model(identity_model(tmp_path / "m.onnx", size=(H, W)), backend="openvino", streams=8)
    assert session.streams == session.compiled_property("NUM_STREAMS") <= min(session.threads, 8)
    x = [[np.full((1, 3, H, W), k, np.float32)] * 2 for k in range(2 * session.streams + 1)]
    assert [outputs[0][0, 0, 0, 0] for outputs, _ in run_stream(session, x)] == list(range(len(x)))

"""flownet2.runtime.sessions.open_model: every kind of model opens to the same session face, and each backend
computes what the model says. The tiny hand-built model's output is known in closed form:
flow = 2 * x1[:, 0:2] + x2[:, 1:3]."""
import os
import subprocess
import sys
import types

import numpy as np
import onnx
import pytest

from flownet2.errors import Flownet2Error
from flownet2.runtime import engines, sessions

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from test_infer import STANDINS, H, W, expected_flow, tiny_model  # noqa: E402


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2, 3, H, W)).astype(np.float32) for _ in range(2)]


@pytest.fixture
def stand_in_ais_bench(monkeypatch):
    """The stand-in ais_bench package importable in this process, and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(STANDINS))
    yield
    for name in [m for m in sys.modules if m == "ais_bench" or m.startswith("ais_bench.")]:
        del sys.modules[name]


def compile_om(tmp_path, onnx_path, batch):
    subprocess.run([sys.executable, str(STANDINS / "standin_atc.py"), "--framework=5", f"--model={onnx_path}",
                    f"--output={tmp_path / 'tiny'}", "--input_format=NCHW",
                    f"--input_shape=x1:{batch},3,{H},{W};x2:{batch},3,{H},{W}", "--log=debug",
                    "--soc_version=Ascend310P3"], check=True, capture_output=True,
                   env=dict(os.environ, PYTHON=sys.executable))  # the stand-in runs the tests' Python
    return str(tmp_path / "tiny.om")


def test_onnx_session_face_and_flow(tmp_path, pair):
    session = sessions.open_model(tiny_model(tmp_path / "tiny.onnx", batch=2))
    assert session.inputs == [("x1", [2, 3, H, W], np.dtype(np.float32)), ("x2", [2, 3, H, W], np.dtype(np.float32))]
    assert (session.batch_size, session.size, session.label) == (2, (H, W), "stand-in:seed=7")
    outputs, ms = session.run(pair)
    np.testing.assert_array_equal(outputs[0], expected_flow(*pair))
    assert ms > 0 and session.copy_ms is None


def test_om_runs_through_the_python_api(tmp_path, pair, stand_in_ais_bench):
    om = compile_om(tmp_path, tiny_model(tmp_path / "tiny.onnx", batch=2), batch=2)
    (tmp_path / "tiny.om.weights").write_text("official:FlowNet2_checkpoint.pth.tar\n")
    session = sessions.open_model(om, device=3)
    from ais_bench.infer.interface import CALLS

    assert CALLS[0] == ("InferSession", {"device_id": 3, "model_path": om})
    assert session.inputs[0] == ("x1", [2, 3, H, W], np.dtype(np.float32))
    assert (session.batch_size, session.size, session.label) == (2, (H, W), "official:FlowNet2_checkpoint.pth.tar")
    outputs, _ = session.run(pair)
    np.testing.assert_array_equal(outputs[0], expected_flow(*pair))
    assert CALLS[-1] == ("infer", {"shapes": [(2, 3, H, W)] * 2, "mode": "static"})


def test_om_without_ais_bench_is_one_line(tmp_path):
    om = tmp_path / "m.om"
    om.write_text("{}")
    with pytest.raises(Flownet2Error, match=r"m\.om is an Ascend \.om model, which needs ais_bench: .*gitee"):
        sessions.open_model(str(om))


def test_wrong_combinations_are_refused(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=1)
    with pytest.raises(Flownet2Error, match="precision fp16 applies to PyTorch models"):
        sessions.open_model(model, precision="fp16")
    with pytest.raises(Flownet2Error, match="emulation runs .onnx models only"):
        sessions.open_model("stand-in:0", emulate="fp16")
    with pytest.raises(Flownet2Error, match="must be one of fp16, bf16"):
        sessions.open_model(model, emulate="fp8")
    with pytest.raises(Flownet2Error, match=r"nothing\.pth: model file does not exist"):
        sessions.open_model(str(tmp_path / "nothing.pth"))
    with pytest.raises(Flownet2Error, match=r"gone\.onnx: model file does not exist"):
        sessions.open_model(str(tmp_path / "gone.onnx"))


def test_one_engine_per_model_kind(tmp_path):
    assert engines.engine_for("m.onnx").name == "onnxruntime" and engines.engine_for("m.onnx").static
    assert engines.engine_for(tmp_path / "m.om").name == "ascend" and engines.engine_for("m.om").handed_over
    for model in ("FlowNet2_checkpoint.pth.tar", "stand-in:0", "stand-in:css:0"):
        assert engines.engine_for(model).name == "torch" and not engines.engine_for(model).static
    assert engines.engine_for("m.onnx", backend="onnxruntime").name == "onnxruntime"
    with pytest.raises(Flownet2Error, match=r"^m\.onnx: PyTorch runs a checkpoint or stand-in:SEED; an \.onnx "
                                            r"runs on ONNX Runtime$"):
        engines.engine_for("m.onnx", backend="torch")
    with pytest.raises(Flownet2Error, match=r"^stand-in:0: ONNX Runtime runs \.onnx models; a checkpoint or "
                                            r"stand-in:SEED runs on PyTorch$"):
        sessions.open_model("stand-in:0", backend="onnxruntime")


def test_an_engine_opens_with_the_keywords_it_takes(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(sessions, "open_onnx", lambda model, **kw: seen.setdefault(model, kw))
    model = tiny_model(tmp_path / "tiny.onnx", batch=1)
    sessions.open_model(model, batch_size=4, size=(64, 64), device=3)
    assert seen == {model: {"device": 3, "emulate": None}}  # an .onnx has its own size and batch


def test_emulate_runs_the_rewritten_model_unoptimised(tmp_path, pair, monkeypatch):
    # A stand-in rewrite (the real one lives in flownet2.onnx.precision): doubles the weight "two", so the
    # output shows that the rewritten model is the one that ran.
    import onnxruntime as ort

    seen = {}

    def emulate_onnx(model, kind):
        seen["kind"] = kind
        for init in model.graph.initializer:
            if init.name == "two":
                init.CopyFrom(onnx.numpy_helper.from_array(np.array(4.0, np.float32), "two"))
        return model

    monkeypatch.setitem(sys.modules, "flownet2.onnx.precision", types.SimpleNamespace(emulate_onnx=emulate_onnx))
    levels = []
    real = ort.InferenceSession

    def recording(source, options=None, **kw):
        levels.append(options.graph_optimization_level)
        return real(source, options, **kw)

    monkeypatch.setattr(ort, "InferenceSession", recording)
    session = sessions.open_model(tiny_model(tmp_path / "tiny.onnx", batch=2), emulate="bf16")
    outputs, _ = session.run(pair)
    np.testing.assert_array_equal(outputs[0], 4 * pair[0][:, 0:2] + pair[1][:, 1:3])
    assert seen == {"kind": "bf16"} and levels == [ort.GraphOptimizationLevel.ORT_DISABLE_ALL]
    assert session.label == "stand-in:seed=7"


def _round_fp16(a):
    return a.astype(np.float16).astype(np.float32)


def test_fp16_emulation_rounds_every_stored_value(tmp_path, pair):
    precision = pytest.importorskip("flownet2.onnx.precision")
    if not hasattr(precision, "emulate_onnx"):
        pytest.skip("flownet2.onnx.precision.emulate_onnx not available")
    session = sessions.open_model(tiny_model(tmp_path / "tiny.onnx", batch=2), emulate="fp16")
    x1, x2 = pair
    # every tensor a node writes is rounded: slices, the product, the sum (arithmetic in fp32)
    ref = _round_fp16(_round_fp16(2 * _round_fp16(x1[:, 0:2])) + _round_fp16(x2[:, 1:3]))
    np.testing.assert_array_equal(session.run(pair)[0][0], ref)


def test_torch_cpu_precisions(monkeypatch):
    from flownet2.runtime import cpu

    with pytest.raises(Flownet2Error, match="precision fp16 needs a CUDA GPU; on the CPU use fp32"):
        sessions.open_model("stand-in:0", size=(64, 64), precision="fp16")
    monkeypatch.setattr(cpu, "cpu_has_bf16", lambda: False)
    with pytest.raises(Flownet2Error, match=r"bf16 on the CPU needs bf16 units \(AVX512_BF16 or AMX\)"):
        sessions.open_model("stand-in:0", size=(64, 64), precision="bf16")


def test_the_engine_tables_torch_precisions_are_the_backends():
    """--precision's choices (flownet2/precisions.py, no engine import at start-up) are the engine table's;
    PyTorch's backend maps exactly its names to dtypes."""
    from flownet2.runtime import engines, torch_backend

    assert engines.ENGINES["torch"].precisions == tuple(torch_backend.PRECISIONS)
    assert set(engines.PRECISIONS) == {p for e in engines.ENGINES.values() for p in e.precisions}  # none unused, none missing


def test_a_scripts_help_does_not_import_torch():
    code = ("import sys, runpy; sys.argv = ['Flownet2_predict.py', '--help']\n"
            "try:\n    runpy.run_path('Flownet2_predict.py', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    run = subprocess.run([sys.executable, "-c", code], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

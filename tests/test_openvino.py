"""OpenVINO, the CPU engine: fp32 against ONNX Runtime on a real Sintel pair, bf16's drift, the converted-model
cache, the thread limit, the runner and predict's choice of engine.

FlowNet2 and FlowNet2-S are exported once each at 64x128 (stand-in weights, seed 0) and read by both engines.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from sintel_mini import MINI, needs_mini  # noqa: E402
from test_infer import H as TINY_H  # noqa: E402
from test_infer import W as TINY_W  # noqa: E402
from test_infer import expected_flow, tiny_model  # noqa: E402

from flownet2 import infer  # noqa: E402
from flownet2.data.images import normalise_pair  # noqa: E402
from flownet2.errors import Flownet2Error  # noqa: E402
from flownet2.runtime import cpu, engines, openvino_backend  # noqa: E402
from flownet2.runtime.sessions import open_model  # noqa: E402

pytest.importorskip("openvino")
H, W = 64, 128
FP32_TOL_PX = 1e-4
# bf16 keeps 8 significant bits: every stored value moves by up to 2^-9 (0.2 %) of itself. FlowNet2 has
# ~100 layers in series over its five stacked networks and warps; independent roundings add up to about
# sqrt(100) x 2^-9 = 2 % of the flow (1.9 % measured here with stand-in weights, 0.4 % for FlowNet2-S).
# Bound: the mean EPE within 5 % of the mean flow length.
BF16_RELATIVE_EPE = 0.05


@pytest.fixture(scope="module")
def real_pair():
    """alley_1 frames 1 -> 2, resized to 64x128 by PIL (not the toolkit's resize) and normalised."""
    if MINI is None:
        pytest.skip("sintel-mini sample not found")
    scene = Path(MINI) / "training" / "clean" / "alley_1"
    img1, img2 = (np.asarray(Image.open(scene / f"frame_000{k}.png").convert("RGB").resize((W, H), Image.BILINEAR))
                  for k in (1, 2))
    x1, x2 = normalise_pair(img1, img2)
    return x1[None].astype(np.float32), x2[None].astype(np.float32)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """{member: .onnx path}: FlowNet2 and FlowNet2-S, stand-in seed 0, 64x128, batch 1."""
    from flownet2.model.checkpoint import load_model
    from flownet2.model.export import example_inputs, export_onnx

    folder = tmp_path_factory.mktemp("ov_exports")
    paths = {}
    for member, spec in (("flownet2", "stand-in:0"), ("s", "stand-in:s:0")):
        model, label = load_model(spec)
        paths[member] = str(folder / f"{member}.onnx")
        export_onnx(model, paths[member], example_inputs(1, H, W), weights_label=label)
    return paths


def epe(a, b):
    """Per-pixel end-point error between two B x 2 x H x W flows (float64)."""
    return np.sqrt(((a.astype(np.float64) - b) ** 2).sum(axis=1))


@needs_mini
@pytest.mark.parametrize("member", ["flownet2", "s"])
def test_fp32_equals_onnx_runtime_on_a_real_pair(member, exports, real_pair):
    reference = open_model(exports[member])
    session = open_model(exports[member], backend="openvino", precision="fp32")
    assert str(session.compiled_property("INFERENCE_PRECISION_HINT")) == "<Type: 'float32'>"
    assert (session.batch_size, session.size, session.label) == (1, (H, W), reference.label)
    (want,), _ = reference.run(list(real_pair))
    (got,), _ = session.run(list(real_pair))
    assert got.shape == want.shape == (1, 2, H, W) and np.abs(want).max() > 1.0  # flows of pixels, not zeros
    assert epe(got, want).max() < FP32_TOL_PX


@needs_mini
def test_bf16_drift_is_bounded(exports, real_pair, monkeypatch):
    # Without bf16 units OpenVINO computes a bf16 request in fp32: the bound holds, the drift is then 0.
    has_units = cpu.cpu_has_bf16()
    monkeypatch.setattr(cpu, "cpu_has_bf16", lambda: True)
    (want,), _ = open_model(exports["flownet2"]).run(list(real_pair))
    session = open_model(exports["flownet2"], backend="openvino", precision="bf16")
    (got,), _ = session.run(list(real_pair))
    drift = epe(got, want).mean()
    assert drift < BF16_RELATIVE_EPE * np.sqrt((want.astype(np.float64) ** 2).sum(axis=1)).mean()
    if has_units:  # bf16 really ran: the flow moved
        assert drift > 1e-5 and str(session.compiled_property("INFERENCE_PRECISION_HINT")) == "<Type: 'bfloat16'>"


def test_bf16_is_refused_in_one_line_where_the_cpu_has_no_bf16_units(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu, "cpu_has_bf16", lambda: False)
    model = tiny_model(tmp_path / "tiny.onnx", batch=1)
    with pytest.raises(Flownet2Error, match=r"^precision bf16 on the CPU needs bf16 units \(AVX512_BF16 or AMX\), "
                                            "which this CPU lacks; use fp32$"):
        open_model(model, backend="openvino", precision="bf16")
    with pytest.raises(Flownet2Error, match=r"^.*tiny\.onnx: OpenVINO runs it in fp32 or bf16, not fp16$"):
        open_model(model, backend="openvino", precision="fp16")


def test_auto_picks_openvino_on_a_cpu_bf16_only_with_bf16_units(monkeypatch):
    monkeypatch.setattr(engines, "_cuda_visible", lambda kind: False)
    for units, fast in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(cpu, "cpu_has_bf16", lambda units=units: units)
        for model in ("m.onnx", "FlowNet2_checkpoint.pth.tar", "stand-in:css:0"):
            assert engines.choose(model) == ("openvino", fast)
            assert engines.choose(model, precision="fp32") == ("openvino", "fp32")
        assert engines.choose("stand-in:0", "torch") == ("torch", fast)
        assert engines.choose("m.onnx", "onnxruntime") == ("onnxruntime", "fp32")
    assert engines.choose("m.om") == ("ascend", "fp32")
    monkeypatch.setattr(engines, "_cuda_visible", lambda kind: True)  # a GPU: what runs there today
    assert engines.choose("m.onnx") == ("onnxruntime", "fp32")
    assert engines.choose("stand-in:0") == ("torch", "fp32")
    with pytest.raises(Flownet2Error, match=r"^m\.om: OpenVINO runs \.onnx models, checkpoints and stand-in:SEED"):
        engines.choose("m.om", "openvino")


def test_threads_are_the_cpus_the_process_was_given(tmp_path, monkeypatch):
    model = tiny_model(tmp_path / "tiny.onnx", batch=1)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: {0})
    assert cpu.cpu_threads() == 1
    assert open_model(model, backend="openvino").compiled_property("INFERENCE_NUM_THREADS") == 1
    monkeypatch.setattr(cpu.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert cpu.cpu_threads() == 8
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # what Ray sets for an actor holding 3 CPUs
    assert cpu.cpu_threads() == 3


def test_the_runner_writes_ais_bench_files_from_openvino(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=1)
    rng = np.random.default_rng(3)
    x = {name: rng.standard_normal((1, 3, TINY_H, TINY_W)).astype(np.float32) for name in ("image1", "image2")}
    for name, a in x.items():
        (tmp_path / name).mkdir()
        a.tofile(tmp_path / name / "0.bin")
    assert infer.main(["--model", model, "--backend", "openvino", "--input",
                       f"{tmp_path / 'image1'},{tmp_path / 'image2'}", "--output", str(tmp_path / "out"),
                       "--output_dirname", "ov", "--warmup_count", "0"]) == 0
    got = np.fromfile(tmp_path / "out" / "ov" / "0_0.bin", np.float32).reshape(1, 2, TINY_H, TINY_W)
    np.testing.assert_array_equal(got, expected_flow(x["image1"], x["image2"]))
    summary = json.loads((tmp_path / "out" / "ov_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 1 and summary["flownet2.weights"] == "stand-in:seed=7"


def test_a_cache_hit_is_byte_identical_and_a_changed_checkpoint_misses(tmp_path, monkeypatch, real_pair):
    import torch

    from flownet2.model.checkpoint import load_model, save_checkpoint

    model, label = load_model("stand-in:s:0")
    ckpt = tmp_path / "s.pth.tar"
    save_checkpoint(ckpt, model.state_dict(), stand_in_seed=0)
    monkeypatch.setenv(openvino_backend.CACHE_ENV, str(tmp_path / "cache"))  # the user's choice of folder
    first = open_model(ckpt, backend="openvino", size=(H, W))
    assert first.label == label and (first.batch_size, first.size) == (1, (H, W))
    entries = list((tmp_path / "cache" / "openvino").iterdir())
    assert len(entries) == 1 and sorted(p.name for p in entries[0].iterdir()) == ["entry.json", "model.bin",
                                                                                  "model.xml"]

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(openvino_backend, "_convert", no_conversion)
    second = open_model(ckpt, backend="openvino", size=(H, W))
    assert second.label == label
    assert first.run(list(real_pair))[0][0].tobytes() == second.run(list(real_pair))[0][0].tobytes()
    key = openvino_backend.cache_key(str(ckpt), batch_size=1, size=(H, W))
    assert openvino_backend.cache_key(str(ckpt), batch_size=2, size=(H, W)) != key

    state = model.state_dict()
    with torch.no_grad():
        next(iter(state.values())).view(-1)[0] += 1e-3  # one weight changed: another checkpoint
    save_checkpoint(ckpt, state, stand_in_seed=0)
    assert openvino_backend.cache_key(str(ckpt), batch_size=1, size=(H, W)) != key
    with pytest.raises(AssertionError, match="converted again"):
        open_model(ckpt, backend="openvino", size=(H, W))
    openvino_backend.clear_cache()
    assert not (tmp_path / "cache" / "openvino").exists()


def test_a_collection_runs_on_openvino_and_its_markers_say_so(tmp_path, capsys, monkeypatch):
    pytest.importorskip("av")
    from test_collection import clip_frames
    from test_predict import encode_video, run_cli
    from test_predict import tiny_model as identity_model

    from flownet2.runtime import collection

    videos = tmp_path / "videos"
    videos.mkdir()
    for k, name in enumerate(("a.mkv", "b.mkv")):
        encode_video(videos / name, clip_frames(3, k), codec="ffv1")  # lossless: both runs read the same frames
    model = identity_model(tmp_path / "m.onnx", size=(H, W))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # test workers run on one thread; OpenVINO keeps a request per thread
    code, out, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "ov",
                              "--backend", "openvino", "--precision", "fp32", "--streams", "2"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "engine: OpenVINO, fp32, streams 2" and "videos: 2 done" in out
    for stem in ("a", "b"):
        marker = json.loads((tmp_path / "ov" / stem / collection.MARKER).read_text())
        assert marker["engine"] == {"name": "openvino", "precision": "fp32", "streams": 2} and marker["pairs"] == 2
    code, _, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "ort",
                            "--backend", "onnxruntime"], capsys)
    assert code == 0, err
    for stem in ("a", "b"):
        for k in (1, 2):
            flo = f"{stem}/frame_{k:04d}.flo"
            assert (tmp_path / "ov" / flo).read_bytes() == (tmp_path / "ort" / flo).read_bytes()
    code, _, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "ov",
                            "--backend", "onnxruntime"], capsys)  # another engine into the same folder
    assert code == 2 and "made with backend 'openvino' (now 'onnxruntime'), precision 'fp32' (now None)" in err


def test_predict_says_its_engine_first_and_auto_is_openvino_on_a_cpu(tmp_path, capsys, monkeypatch):
    from test_predict import run_cli
    from test_predict import tiny_model as identity_model

    monkeypatch.setattr(engines, "_cuda_visible", lambda kind: False)
    monkeypatch.setattr(cpu, "cpu_has_bf16", lambda: False)
    frames = tmp_path / "f"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for k in (1, 2, 3):
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(frames / f"frame_{k}.png")
    model = identity_model(tmp_path / "m.onnx", size=(H, W))
    code, out, err = run_cli(["--model", model, "--input", frames, "--output", tmp_path / "o"], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "engine: OpenVINO, fp32, streams auto"
    code, out, err = run_cli(["--model", model, "--input", *sorted(frames.iterdir())[:2], "--output", tmp_path / "o2"],
                             capsys)
    assert code == 0 and out.splitlines()[0] == "engine: OpenVINO, fp32, streams 1"  # one pair: nothing to overlap

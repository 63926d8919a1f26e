"""The ais_bench-compatible runner on a tiny hand-built model whose output is known in closed form:
flow = 2 * x1[:, 0:2] + x2[:, 1:3]."""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from flownet2.cli import run_main
from flownet2.errors import Flownet2Error
from flownet2.model.provenance import KEY
from flownet2 import infer
from flownet2.fileio import natural_sorted
from flownet2.runtime import runner

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "standins"
SUMMARY_KEYS = {"filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "pid", KEY, runner.DIGESTS_KEY, runner.LATENCY_NOTE_KEY}
STAT_KEYS = {"min", "max", "mean", "median", "percentile(99%)", "count"}
H, W = 4, 6


def tiny_model(path, batch):
    ints = [numpy_helper.from_array(np.array(v, np.int64), n)
            for n, v in (("s0", [0]), ("e0", [2]), ("s1", [1]), ("e1", [3]), ("ax", [1]))]
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    nodes = [helper.make_node("Slice", ["x1", "s0", "e0", "ax"], ["a"]),
             helper.make_node("Slice", ["x2", "s1", "e1", "ax"], ["b"]),
             helper.make_node("Mul", ["a", "two"], ["a2"]),
             helper.make_node("Add", ["a2", "b"], ["flow"])]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 3, H, W]) for n in ("x1", "x2")]
    output = helper.make_tensor_value_info("flow", TensorProto.FLOAT, [batch, 2, H, W])
    model = helper.make_model(helper.make_graph(nodes, "tiny", inputs, [output], ints + [two]),
                              opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    model.metadata_props.add(key=KEY, value="stand-in:seed=7")
    onnx.save(model, path)
    return str(path)


def expected_flow(x1, x2):
    return 2 * x1[:, 0:2] + x2[:, 1:3]


def write_inputs(folder, names, shape, seed):
    """Random float32 input files; returns {name: array}."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name in names:
        arrays[name] = rng.standard_normal(shape).astype(np.float32)
        arrays[name].tofile(folder / name)
    return arrays


def test_natural_sort_is_ais_bench_order():
    names = ["d/10.bin", "d/9.bin", "d/1.bin", "d/a10.bin", "d/A2.bin", "d/0.bin"]
    assert natural_sorted(names) == ["d/0.bin", "d/1.bin", "d/9.bin", "d/10.bin", "d/A2.bin", "d/a10.bin"]


def test_batch_files_give_ais_bench_outputs_and_summary(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    # 11 batch files: natural order puts 10.bin last; input 2's files differ in name, matched by position
    x1 = write_inputs(tmp_path / "image1", [f"{k}.bin" for k in range(11)], (2, 3, H, W), seed=1)
    x2 = write_inputs(tmp_path / "image2", [f"pair_{k}.bin" for k in range(11)], (2, 3, H, W), seed=2)
    argv = ["--model", model, "--input", f"{tmp_path / 'image1'},{tmp_path / 'image2'}", "--output",
            str(tmp_path / "out"), "--output_dirname", "bs2", "--outfmt", "BIN", "--batchsize", "2",
            "--loop", "2", "--warmup_count", "1"]
    assert infer.main(argv) == 0
    for k in range(11):
        got = np.fromfile(tmp_path / "out" / "bs2" / f"{k}_0.bin", np.float32).reshape(2, 2, H, W)
        np.testing.assert_array_equal(got, expected_flow(x1[f"{k}.bin"], x2[f"pair_{k}.bin"]))
    summary = json.loads((tmp_path / "out" / "bs2_summary.json").read_text())
    assert set(summary) == SUMMARY_KEYS
    assert summary["filesinfo"]["10"] == {
        "infiles": [str(tmp_path / "image1" / "10.bin"), str(tmp_path / "image2" / "pair_10.bin")],
        "outfiles": [str(tmp_path / "out" / "bs2" / "10_0.bin")]}
    assert len(summary["filesinfo"]) == 11
    times = summary["npu_compute_time_list"]
    assert summary["NPU_compute_time"]["count"] == len(times) == 22  # 11 batches x --loop 2
    assert set(summary["NPU_compute_time"]) == set(summary["H2D_latency"]) == STAT_KEYS
    assert summary["NPU_compute_time"]["mean"] == pytest.approx(np.mean(times))
    assert summary["NPU_compute_time"]["percentile(99%)"] == pytest.approx(np.percentile(times, 99))
    assert summary["throughput"] == pytest.approx(1000 * 2 / np.mean(times))
    assert summary["args"][1:] == argv and summary["pid"] == os.getpid() and summary[KEY] == "stand-in:seed=7"
    infiles = [p for entry in summary["filesinfo"].values() for p in entry["infiles"]]
    assert summary[runner.DIGESTS_KEY] == {p: "sha256:" + hashlib.sha256(Path(p).read_bytes()).hexdigest()
                                          for p in infiles} and len(infiles) == 22
    assert summary["H2D_latency"]["count"] == 0 and "no host-device copy step" in summary[runner.LATENCY_NOTE_KEY]
    line = re.search(r"throughput 1000\*batchsize\.mean\(2\)/NPU_compute_time\.mean\(([\d.e-]+)\): ([\d.e-]+)",
                     capsys.readouterr().out)
    assert float(line[1]) == pytest.approx(np.mean(times)) and float(line[2]) == pytest.approx(summary["throughput"])


def test_per_sample_files_fill_the_batch_and_skip_filler_slots(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    x1 = write_inputs(tmp_path / "a", ["s0.bin", "s1.bin", "s2.bin"], (1, 3, H, W), seed=3)
    x2 = write_inputs(tmp_path / "b", ["s0.bin", "s1.bin", "s2.bin"], (1, 3, H, W), seed=4)
    assert infer.main(["--model", model, "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}",
                       "--output", str(tmp_path / "out"), "--output_dirname", "o", "--outfmt", "NPY"]) == 0
    produced = sorted(p.name for p in (tmp_path / "out" / "o").iterdir())
    assert produced == ["s0_0.npy", "s1_0.npy", "s2_0.npy"]  # the third run's filler slot writes nothing
    for name in ("s0", "s1", "s2"):
        got = np.load(tmp_path / "out" / "o" / f"{name}_0.npy")
        np.testing.assert_array_equal(got, expected_flow(x1[f"{name}.bin"], x2[f"{name}.bin"]))
    summary = json.loads((tmp_path / "out" / "o_summary.json").read_text())
    assert sorted(summary["filesinfo"]) == ["0", "1", "2"] and summary["NPU_compute_time"]["count"] == 2


def test_performance_mode_without_input(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    assert infer.main(["--model", model, "--loop", "3", "--output", str(tmp_path / "perf")]) == 0
    (folder,) = [p for p in (tmp_path / "perf").iterdir() if p.is_dir()]
    assert re.fullmatch(r"\d{4}_\d\d_\d\d-\d\d_\d\d_\d\d", folder.name)  # ais_bench's date_time folder
    np.testing.assert_array_equal(np.fromfile(folder / "pure_infer_data_0.bin", np.float32), 0)  # zero input
    summary = json.loads((tmp_path / "perf" / f"{folder.name}_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 3
    assert "throughput 1000*batchsize.mean(2)/NPU_compute_time.mean(" in capsys.readouterr().out


def test_wrong_file_size_is_one_line_naming_file_and_sizes(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    write_inputs(tmp_path / "a", ["0.bin", "1.bin"], (2, 3, H, W), seed=5)
    write_inputs(tmp_path / "b", ["0.bin", "1.bin"], (2, 3, H, W), seed=6)
    bad = tmp_path / "b" / "1.bin"
    bad.write_bytes(bad.read_bytes()[:-4])
    with pytest.raises(SystemExit) as e:
        run_main(infer.main, ["--model", model, "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}",
                              "--output", str(tmp_path / "out"), "--output_dirname", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: {2 * 3 * H * W * 4 - 4} bytes, expected {2 * 3 * H * W * 4} "
                   f"(model input x2 [2, 3, {H}, {W}] float32, 1 file(s) per run)"]
    assert not (tmp_path / "out" / "x_summary.json").exists()


def test_batchsize_only_feeds_the_throughput_figure(tmp_path, capsys):
    # as ais_bench: a --batchsize other than the model's is a warning, and the throughput uses it
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    assert infer.main(["--model", model, "--batchsize", "4", "--loop", "2", "--output", str(tmp_path / "o"),
                       "--output_dirname", "b4"]) == 0
    captured = capsys.readouterr()
    assert "warning: batch size 4 given, but the model takes batch 2" in captured.err
    summary = json.loads((tmp_path / "o" / "b4_summary.json").read_text())
    assert summary["throughput"] == pytest.approx(1000 * 4 / np.mean(summary["npu_compute_time_list"]))
    assert "throughput 1000*batchsize.mean(4)/" in captured.out


def test_om_without_ais_bench_says_where_to_get_it(tmp_path):
    assert "ais_bench" not in sys.modules
    with pytest.raises(Flownet2Error, match=r"ais_bench is not on PyPI.*gitee\.com/ascend/tools"):
        infer.main(["--model", str(tmp_path / "flownet2_bs2.om")])


def test_om_is_handed_to_ais_bench_with_the_same_arguments(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    subprocess.run([sys.executable, str(STANDINS / "standin_atc.py"), "--framework=5", f"--model={model}", f"--output={tmp_path / 'tiny'}",
                    "--input_format=NCHW", f"--input_shape=x1:2,3,{H},{W};x2:2,3,{H},{W}", "--log=debug",
                    "--soc_version=Ascend310P3"], check=True, capture_output=True)
    (tmp_path / "tiny.om.weights").write_text("official:FlowNet2_checkpoint.pth.tar\n")
    x1 = write_inputs(tmp_path / "a", ["0.bin"], (2, 3, H, W), seed=7)
    x2 = write_inputs(tmp_path / "b", ["0.bin"], (2, 3, H, W), seed=8)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(STANDINS)]))
    done = subprocess.run([sys.executable, "-m", "flownet2.infer", "--model", str(tmp_path / "tiny.om"),
                           "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--output", str(tmp_path / "out"),
                           "--output_dirname", "npu", "--outfmt", "BIN", "--batchsize", "2"],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = np.fromfile(tmp_path / "out" / "npu" / "0_0.bin", np.float32).reshape(2, 2, H, W)
    np.testing.assert_array_equal(got, expected_flow(x1["0.bin"], x2["0.bin"]))
    summary = json.loads((tmp_path / "out" / "npu_summary.json").read_text())
    assert summary[KEY] == "official:FlowNet2_checkpoint.pth.tar"  # from the .om sidecar, added after ais_bench
    assert str(tmp_path / "tiny.om") in summary["args"]
    infiles = summary["filesinfo"]["0"]["infiles"]
    assert summary[runner.DIGESTS_KEY] == {p: "sha256:" + hashlib.sha256(Path(p).read_bytes()).hexdigest()
                                          for p in infiles} and len(infiles) == 2


def test_output_dirname_needs_output(capsys):
    with pytest.raises(SystemExit) as e:
        infer.parse_args(["--model", "m.onnx", "--output_dirname", "x"])
    assert e.value.code == 2 and "--output_dirname needs --output" in capsys.readouterr().err


def test_torch_backend_writes_the_models_flow(tmp_path):
    # --backend torch (flownet2/runtime/torch_backend.py; CPU eager here): same files as the ONNX path, and the flow is
    # what the plain PyTorch model computes for the same stand-in weights.
    import torch

    from flownet2.model.checkpoint import stand_in_state_dict
    from flownet2.model.networks import FlowNet2

    shape = (2, 3, 64, 64)
    x1 = write_inputs(tmp_path / "image1", ["0.bin"], shape, seed=3)["0.bin"]
    x2 = write_inputs(tmp_path / "image2", ["0.bin"], shape, seed=4)["0.bin"]
    argv = ["--model", "stand-in:2", "--backend", "torch", "--model_size", "64,64", "--batchsize", "2",
            "--input", f"{tmp_path / 'image1'},{tmp_path / 'image2'}", "--output", str(tmp_path / "out"),
            "--output_dirname", "torch", "--warmup_count", "0"]
    assert infer.main(argv) == 0
    got = np.fromfile(tmp_path / "out" / "torch" / "0_0.bin", np.float32).reshape(2, 2, 64, 64)
    model = FlowNet2().eval()
    model.load_state_dict(stand_in_state_dict(model, 2))
    with torch.no_grad():
        ref = model(torch.from_numpy(x1), torch.from_numpy(x2)).numpy()
    assert np.abs(got - ref).max() < 1e-4
    summary = json.loads((tmp_path / "out" / "torch_summary.json").read_text())
    assert summary[KEY].startswith("stand-in:seed=2 tensors:")


# --------------------------------------------------------------------------- ais_bench's flags and devices

def test_om_is_recognised_in_every_spelling_ais_bench_takes():
    assert infer.typed_model(["--model=x.om", "--loop", "2"]) == "x.om"
    assert infer.typed_model(["-m", "x.om"]) == infer.typed_model(["-mx.om"]) == "x.om"
    assert infer.typed_model(["--mod", "x.om"]) == "x.om"  # argparse's unique prefix
    assert infer.typed_model(["--model", "a.onnx", "--model", "b.om"]) == "b.om"  # the last one counts
    assert infer.typed_model(["--loop", "2"]) is None


FAKE_AIS_BENCH = '''
import json, os, sys
plan = json.loads(os.environ["FAKE_AIS_BENCH_PLAN"])
with open(plan["log"], "w") as f:
    json.dump(sys.argv[1:], f)
for path in plan.get("modify", []):
    with open(path, "ab") as f:
        f.write(b"x")
if "summary" in plan:
    os.makedirs(os.path.dirname(plan["summary"]), exist_ok=True)
    with open(plan["summary"], "w") as f:
        json.dump({"filesinfo": plan["filesinfo"], "args": sys.argv}, f)
'''


def _fake_ais_bench(tmp_path, plan, argv):
    """`python -m flownet2.infer ARGV` with a probe ais_bench that records the argv it receives."""
    package = tmp_path / "probe" / "ais_bench"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_AIS_BENCH)
    plan = dict(plan, log=str(tmp_path / "argv.json"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path / "probe"), str(REPO)]),
               FAKE_AIS_BENCH_PLAN=json.dumps(plan))
    done = subprocess.run([sys.executable, "-m", "flownet2.infer", *argv], env=env, capture_output=True, text=True,
                          cwd=tmp_path)
    return done, json.loads((tmp_path / "argv.json").read_text())


@pytest.mark.parametrize("argv", [
    ["--model=m.om", "--debug", "1", "--display_all_summary", "True", "--dymHW", "448,1024", "--device", "0,1"],
    ["-m", "m.om", "--backend", "trtexec", "--acl_json_path", "acl.json", "--profiler=1", "--output", "o"],
    ["--input", "a,b", "-mm.om", "--outputSize", "100000", "--aipp_config", "x.config", "--pipeline", "1"],
])
def test_om_gets_exactly_the_argv_typed(tmp_path, argv):
    done, received = _fake_ais_bench(tmp_path, {}, argv)
    assert done.returncode == 0, done.stderr
    assert received == argv  # nothing added, nothing removed, nothing reordered


def _batch_files(tmp_path, n):
    x1 = write_inputs(tmp_path / "a", [f"{k}.bin" for k in range(n)], (2, 3, H, W), seed=11)
    x2 = write_inputs(tmp_path / "b", [f"{k}.bin" for k in range(n)], (2, 3, H, W), seed=12)
    return x1, x2


def test_om_hand_over_adds_input_digests_after_the_run(tmp_path):
    _batch_files(tmp_path, 2)
    (tmp_path / "m.om").write_text("{}")
    (tmp_path / "m.om.weights").write_text("official:FlowNet2_checkpoint.pth.tar\n")
    infiles = [str(tmp_path / "a" / "1.bin"), str(tmp_path / "b" / "1.bin")]
    plan = {"summary": str(tmp_path / "out" / "npu_summary.json"),
            "filesinfo": {"0": {"infiles": infiles, "outfiles": []}}}
    argv = ["--model", "m.om", "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--output", str(tmp_path / "out"),
            "--output_dirname", "npu"]
    done, _ = _fake_ais_bench(tmp_path, plan, argv)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "npu_summary.json").read_text())
    assert summary[runner.DIGESTS_KEY] == {p: "sha256:" + hashlib.sha256(Path(p).read_bytes()).hexdigest()
                                          for p in infiles}
    assert summary[KEY] == "official:FlowNet2_checkpoint.pth.tar"


def test_om_inputs_changed_during_the_run_are_one_line_and_no_digests(tmp_path):
    _batch_files(tmp_path, 1)
    (tmp_path / "m.om").write_text("{}")
    infiles = [str(tmp_path / "a" / "0.bin"), str(tmp_path / "b" / "0.bin")]
    plan = {"summary": str(tmp_path / "out" / "npu_summary.json"), "modify": [infiles[1]],
            "filesinfo": {"0": {"infiles": infiles, "outfiles": []}}}
    done, _ = _fake_ais_bench(tmp_path, plan, ["--model", "m.om", "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}",
                                               "--output", str(tmp_path / "out"), "--output_dirname", "npu"])
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {infiles[1]}: the input file changed while ais_bench ran; its predictions cannot be tied to the "
        "file's contents (run again with the inputs left alone)"]
    assert runner.DIGESTS_KEY not in json.loads((tmp_path / "out" / "npu_summary.json").read_text())


def test_ascend_only_flags_on_an_onnx_are_refused_one_line_each(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    with pytest.raises(SystemExit) as e:
        run_main(infer.main, ["--model", model, "--dymHW", "448,1024", "--profiler=1", "--loop", "2"])
    assert e.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --dymHW controls dynamic image size of an .om; an exported FlowNet2 has a static size; it has no "
        "meaning on ONNX Runtime or PyTorch",
        "error: --profiler controls the NPU's profiler (msprof); it has no meaning on ONNX Runtime or PyTorch"]


def test_ais_bench_flags_that_mean_something_here_are_honoured(tmp_path, capsys):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    x1 = write_inputs(tmp_path / "a", ["s0.bin", "s1.bin"], (1, 3, H, W), seed=3)
    x2 = write_inputs(tmp_path / "b", ["s0.bin", "s1.bin"], (1, 3, H, W), seed=4)
    # one run of two per-sample files; the output split along axis 1 (the flow's u and v) instead of 0
    assert infer.main([f"--model={model}", "-i", f"{tmp_path / 'a'},{tmp_path / 'b'}", "-o", str(tmp_path / "out"),
                       "--output_dirname", "ax1", "--output_batchsize_axis", "1", "--debug", "1",
                       "--display_all_summary", "True", "--run_mode", "array", "--outfmt", "NPY"]) == 0
    flow = expected_flow(np.concatenate([x1["s0.bin"], x1["s1.bin"]]), np.concatenate([x2["s0.bin"], x2["s1.bin"]]))
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "ax1" / "s0_0.npy"), flow[:, 0:1])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "ax1" / "s1_0.npy"), flow[:, 1:2])
    captured = capsys.readouterr()
    assert "[INFO] H2D_latency (ms): min = 0.0" in captured.out and "no host-device copy step" in captured.out
    assert "[DEBUG]" in captured.err and "x1" in captured.err
    with pytest.raises(SystemExit):
        infer.parse_args(["--model", model, "--run_mode", "tensor"])  # stages tensors on an NPU: refused


def test_device_list_runs_once_per_device_on_its_share(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    x1, x2 = _batch_files(tmp_path, 3)
    assert infer.main(["--model", model, "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--output",
                       str(tmp_path / "out"), "--output_dirname", "multi", "--device", "0,1"]) == 0
    shares = {"device0": ["0", "1"], "device1": ["2"]}  # ceil(3 / 2) files each, in order, as ais_bench
    for device, ids in shares.items():
        assert sorted(p.name for p in (tmp_path / "out" / "multi" / device).iterdir()) == [f"{k}_0.bin" for k in ids]
        for k in ids:
            got = np.fromfile(tmp_path / "out" / "multi" / device / f"{k}_0.bin", np.float32).reshape(2, 2, H, W)
            np.testing.assert_array_equal(got, expected_flow(x1[f"{k}.bin"], x2[f"{k}.bin"]))
        summary = json.loads((tmp_path / "out" / "multi" / f"{device}_summary.json").read_text())
        assert len(summary["filesinfo"]) == len(ids) and len(summary[runner.DIGESTS_KEY]) == 2 * len(ids)


class _CopyingSession:
    """A session whose backend times its copies apart from the run (as PyTorch on CUDA does)."""
    inputs = [("x1", [1, 3, H, W], np.dtype(np.float32)), ("x2", [1, 3, H, W], np.dtype(np.float32))]
    batch_size, size, label, copy_ms = 1, (H, W), None, None

    def __init__(self):
        self.calls = 0

    def run(self, arrays):
        self.calls += 1
        self.copy_ms = (0.5 * self.calls, 0.25 * self.calls)
        return [arrays[0][:, :2]], 10.0 * self.calls


def test_h2d_and_d2h_come_from_the_backend_where_it_has_them():
    session = _CopyingSession()
    summary = runner.run_session(session, loop=3, warmup_count=1)
    # warm-up is call 1, the timed runs are calls 2, 3, 4
    assert summary["npu_compute_time_list"] == [20.0, 30.0, 40.0]
    assert summary["H2D_latency"]["mean"] == pytest.approx(1.5) and summary["H2D_latency"]["count"] == 3
    assert summary["D2H_latency"]["max"] == pytest.approx(1.0) and summary[runner.LATENCY_NOTE_KEY] is None


def test_emulate_runs_the_rewritten_onnx(tmp_path, monkeypatch):
    import types

    def emulate_onnx(model, kind):  # stand-in rewrite: the real one is flownet2.onnx.precision's
        assert kind == "fp16"
        for init in model.graph.initializer:
            if init.name == "two":
                init.CopyFrom(numpy_helper.from_array(np.array(4.0, np.float32), "two"))
        return model

    monkeypatch.setitem(sys.modules, "flownet2.onnx.precision", types.SimpleNamespace(emulate_onnx=emulate_onnx))
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    x1, x2 = _batch_files(tmp_path, 1)
    assert infer.main(["--model", model, "--input", f"{tmp_path / 'a'},{tmp_path / 'b'}", "--output",
                       str(tmp_path / "out"), "--output_dirname", "e", "--emulate", "fp16"]) == 0
    got = np.fromfile(tmp_path / "out" / "e" / "0_0.bin", np.float32).reshape(2, 2, H, W)
    np.testing.assert_array_equal(got, 4 * x1["0.bin"][:, 0:2] + x2["0.bin"][:, 1:3])
    with pytest.raises(Flownet2Error, match="emulation runs .onnx models only"):
        infer.main(["--model", "stand-in:0", "--emulate", "fp16", "--model_size", "64,64"])


def test_backend_must_match_the_model(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    with pytest.raises(Flownet2Error, match="PyTorch runs a checkpoint or stand-in:SEED"):
        infer.main(["--model", model, "--backend", "torch"])
    with pytest.raises(Flownet2Error, match="ONNX Runtime runs .onnx models"):
        infer.main(["--model", "stand-in:0", "--backend", "onnxruntime"])
    with pytest.raises(Flownet2Error, match="precision fp16 applies to PyTorch models"):
        infer.main(["--model", model, "--precision", "fp16"])


# --------------------------------------------------------------------------- PyTorch on the CPU: fp32, bf16

def test_cpu_refuses_fp16_and_bf16_without_bf16_units(monkeypatch):
    from flownet2.runtime import torch_backend

    with pytest.raises(Flownet2Error, match="precision fp16 needs a CUDA GPU"):
        infer.main(["--model", "stand-in:0", "--model_size", "64,64", "--precision", "fp16"])
    monkeypatch.setattr(torch_backend, "cpu_has_bf16", lambda: False)
    with pytest.raises(Flownet2Error, match=r"^precision bf16 on the CPU needs bf16 units \(AVX512_BF16 or AMX\), "
                                            "which this CPU lacks; use fp32$"):
        infer.main(["--model", "stand-in:0", "--model_size", "64,64", "--precision", "bf16"])


def test_cpu_bf16_units_are_read_from_the_cpu_flags(tmp_path):
    from flownet2.runtime import torch_backend

    for flags, has in (("fpu avx2 avx512f avx512_bf16 amx_tile", True), ("fpu avx2 amx_bf16", True),
                       ("fpu avx2 avx512f avx512_fp16", False)):
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert torch_backend.cpu_has_bf16(str(tmp_path / "cpuinfo")) is has


def test_cpu_bf16_path_runs_the_mixed_model_close_to_fp32(tmp_path, monkeypatch):
    # This machine may lack bf16 units: the detection is overridden, so the path itself is what runs.
    import torch

    from flownet2.model.checkpoint import stand_in_state_dict
    from flownet2.model.networks import FlowNet2
    from flownet2.runtime import torch_backend

    monkeypatch.setattr(torch_backend, "cpu_has_bf16", lambda: True)
    rng = np.random.default_rng(5)
    x1 = (0.3 * rng.standard_normal((1, 3, 64, 64))).astype(np.float32)
    x2 = (np.roll(x1, (1, 3), axis=(2, 3)) + 0.05 * rng.standard_normal(x1.shape)).astype(np.float32)
    for name, x in (("image1", x1), ("image2", x2)):
        (tmp_path / name).mkdir()
        x.tofile(tmp_path / name / "0.bin")
    flows = {}
    for precision in ("fp32", "bf16"):
        assert infer.main(["--model", "stand-in:0", "--model_size", "64,64", "--precision", precision,
                           "--input", f"{tmp_path / 'image1'},{tmp_path / 'image2'}", "--output",
                           str(tmp_path / "out"), "--output_dirname", precision, "--warmup_count", "0"]) == 0
        flows[precision] = np.fromfile(tmp_path / "out" / precision / "0_0.bin", np.float32).reshape(1, 2, 64, 64)
    model = FlowNet2().eval()
    model.load_state_dict(stand_in_state_dict(model, 0))
    with torch.no_grad():
        ref = model(torch.from_numpy(x1), torch.from_numpy(x2)).numpy()
    epe = {p: float(np.sqrt(((f - ref) ** 2).sum(1)).mean()) for p, f in flows.items()}
    assert np.abs(ref).max() > 5  # flows of pixels: the drift is not small by being a drift of nothing
    assert epe["fp32"] < 1e-4
    assert 1e-3 < epe["bf16"] < 0.35  # rounded (it did run in bf16), yet close

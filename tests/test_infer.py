"""The ais_bench-compatible runner on a tiny hand-built model whose output is known in closed form:
flow = 2 * x1[:, 0:2] + x2[:, 1:3]."""
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

from flownet2 import infer
from flownet2.cli import run_main
from flownet2.errors import Flownet2Error
from flownet2.provenance import KEY

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "standins"
SUMMARY_KEYS = {"filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput",
                "npu_compute_time_list", "pid", KEY}
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
    assert infer.natural_sorted(names) == ["d/0.bin", "d/1.bin", "d/9.bin", "d/10.bin", "d/A2.bin", "d/a10.bin"]


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


def test_batchsize_that_the_model_does_not_take_is_refused(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    with pytest.raises(Flownet2Error, match="--batchsize 4, but the model takes batch 2"):
        infer.main(["--model", model, "--batchsize", "4"])


def test_om_without_ais_bench_says_where_to_get_it(tmp_path):
    assert "ais_bench" not in sys.modules
    with pytest.raises(Flownet2Error, match=r"ais_bench is not on PyPI.*gitee\.com/ascend/tools"):
        infer.main(["--model", str(tmp_path / "flownet2_bs2.om")])


def test_om_is_handed_to_ais_bench_with_the_same_arguments(tmp_path):
    model = tiny_model(tmp_path / "tiny.onnx", batch=2)
    subprocess.run([str(STANDINS / "atc"), "--framework=5", f"--model={model}", f"--output={tmp_path / 'tiny'}",
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


def test_output_dirname_needs_output(capsys):
    with pytest.raises(SystemExit) as e:
        infer.parse_args(["--model", "m.onnx", "--output_dirname", "x"])
    assert e.value.code == 2 and "--output_dirname needs --output" in capsys.readouterr().err


def test_torch_backend_writes_the_models_flow(tmp_path):
    # --backend torch (flownet2/gpu.py; CPU eager here): same files as the ONNX path, and the flow is
    # what the plain PyTorch model computes for the same stand-in weights.
    import torch

    from flownet2.checkpoint import stand_in_state_dict
    from flownet2.model import FlowNet2

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
    assert summary[KEY] == "stand-in:seed=2"

"""The Ascend side without a card: the stand-in `atc` and `ais_bench` accept what the real tools accept,
scripts/atc.sh passes ATC flags through untouched and finds CANN, and the two-tier ATC op check."""
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from flownet2.errors import Flownet2Error
from flownet2.model.provenance import KEY
from flownet2.onnx import atc, atc_ops

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "standins"
B, H, W = 2, 4, 6


def add_model(path, *, batch=B, ops=("Add",), label="official:FlowNet2_checkpoint.pth.tar"):
    """flow = x1 + x2 (then any extra single-input ops): an output known in closed form."""
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 3, H, W]) for n in ("x1", "x2")]
    names = [f"t{k}" for k in range(len(ops) - 1)] + ["flow"]
    nodes = [helper.make_node("Add", ["x1", "x2"], [names[0]], name="add")]
    for k, op in enumerate(ops[1:], 1):
        nodes.append(helper.make_node(op, [names[k - 1]], [names[k]], name=f"{op.lower()}{k}"))
    out = helper.make_tensor_value_info("flow", TensorProto.FLOAT, [batch, 3, H, W])
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, [out]),
                              opset_imports=[helper.make_opsetid("", 13)])
    if label is not None:
        model.metadata_props.add(key=KEY, value=label)
    onnx.save(model, path)
    return path


def _load_standin_atc():
    spec = importlib.util.spec_from_file_location("standin_atc_module", STANDINS / "standin_atc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def standin_atc(*args):
    """The stand-in atc's main() on `args`, in this process (the chip-name tables run it dozens of times;
    the `atc` wrapper itself runs as a program in the atc.sh tests): (returncode, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            _STANDIN_ATC.main([str(a) for a in args])
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


_STANDIN_ATC = _load_standin_atc()


def guide_flags(model, output, soc="Ascend310P3"):
    return ["--framework=5", f"--model={model}", f"--output={output}", "--input_format=NCHW",
            f"--input_shape=x1:{B},3,{H},{W};x2:{B},3,{H},{W}", "--log=debug", f"--soc_version={soc}"]


# --------------------------------------------------------------------------- stand-in atc


@pytest.mark.parametrize("soc", ["Ascend310", "Ascend310P1", "Ascend310P3", "Ascend310P5", "Ascend310P7",
                                 "Ascend310B1", "Ascend310B4", "Ascend910", "Ascend910A", "Ascend910B",
                                 "Ascend910ProA", "Ascend910ProB", "Ascend910PremiumA", "Ascend910B1",
                                 "Ascend910B2C", "Ascend910B4", "Ascend910_9391", "Ascend910_9362"])
def test_standin_atc_takes_every_chip_name(tmp_path, soc):
    run = standin_atc(*guide_flags(add_model(tmp_path / "m.onnx"), tmp_path / "m", soc))
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "m.om").read_text())["soc_version"] == soc


@pytest.mark.parametrize("soc", ["310P3", "Ascend311", "Ascend310P9", "AscendXYZ"])
def test_standin_atc_refuses_what_is_not_a_chip(tmp_path, soc):
    run = standin_atc(*guide_flags(add_model(tmp_path / "m.onnx"), tmp_path / "m", soc))
    assert run.returncode == 1 and "is not an Ascend chip name" in run.stderr


def precision_files(folder, keep_lines):
    """A --keep_dtype file with `keep_lines` and a --modify_mixlist file, as ATC reads them."""
    keep, mix = folder / "keep.cfg", folder / "mix.json"
    keep.write_text(keep_lines)
    mix.write_text('{"black-list": {"to-add": ["Sqrt"]}}')
    return keep, mix


def test_standin_atc_takes_gflags_spellings_and_real_flags(tmp_path):
    model = add_model(tmp_path / "m.onnx")
    keep, mix = precision_files(tmp_path, "OpType::Conv2D\n")
    run = standin_atc("--framework", "5", "-model", model, f"-output={tmp_path / 'm'}", "--soc_version",
                      "Ascend310P3", "--precision_mode=allow_mix_precision", "--keep_dtype", keep,
                      "--modify_mixlist", mix, "--op_select_implmode=high_precision", "--precision_mode_v2",
                      "mixed_float16", "--oo_level=O3", "--log=info")
    assert run.returncode == 0, run.stderr
    om = json.loads((tmp_path / "m.om").read_text())
    assert om["flags"]["keep_dtype"] == str(keep) and om["flags"]["modify_mixlist"] == str(mix)
    assert om["precision_mode"] == "allow_mix_precision" and om["flags"]["oo_level"] == "O3"
    assert om["input_shape"] == {"x1": [B, 3, H, W], "x2": [B, 3, H, W]}  # from the model: no --input_shape


@pytest.mark.parametrize("extra, message", [
    (["--keep_dtype=/nonexistent/keep.cfg"], "--keep_dtype=/nonexistent/keep.cfg: file not found"),
    (["--modify_mixlist", "/nonexistent/ops.json"], "--modify_mixlist=/nonexistent/ops.json: file not found"),
    (["--precision_mode=fp8"], "--precision_mode=fp8 is not one of"),
    (["--no_such_flag=1"], "unknown command line flag 'no_such_flag'"),
    (["--input_shape=x1:3,3,4,6;x2:2,3,4,6"], "does not match the model's input x1"),
    (["--input_shape=y:2,3,4,6"], "'y', which is not an input"),
])
def test_standin_atc_refuses_what_atc_refuses(tmp_path, extra, message):
    run = standin_atc(*guide_flags(add_model(tmp_path / "m.onnx"), tmp_path / "m"), *extra)
    assert run.returncode == 1 and message in run.stderr
    assert not (tmp_path / "m.om").exists()


def test_standin_atc_runs_without_python_on_path(tmp_path):
    """tests/standins/atc starts the Python in $PYTHON, not the first python3 on PATH."""
    empty = tmp_path / "bin"
    empty.mkdir()
    run = subprocess.run([str(STANDINS / "atc"), *guide_flags(add_model(tmp_path / "m.onnx"), tmp_path / "m")],
                         env={"PATH": str(empty), "PYTHON": sys.executable}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "m.om").exists()


# --------------------------------------------------------------------------- stand-in ais_bench


@pytest.fixture
def om_and_inputs(tmp_path):
    """A stand-in .om of flow = x1 + x2 (batch 2) and 3 batch files per input."""
    model = add_model(tmp_path / "m.onnx")
    assert standin_atc(*guide_flags(model, tmp_path / "m")).returncode == 0
    rng = np.random.default_rng(0)
    x = {}
    for name in ("image1", "image2"):
        (tmp_path / name).mkdir()
        for k in range(3):
            x[name, k] = rng.standard_normal((B, 3, H, W)).astype(np.float32)
            x[name, k].tofile(tmp_path / name / f"{k}.bin")
    return tmp_path / "m.om", x


def ais_bench(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(STANDINS)]))
    return subprocess.run([sys.executable, "-m", "ais_bench", *map(str, args)], env=env, capture_output=True,
                          text=True)


def assert_sums(folder, x, ks):
    for k in ks:
        got = np.fromfile(folder / f"{k}_0.bin", np.float32).reshape(B, 3, H, W)
        np.testing.assert_array_equal(got, x["image1", k] + x["image2", k])


def test_standin_ais_bench_takes_the_guide_spelling_and_real_only_flags(om_and_inputs):
    om, x = om_and_inputs
    d = om.parent
    argv = [f"--model={om}", "--input", f"{d / 'image1'},{d / 'image2'}", "--output", d / "out",
            "--output_dirname", "npu", "--outfmt", "BIN", "--batchsize", "2", "--debug", "1",
            "--display_all_summary", "True", "--run_mode", "array", "--output_batchsize_axis", "0",
            "--warmup-count", "1", "--dymBatch", "0", "--profiler_rename", "0", "--threads", "1", "--npu_id", "0",
            "--perf", "0", "--pipeline", "false", "--energy_consumption", "0", "--device", "0"]
    run = ais_bench(*argv)
    assert run.returncode == 0, run.stderr[-2000:]
    assert_sums(d / "out" / "npu", x, range(3))
    summary = json.loads((d / "out" / "npu_summary.json").read_text())
    assert summary["args"][1:] == [str(a) for a in argv]  # exactly what it was handed
    assert summary["args"][0].endswith("__main__.py")    # sys.argv[0] of `python -m ais_bench`
    assert not [k for k in summary if k.startswith("flownet2.")]
    assert {"filesinfo", "NPU_compute_time", "H2D_latency", "D2H_latency", "throughput", "pid"} <= set(summary)


def test_standin_ais_bench_takes_short_flags_and_prints_its_argv(om_and_inputs):
    om, x = om_and_inputs
    d = om.parent
    run = ais_bench("-m", om, "-i", f"{d / 'image1'},{d / 'image2'}", "-o", d / "out", "-l", "2")
    assert run.returncode == 0, run.stderr[-2000:]
    argv_line = next(line for line in run.stdout.splitlines() if "stand-in ais_bench argv" in line)
    assert json.loads(argv_line.split(": ", 1)[1])[:2] == ["-m", str(om)]
    (folder,) = [p for p in (d / "out").iterdir() if p.is_dir()]  # ais_bench's date_time folder
    assert_sums(folder, x, range(3))


def test_standin_ais_bench_runs_once_per_device(om_and_inputs):
    om, x = om_and_inputs
    d = om.parent
    run = ais_bench("--model", om, "--input", f"{d / 'image1'},{d / 'image2'}", "--output", d / "out",
                    "--output_dirname", "multi", "--device", "0,1")
    assert run.returncode == 0, run.stderr[-2000:]
    # ais_bench shares 3 files out as ceil(3/2) = 2 to device 0 and the rest to device 1
    assert_sums(d / "out" / "multi" / "device0", x, [0, 1])
    assert_sums(d / "out" / "multi" / "device1", x, [2])
    assert sorted(p.name for p in (d / "out" / "multi" / "device1").iterdir()) == ["2_0.bin"]
    for n in (0, 1):
        summary = json.loads((d / "out" / "multi" / f"device{n}_summary.json").read_text())
        assert summary["args"][-2:] == ["--device", "0,1"]


def test_standin_ais_bench_batchsize_only_feeds_the_throughput(om_and_inputs):
    om, _ = om_and_inputs
    d = om.parent
    run = ais_bench("--model", om, "--output", d / "out", "--output_dirname", "perf", "--batchsize", "8")
    assert run.returncode == 0, run.stderr[-2000:]
    summary = json.loads((d / "out" / "perf_summary.json").read_text())
    assert summary["throughput"] == pytest.approx(1000 * 8 / summary["NPU_compute_time"]["mean"])


@pytest.mark.parametrize("extra, message", [
    (["--outfmt", "PNG"], "invalid choice: 'PNG'"),
    (["--device", "256"], "valid value range is [0, 255]"),
    (["--output_dirname", "x"], "--output_dirname cann't be used alone"),
    (["--acl_json_path", "/nonexistent/acl.json"], "/nonexistent/acl.json does not exist"),
    (["--debug", "maybe"], "Boolean value expected"),
    (["--profiler", "1", "--dump", "1", "--output", "o"], "--profiler cannot be true at the same time"),
])
def test_standin_ais_bench_refuses_what_ais_bench_refuses(om_and_inputs, extra, message):
    run = ais_bench("--model", om_and_inputs[0], *extra)
    assert run.returncode == 2 and message in run.stderr


# --------------------------------------------------------------------------- scripts/atc.sh


def atc_sh(*args, path=None, **env):
    full = dict(os.environ, PYTHON=sys.executable, PATH=path or f"{STANDINS}{os.pathsep}{os.environ['PATH']}",
                **env)
    return subprocess.run(["bash", str(REPO / "scripts" / "atc.sh"), *map(str, args)], env=full,
                          capture_output=True, text=True)


def test_atc_sh_passes_atc_flags_through_unchanged(tmp_path):
    model = add_model(tmp_path / "m.onnx")
    keep, mix = precision_files(tmp_path, "conv1\nOpType::ReduceSumD\n")
    typed = ["--keep_dtype", str(keep), f"--modify_mixlist={mix}", "--precision_mode", "allow_mix_precision",
             "--op_select_implmode=high_precision", "--oo_level", "O3", "--log=info"]
    run = atc_sh("--model", model, "--soc", "310P3", *typed)
    assert run.returncode == 0, run.stderr
    om = json.loads((tmp_path / "flownet2_bs2.om").read_text())
    argv = om["argv"]
    assert argv[-len(typed):] == typed  # as typed, in order, after the guide's flags
    assert [a for a in argv if a.startswith("--log")] == ["--log=info"]  # the user's --log replaced ours
    assert "--soc_version=Ascend310P3" in argv and f"--input_shape=x1:{B},3,{H},{W};x2:{B},3,{H},{W}" in argv
    assert om["flags"]["keep_dtype"] == str(keep) and om["precision_mode"] == "allow_mix_precision"


def test_atc_sh_refuses_a_missing_keep_dtype_file_before_atc(tmp_path):
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), "--soc", "310P3", "--keep_dtype", tmp_path / "no.cfg")
    assert run.returncode == 2
    assert run.stderr.strip() == f"atc.sh: error: --keep_dtype {tmp_path / 'no.cfg'}: file not found"
    assert not (tmp_path / "flownet2_bs2.om").exists()


def test_atc_sh_hands_unknown_flags_to_atc(tmp_path):
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), "--soc", "310P3", "--no_such_atc_flag=1")
    assert run.returncode == 1  # atc's own refusal, not atc.sh's
    assert "unknown command line flag 'no_such_atc_flag'" in run.stderr


def test_atc_sh_copies_the_weights_label_as_stored(tmp_path):
    label = 'stand-in:seed=3 {"digest": "sha256:ab cd"}'
    run = atc_sh("--model", add_model(tmp_path / "m.onnx", label=label), "--soc", "310P3")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "flownet2_bs2.om.weights").read_text() == label + "\n"
    run = atc_sh("--model", add_model(tmp_path / "m.onnx", label=None), "--soc", "310P3")
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "flownet2_bs2.om.weights").exists()  # a stale label is not left behind
    assert "weights: unknown" in run.stdout


def fake_cann(folder):
    """A CANN install whose set_env.sh puts the stand-in atc on PATH."""
    folder.mkdir(parents=True)
    (folder / "set_env.sh").write_text(f'export PATH="{STANDINS}:$PATH"\n')
    return folder / "set_env.sh"


@pytest.fixture
def no_cann_path():
    """PATH without atc, or skip where a real CANN is installed (it would be found first)."""
    if Path("/usr/local/Ascend").exists():
        pytest.skip("a real CANN toolkit is installed here")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "atc").exists())
    return path


@pytest.mark.parametrize("layouts, chosen", [(["ascend-toolkit"], "ascend-toolkit"), (["cann"], "cann"),
                                             (["ascend-toolkit", "cann"], "cann")])
def test_atc_sh_finds_cann_under_home(tmp_path, no_cann_path, layouts, chosen):
    for layout in layouts:
        fake_cann(tmp_path / "home" / "Ascend" / layout)
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), "--soc", "310P3", path=no_cann_path,
                 HOME=str(tmp_path / "home"), ASCEND_HOME_PATH="")
    assert run.returncode == 0, run.stderr
    assert f"atc.sh: sourcing {tmp_path / 'home' / 'Ascend' / chosen / 'set_env.sh'}" in run.stdout


def test_atc_sh_finds_cann_from_ascend_home_path(tmp_path, no_cann_path):
    env = fake_cann(tmp_path / "opt" / "ascend-toolkit")
    (tmp_path / "opt" / "ascend-toolkit" / "latest").mkdir()
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), "--soc", "310P3", path=no_cann_path,
                 HOME=str(tmp_path), ASCEND_HOME_PATH=str(tmp_path / "opt" / "ascend-toolkit" / "latest"))
    assert run.returncode == 0, run.stderr
    assert "atc.sh: sourcing" in run.stdout and os.path.samefile(
        run.stdout.split("atc.sh: sourcing ")[1].split("\n")[0], env)


def test_atc_sh_explicit_cann_folder(tmp_path, no_cann_path):
    env = fake_cann(tmp_path / "my-cann")
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), "--soc", "310P3", "--cann", tmp_path / "my-cann",
                 path=no_cann_path, HOME=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert f"atc.sh: sourcing {env}" in run.stdout
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), "--cann", tmp_path / "nowhere", path=no_cann_path)
    assert run.returncode == 2 and "--cann" in run.stderr and "no set_env.sh there" in run.stderr


def test_atc_sh_without_any_cann_says_so_in_one_line(tmp_path, no_cann_path):
    run = atc_sh("--model", add_model(tmp_path / "m.onnx"), path=no_cann_path, HOME=str(tmp_path),
                 ASCEND_HOME_PATH="")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "atc not found" in lines[0] and "--backend onnxruntime" in lines[0]


# --------------------------------------------------------------------------- the op check


def test_op_list_tiers_and_their_sources():
    tiers = atc_ops.load_op_tiers()
    published, cann = tiers[atc_ops.PUBLISHED], tiers[atc_ops.CANN]
    assert published <= cann
    assert len(published) == 24 and {"Gather", "Flatten", "Resize", "Pad", "ReduceMean"} <= published
    assert not {"MatMul", "GatherElements", "Tile", "Expand"} & published  # not in the guide's graph
    known = {s.name for s in onnx.defs.get_all_schemas_with_history() if s.domain == ""}
    assert cann <= known, cann - known
    header = Path(atc_ops.OPS_FILE).read_text(encoding="utf-8")
    assert "ModelZoo-PyTorch" in header and "Flownet2_for_Pytorch" in header and "hiascend.com" in header


def graph(ops, domain=""):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    nodes, prev = [], "x"
    for k, op in enumerate(ops):
        nodes.append(helper.make_node(op, [prev], [f"t{k}"], name=f"n{k}_{op}",
                                      domain=domain if op == "Foo" else ""))
        prev = f"t{k}"
    y = helper.make_tensor_value_info(prev, TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(nodes, "g", [x], [y]))


def test_check_ops_sorts_nodes_into_tiers():
    assert atc_ops.check_ops(graph(["Sqrt", "Floor", "Transpose"])) == ({}, {})
    found = atc_ops.check_ops(graph(["Sqrt", "Relu", "Relu", "Mish", "Foo"], domain="com.example"))
    assert found.unproven == {"Relu": ["n1_Relu", "n2_Relu"]}
    assert found.unknown == {"Mish": ["n3_Mish"], "com.example::Foo": ["n4_Foo"]}


def test_op_check_messages_warn_for_tier_two_and_refuse_the_rest(tmp_path):
    lines = atc.op_check_messages(graph(["Sqrt", "Relu"]), "m.onnx")
    assert "unproven on this network" in lines[0] and lines[1].strip() == "Relu (1 node): n1_Relu"
    with pytest.raises(Flownet2Error, match=r"m\.onnx: op type\(s\) on neither list.*Mish \(1 node\): n1_Mish"):
        atc.op_check_messages(graph(["Sqrt", "Mish"]), "m.onnx")


def test_atc_sh_warns_for_tier_two_and_refuses_unknown_ops(tmp_path):
    run = atc_sh("--model", add_model(tmp_path / "a.onnx", ops=("Add", "Relu")), "--soc", "310P3")
    assert run.returncode == 0, run.stderr
    assert "unproven on this network" in run.stderr and "Relu (1 node): relu1" in run.stderr
    mish = add_model(tmp_path / "b.onnx", ops=("Add", "Mish"))
    run = atc_sh("--model", mish, "--soc", "310P3", "--output", tmp_path / "b")
    assert run.returncode == 2 and "Mish (1 node): mish1" in run.stderr and "--skip-op-check" in run.stderr
    assert not (tmp_path / "b.om").exists()
    run = atc_sh("--model", mish, "--soc", "310P3", "--output", tmp_path / "b", "--skip-op-check")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "b.om").exists()


def test_prepare_prints_the_static_shape(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.run([sys.executable, "-m", "flownet2.onnx.atc", "prepare", str(add_model(tmp_path / "m.onnx"))],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.split() == [str(B), str(H), str(W)]
    model = onnx.load(tmp_path / "m.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    assert atc.static_input_shape(model) is None
    run = subprocess.run([sys.executable, "-m", "flownet2.onnx.atc", "prepare", str(tmp_path / "none.onnx")],
                         env=env, capture_output=True, text=True)
    assert run.returncode == 2 and "none.onnx: model file not found" in run.stderr

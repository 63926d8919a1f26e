"""scripts/run_all.sh end to end on a tiny synthetic Sintel, once through ONNX Runtime (with fp16
emulation) and once through the Ascend route with stand-in `atc` / `ais_bench` (tests/standins) first on
PATH / PYTHONPATH, in one work folder; plus scripts/atc.sh on its own.

Every run_all.sh run exports, simplifies and fixes the model (most of its time, whatever the frame size),
so the chain runs once per test session at the smallest size that still has two scenes, a short last
batch and flows of several pixels; later runs in the same folder skip those stages. The chain runs
FlowNet2-S stand-in weights (a 150 MB export instead of 620 MB: half the time): every stage is the same
code for every member, and the full FlowNet2's export is checked against PyTorch in test_export.py."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from flownet2.data.synthetic import make_synthetic
from flownet2.model.provenance import KEY

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "tests" / "standins"
BS, H, W, LOOP = 4, 64, 128, 1  # 2 scenes x 3 pairs = 6 pairs: the second batch has 2 filler slots
ARCH = "s"  # the member the chain runs (see above)
STAND_IN_0 = re.compile(r"stand-in:seed=0 arch:FlowNet2-S tensors:[0-9a-f]{16}")  # the weights label, fingerprint included


def run_all(work, *flags, standins=False):
    env = dict(os.environ)
    if standins:
        env["PATH"] = f"{STANDINS}{os.pathsep}{env['PATH']}"
        env["PYTHONPATH"] = os.pathsep.join([str(STANDINS)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["PYTHON"] = sys.executable
    return subprocess.run(["bash", str(REPO / "scripts" / "run_all.sh"), "--workdir", str(work), "--arch", ARCH,
                           *flags],
                          env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One work folder through both backends. The ONNX Runtime run makes the synthetic dataset itself
    (run_all.sh with no dataset) and also emulates fp16; the Ascend run reads a copy of that dataset
    (`cp -p`-like: file times kept) through --dataset and reuses every ONNX stage.

    About 50 s on 2 cores: two full run_all.sh runs, the first exporting the model."""
    work = tmp_path_factory.mktemp("chain") / "work"
    flags = ["--height", str(H), "--width", str(W), "--batch-size", str(BS), "--loop", str(LOOP)]
    ort_run = run_all(work, *flags, "--backend", "onnxruntime", "--emulate", "fp16")
    dataset = work.parent / "dataset"
    shutil.copytree(work / "synthetic" / "training", dataset)  # copy2: times kept
    ascend_run = run_all(work, *ascend_flags(dataset), standins=True)
    return work, ort_run, ascend_run


def ascend_flags(dataset):
    # the ONNX Runtime run's form (the Ascend default is the slices one): the ONNX stages are reused
    return ["--dataset", str(dataset), "--batch-size", str(BS), "--loop", str(LOOP), "--backend", "ascend",
            "--correlation", "matmul"]


def read_flo(path):
    """Middlebury .flo, parsed here independently of flownet2.data.flo."""
    raw = Path(path).read_bytes()
    assert np.frombuffer(raw[:4], "<f4")[0] == np.float32(202021.25)
    w, h = np.frombuffer(raw[4:12], "<i4")
    return np.frombuffer(raw[12:], "<f4").reshape(h, w, 2)


def independent_epe(work, name):
    """Mean over pairs of the mean end-point error, from the raw prediction files and the .flo truth."""
    manifest = json.loads((work / f"prep_bs{BS}" / "manifest.json").read_text())
    epes = []
    for pair in manifest["pairs"]:
        pred = np.fromfile(work / "result" / name / f"{pair['batch']}_0.bin", np.float32).reshape(BS, 2, H, W)
        truth = read_flo(pair["flow"])
        h, w = pair["size"]
        diff = pred[pair["slot"], :, :h, :w].transpose(1, 2, 0) - truth
        epes.append(np.sqrt((diff.astype(np.float64) ** 2).sum(-1)).mean())
    return len(epes), float(np.mean(epes))


def printed_epe(stdout):
    """(samples, EPE) of the closing summary: the fp32 line where an emulated one follows it."""
    found = re.findall(r"(\d+) samples, Average EPE = ([\d.]+)", stdout[stdout.index("=== done"):])
    assert found, stdout[-3000:]
    return int(found[0][0]), float(found[0][1])


def test_onnxruntime_backend_runs_every_stage(chain):
    work, run, _ = chain
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "STAND-IN WEIGHTS" in run.stdout
    prep = work / f"prep_bs{BS}"
    assert sorted(p.name for p in (work / "synthetic" / "training" / "flow").iterdir()) == ["synthetic_1",
                                                                                            "synthetic_2"]
    for folder in ("image1", "image2"):
        assert sorted(p.name for p in (prep / folder).iterdir()) == ["0.bin", "1.bin"]
        assert all(p.stat().st_size == BS * 3 * H * W * 4 for p in (prep / folder).iterdir())
    assert sorted(p.name for p in (prep / "gt").iterdir()) == [f"{i}.bin" for i in range(6)]
    for suffix in ("", "_sim", "_sim_fix"):
        model = onnx.load(work / f"flownet2_bs{BS}{suffix}.onnx", load_external_data=False)
        assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [BS, 3, H, W]
        assert STAND_IN_0.fullmatch({p.key: p.value for p in model.metadata_props}[KEY])
    fix_log = (work / "logs" / "fix_onnx.log").read_text()
    assert "op types are on the list" in fix_log and "max |diff| = 0" in fix_log
    name = f"onnxruntime_bs{BS}"
    outputs = sorted(p.name for p in (work / "result" / name).glob("*.bin"))
    assert outputs == ["0_0.bin", "1_0.bin"]
    summary = json.loads((work / "result" / f"{name}_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 2 and STAND_IN_0.fullmatch(summary[KEY])
    assert (work / "report" / name / "metrics.json").exists()
    perf = json.loads((work / "perf" / f"{name}_summary.json").read_text())
    assert perf["NPU_compute_time"]["count"] == LOOP
    n, epe = printed_epe(run.stdout)
    n_ref, epe_ref = independent_epe(work, name)
    assert n == n_ref == 6
    assert epe == pytest.approx(epe_ref, abs=2e-6)
    tail = run.stdout[run.stdout.index("=== done"):]
    assert "Average EPE" in tail and f"throughput 1000*batchsize.mean({BS})/NPU_compute_time.mean(" in tail


def test_openvino_backend_runs_the_same_onnx_model(chain):
    """run_all.sh --backend openvino in the chain's folder: the ONNX stages are reused, the fixed model runs
    on OpenVINO in fp32, and its predictions are ONNX Runtime's within 1e-4 px (about 10 s)."""
    work, _, _ = chain
    run = run_all(work, "--height", str(H), "--width", str(W), "--batch-size", str(BS), "--loop", str(LOOP),
                  "--backend", "openvino")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("export", "onnxsim", "fix_onnx"):
        assert re.search(rf"\] {stage}\n    up to date, skipped", run.stdout), stage
    name = f"openvino_bs{BS}"
    for k in (0, 1):
        ov, ort = (np.fromfile(work / "result" / n / f"{k}_0.bin", np.float32).reshape(BS, 2, H, W)
                   for n in (name, f"onnxruntime_bs{BS}"))
        assert np.abs(ort).max() > 1.0 and np.sqrt(((ov - ort) ** 2).sum(axis=1)).max() < 1e-4
    n, epe = printed_epe(run.stdout)
    n_ref, epe_ref = independent_epe(work, name)
    assert n == n_ref == 6 and epe == pytest.approx(epe_ref, abs=2e-6)
    assert json.loads((work / "perf" / f"{name}_summary.json").read_text())["NPU_compute_time"]["count"] == LOOP


def test_ascend_backend_through_standin_atc_and_ais_bench(chain):
    work, ort_run, run = chain
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("export", "onnxsim", "fix_onnx"):  # same weights, same size: the ONNX stages are kept
        assert re.search(rf"\] {stage}\n    up to date, skipped", run.stdout), stage
    om = json.loads((work / f"flownet2_bs{BS}.om").read_text())  # what the stand-in atc accepted
    assert om["soc_version"] == "Ascend310P3"  # read from the stand-in npu-smi
    assert om["input_shape"] == {"x1": [BS, 3, H, W], "x2": [BS, 3, H, W]}
    assert STAND_IN_0.fullmatch((work / f"flownet2_bs{BS}.om.weights").read_text().strip())
    for k in (0, 1):
        ascend = np.fromfile(work / "result" / f"ascend_bs{BS}" / f"{k}_0.bin", np.float32)
        onnxrt = np.fromfile(work / "result" / f"onnxruntime_bs{BS}" / f"{k}_0.bin", np.float32)
        np.testing.assert_array_equal(ascend, onnxrt)  # same frames (a copy), same model
    summary = json.loads((work / "result" / f"ascend_bs{BS}_summary.json").read_text())
    assert STAND_IN_0.fullmatch(summary[KEY])  # added by the hand-over from the .om sidecar
    assert str(work / f"flownet2_bs{BS}.om") in summary["args"]
    assert printed_epe(run.stdout) == printed_epe(ort_run.stdout)
    assert f"throughput 1000*batchsize.mean({BS})" in run.stdout[run.stdout.index("=== done"):]


def test_a_dataset_file_replaced_by_an_older_one_reruns_what_reads_it(chain):
    """Stages are skipped by content, never by file times: a frame replaced by other content with an
    older modification time (as `cp -p`, `mv` or `tar x` leave it) reruns preprocess and inference,
    and the EPE printed is the new data's (before: every stage skipped, the old EPE printed)."""
    work, _, first = chain
    dataset = work.parent / "dataset"
    frame = dataset / "clean" / "synthetic_1" / "frame_0002.png"
    old = frame.stat().st_mtime - 3600
    shutil.copyfile(dataset / "clean" / "synthetic_2" / "frame_0002.png", frame)  # other content, same size
    os.utime(frame, (old, old))
    second = run_all(work, *ascend_flags(dataset), standins=True)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for stage in ("preprocess", "inference", "postprocess"):
        assert re.search(rf"\] {stage}\n    runs: ", second.stdout), stage
    for stage in ("export", "onnxsim", "fix_onnx"):
        assert re.search(rf"\] {stage}\n    up to date, skipped", second.stdout), stage
    n, epe = printed_epe(second.stdout)
    assert (n, epe) != printed_epe(first.stdout)
    n_ref, epe_ref = independent_epe(work, f"ascend_bs{BS}")
    assert n == n_ref and epe == pytest.approx(epe_ref, abs=2e-6)
    third = run_all(work, *ascend_flags(dataset), standins=True)  # nothing changed: nothing runs
    assert third.returncode == 0 and "runs: " not in third.stdout and printed_epe(third.stdout) == (n, epe)


def test_emulate_prints_both_epe_lines(chain):
    work, run, _ = chain
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tail = run.stdout[run.stdout.index("=== done"):]
    fp32 = re.search(r"EPE fp32 \(onnxruntime\): +(\d+) samples, Average EPE = ([\d.]+)", tail)
    half = re.search(r"EPE fp16 \(emulated\): +(\d+) samples, Average EPE = ([\d.]+)", tail)
    assert fp32 and half and fp32.group(1) == half.group(1) == "6"
    report = json.loads((work / "report" / f"onnxruntime_bs{BS}_emulate_fp16" / "metrics.json").read_text())
    assert report["overall"]["epe"] == pytest.approx(float(half.group(2)), abs=1e-6)
    assert abs(float(half.group(2)) - float(fp32.group(2))) < 0.5  # fp16 moves the EPE a little, not a lot


def test_kitti_2015_through_the_same_chain(chain):
    """run_all.sh --dataset on a synthetic KITTI 2015 (sparse 16-bit PNG ground truth, frames of several
    sizes) padded to the chain's model size: the ONNX stages are reused, and the EPE and Fl-all printed
    are those computed here from the raw predictions and the PNGs read by the format's definition."""
    work, _, _ = chain
    kitti = make_synthetic(work.parent / "kitti", "kitti2015", pairs=5, height=H - 4, width=W - 8, seed=1)
    run = run_all(work, "--dataset", kitti, "--size", f"{H}x{W}", "--size-mode", "pad", "--batch-size", str(BS),
                  "--loop", str(LOOP), "--backend", "onnxruntime")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for stage in ("export", "onnxsim", "fix_onnx"):
        assert re.search(rf"\] {stage}\n    up to date, skipped", run.stdout), stage
    manifest = json.loads((work / f"prep_bs{BS}" / "manifest.json").read_text())
    epes, outliers, valid_total = [], 0, 0
    for pair in manifest["pairs"]:
        png = cv2.imread(pair["flow"], cv2.IMREAD_UNCHANGED).astype(np.float64)  # B, G, R planes of uint16
        truth, valid = (png[:, :, [2, 1]] - 2 ** 15) / 64, png[:, :, 0] > 0
        h, w = pair["size"]
        pred = np.fromfile(work / "result" / f"onnxruntime_bs{BS}" / f"{pair['batch']}_0.bin", np.float32)
        pred = pred.reshape(BS, 2, H, W)[pair["slot"], :, :h, :w].transpose(1, 2, 0).astype(np.float64)
        error = np.sqrt(((pred - truth) ** 2).sum(-1))[valid]
        length = np.sqrt((truth ** 2).sum(-1))[valid]
        epes.append(error.mean())
        outliers += int(np.count_nonzero((error > 3) & (error > 0.05 * length)))
        valid_total += int(valid.sum())
    assert 0 < valid_total < sum(p["size"][0] * p["size"][1] for p in manifest["pairs"])  # sparse
    found = re.search(r"(\d+) samples, Average EPE = ([\d.]+), Fl-all = ([\d.]+)%", run.stdout)
    assert found and int(found.group(1)) == 5
    assert float(found.group(2)) == pytest.approx(np.mean(epes), abs=2e-6)
    assert float(found.group(3)) == pytest.approx(100 * outliers / valid_total, abs=1e-4)


@pytest.mark.skipif(shutil.which("atc") is not None or Path("/usr/local/Ascend").exists(),
                    reason="a real CANN toolkit is installed here")
def test_ascend_backend_without_its_tools_stops_before_the_first_stage(tmp_path):
    run = run_all(tmp_path / "work", "--backend", "ascend")
    assert run.returncode == 2
    assert "backend ascend needs: atc not found" in run.stderr and "ais_bench not importable" in run.stderr
    assert not (tmp_path / "work" / "logs").exists() and "==> [1]" not in run.stdout


def test_a_failing_stage_is_named_with_the_command_to_rerun(tmp_path):
    empty = tmp_path / "training"
    empty.mkdir()
    run = run_all(tmp_path / "work", "--dataset", str(empty))
    assert run.returncode != 0
    assert "!! stage 'preprocess' failed" in run.stderr
    assert re.search(r"-m flownet2\.commands\.preprocess --dataset \S+training --output \S+prep_bs1 --batch_size 1",
                     run.stderr)
    assert not (tmp_path / "work" / ".stamps" / "preprocess").exists()


def test_ascend_backend_exports_the_form_the_310p_graph_proved(tmp_path):
    """Without --correlation the Ascend route exports --ascend-compat (the slices correlation). A Python
    wrapper records the export command and stops the chain there: no 620 MB export for one flag."""
    record, wrapper = tmp_path / "export_argv.txt", tmp_path / "python"
    wrapper.write_text(f'#!/usr/bin/env bash\ncase "$1 $2" in "-m flownet2.commands.pth2onnx") echo "$*" > {record}; exit 3 ;; '
                       f'esac\nexec {shlex.quote(sys.executable)} "$@"\n')
    wrapper.chmod(0o755)
    env = dict(os.environ, PATH=f"{STANDINS}{os.pathsep}{os.environ['PATH']}", PYTHON=str(wrapper),
               PYTHONPATH=os.pathsep.join([str(STANDINS)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    run = subprocess.run(["bash", str(REPO / "scripts" / "run_all.sh"), "--workdir", str(tmp_path / "work"),
                          "--backend", "ascend", "--height", "64", "--width", "128", "--bs", "1"],
                         env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "!! stage 'export' failed" in run.stderr, run.stdout[-2000:] + run.stderr
    argv = record.read_text().split()
    assert "--ascend-compat" in argv and "--correlation" not in argv


@pytest.mark.parametrize("flags, message", [
    (["--backend", "gpu"], "--backend must be auto, ascend, onnxruntime, openvino or torch"),
    (["--batch-size", "0"], "--batch-size must be a positive integer"),
    (["--checkpoint", "/nonexistent/FlowNet2_checkpoint.pth.tar"], "checkpoint file not found"),
])
def test_bad_flags_are_refused_up_front(tmp_path, flags, message):
    run = run_all(tmp_path / "work", *flags)
    assert run.returncode == 2 and message in run.stderr


# --------------------------------------------------------------------------- scripts/atc.sh


def two_input_model(path, batch=2, size=64):
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 3, size, size]) for n in ("x1", "x2")]
    out = helper.make_tensor_value_info("flow", TensorProto.FLOAT, [batch, 3, size, size])
    model = helper.make_model(helper.make_graph([helper.make_node("Add", ["x1", "x2"], ["flow"])], "g", inputs,
                                                [out]), opset_imports=[helper.make_opsetid("", 11)])
    model.metadata_props.add(key=KEY, value="official:FlowNet2_checkpoint.pth.tar")
    onnx.save(model, path)
    return path


def atc_sh(*args, standins=True):
    env = dict(os.environ, PYTHON=sys.executable)
    if standins:
        env["PATH"] = f"{STANDINS}{os.pathsep}{env['PATH']}"
    return subprocess.run(["bash", str(REPO / "scripts" / "atc.sh"), *map(str, args)],
                          env=env, capture_output=True, text=True)


def test_atc_sh_runs_the_guide_command_and_writes_the_weights_sidecar(tmp_path):
    model = two_input_model(tmp_path / "m_sim_fix.onnx")
    run = atc_sh("--model", model)
    assert run.returncode == 0, run.stderr
    assert "--input_shape=x1:2,3,64,64;x2:2,3,64,64 --log=debug --soc_version=Ascend310P3" in run.stdout
    om = json.loads((tmp_path / "flownet2_bs2.om").read_text())
    assert om["soc_version"] == "Ascend310P3" and om["precision_mode"] is None
    assert (tmp_path / "flownet2_bs2.om.weights").read_text() == "official:FlowNet2_checkpoint.pth.tar\n"


def test_atc_sh_ascend310_gets_mixed_precision_and_named_output(tmp_path):
    model = two_input_model(tmp_path / "m.onnx")
    run = atc_sh("--model", model, "--bs", 2, "--soc", "310", "--output", tmp_path / "out" / "net")
    assert run.returncode == 0, run.stderr
    om = json.loads((tmp_path / "out" / "net.om").read_text())
    assert om["soc_version"] == "Ascend310" and om["precision_mode"] == "allow_mix_precision"


@pytest.mark.parametrize("spelling", ["--bs", "--batch-size", "--batch_size"])
def test_atc_sh_refuses_a_batch_the_model_was_not_exported_for(tmp_path, spelling):
    run = atc_sh("--model", two_input_model(tmp_path / "m.onnx"), spelling, 4)
    assert run.returncode == 2
    assert "exported for batch 2, not --bs 4" in run.stderr and "--batch_size 4" in run.stderr


@pytest.mark.skipif(shutil.which("atc") is not None or Path("/usr/local/Ascend").exists(),
                    reason="a real CANN toolkit is installed here")
def test_atc_sh_without_atc_says_how_to_get_it(tmp_path):
    run = atc_sh("--model", two_input_model(tmp_path / "m.onnx"), standins=False)
    assert run.returncode == 2
    assert "atc not found: install the CANN toolkit" in run.stderr and "--backend onnxruntime" in run.stderr

"""No wrong number: predictions are scored only against the preprocess run they were made from,
ground truth only as that run wrote it; one writer per folder; and the smaller holes (a damaged
manifest, NaN predictions, leftovers of killed runs, full disks, folders in the way)."""
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from test_pre_post import HM, WM, _runner_summary, _write_predictions, post, pre

from flownet2.data.synthetic import make_synthetic_sintel
from flownet2.errors import Flownet2Error
from flownet2.fileio import LOCK_NAME, atomic_write, folder_lock

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W = 60, 100  # the synthetic frames of test_pre_post's layout: 6 clean and final pairs here


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_sintel(tmp_path_factory.mktemp("syn"), scenes=2, pairs=3, height=H, width=W, seed=7)


def _sha256(path):
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def _perfect_run(dataset, prep, out, bs=2, digests=True):
    """Predictions equal to the ground truth (EPE 0) and the runner summary that made them."""
    manifest = json.loads((prep / "manifest.json").read_text())
    preds = {}
    for pair in manifest["pairs"]:
        flow = np.fromfile(prep / pair["gt"], np.float32).reshape(HM, WM, 2)
        preds[(pair["batch"], pair["slot"])] = flow.transpose(2, 0, 1)
    _write_predictions(out, preds, bs=bs, fill=0, prep=prep)
    if not digests:  # what real ais_bench writes: paths of its inputs, no digests
        _runner_summary(out, prep, sorted({b for b, _ in preds}), digests=False)
    return manifest


def _post(prep, out, *extra):
    return post.main(["--gt_path", str(prep / "gt"), "--output_path", str(out), "--batch_size", "2",
                      "--report", str(out) + "_report", *extra])


def test_manifest_records_the_sha256_of_every_file_written(dataset, tmp_path):
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "4"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.bin"))
    assert sorted(manifest["digests"]) == files and len(files) == 2 * 2 + 6 + 6  # image1/2, gt/, mask/
    assert all(manifest["digests"][f] == _sha256(tmp_path / f) for f in files)


def test_predictions_of_another_preprocess_run_are_refused(dataset, tmp_path, capsys):
    """The clean pass inferred, then the folder preprocessed again as final: the clean predictions
    must not be scored against it (before: scored, "pass": "final" written, exit 0)."""
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    _perfect_run(dataset, prep, out)
    assert _post(prep, out) == 0
    assert "6 samples, Average EPE = 0.000000" in capsys.readouterr().out
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2", "--pass", "final"]) == 0
    with pytest.raises(Flownet2Error) as e:
        _post(prep, out)
    line = str(e.value)
    assert "\n" not in line and "preprocessed again since?" in line
    assert str(out) + "_summary.json" in line and "manifest.json (final pass, batch 2, 6 pairs)" in line


def test_ais_bench_summary_without_digests_paths_and_current_content(dataset, tmp_path, capsys):
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    time.sleep(0.05)  # the run comes after the preprocess, as in life
    _perfect_run(dataset, prep, out, digests=False)
    assert _post(prep, out) == 0
    assert "what the runner read at run time is not recorded" in capsys.readouterr().out
    assert json.loads((tmp_path / "run_report" / "metrics.json").read_text())["custody"] == "paths"
    # preprocessed again (final pass): same paths, new content that matches the new manifest,
    # written after the run -> refused
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2", "--pass", "final"]) == 0
    with pytest.raises(Flownet2Error, match=r"image1/0\.bin was rewritten after the run .*records no input digests"):
        _post(prep, out)
    # a batch file changed since preprocessing: its content no longer matches the manifest
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    _perfect_run(dataset, prep, out, digests=False)
    data = bytearray((prep / "image2" / "1.bin").read_bytes())
    data[100] ^= 1
    (prep / "image2" / "1.bin").write_bytes(bytes(data))
    with pytest.raises(Flownet2Error, match=r"image2/1\.bin: holds sha256:.* changed since preprocessing"):
        _post(prep, out)


def test_inputs_of_another_folder_and_missing_summary(dataset, tmp_path, capsys):
    prep, other, out = tmp_path / "prep", tmp_path / "other", tmp_path / "run"
    for folder in (prep, other):
        assert pre.main(["--dataset", dataset, "--output", str(folder), "--batch_size", "2"]) == 0
    _perfect_run(dataset, other, out)  # made from the other folder's (identical) batch files
    with pytest.raises(Flownet2Error, match=r"was made from .*other/image1/0\.bin.* not from .*prep/image1/0\.bin"):
        _post(prep, out)
    os.remove(str(out) + "_summary.json")
    with pytest.raises(Flownet2Error, match=r"no runner summary .*run_summary\.json.*--unverified scores them"):
        _post(prep, out)
    capsys.readouterr()
    assert _post(prep, out, "--unverified") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("!!! UNVERIFIED") and lines[2].startswith("!!! UNVERIFIED")
    assert json.loads((tmp_path / "run_report" / "metrics.json").read_text())["custody"] == "unverified"


def test_ground_truth_changed_since_preprocessing_is_refused(dataset, tmp_path):
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    _perfect_run(dataset, prep, out)
    gt = np.fromfile(prep / "gt" / "3.bin", np.float32)
    (gt + 1).tofile(prep / "gt" / "3.bin")  # same size, other values
    with pytest.raises(Flownet2Error, match=r"gt/3\.bin: not the ground truth the manifest's preprocess run wrote"):
        _post(prep, out)


def test_second_preprocess_into_a_held_folder_gets_one_line(dataset, tmp_path):
    with folder_lock(tmp_path, "another preprocess run"):  # the first run, still writing
        with pytest.raises(Flownet2Error) as e:
            pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "1"])
    assert str(e.value).startswith(f"{tmp_path}: another preprocess run (pid {os.getpid()}) is writing")
    assert not (tmp_path / "image1").exists()


def test_lock_of_a_killed_preprocess_is_taken_over(dataset, tmp_path):
    code = ("import os, sys; from flownet2.fileio import folder_lock\n"
            "with folder_lock(sys.argv[1]):\n    os.kill(os.getpid(), 9)\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    pid = int((tmp_path / LOCK_NAME).read_text())  # left behind, naming a process that is gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "2"]) == 0
    assert not (tmp_path / LOCK_NAME).exists()


def test_temporaries_of_a_killed_run_are_removed_by_the_next(dataset, tmp_path):
    code = ("import os, sys; from flownet2.fileio import atomic_write\n"
            "with atomic_write(os.path.join(sys.argv[1], 'image1', '0.bin')) as f:\n"
            "    f.write(b'x' * 1000); f.flush(); os.kill(os.getpid(), 9)\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in (tmp_path / "image1").iterdir()]
    assert len(left) == 1 and left[0].startswith(".0.bin.") and left[0].endswith(".tmp")
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "2"]) == 0
    assert sorted(p.name for p in (tmp_path / "image1").iterdir()) == ["0.bin", "1.bin", "2.bin"]


def test_batch_size_larger_than_the_pairs_is_refused(dataset, tmp_path):
    with pytest.raises(Flownet2Error, match=r"^batch size 1000 is larger than the 6 pair\(s\) found; use at most 6$"):
        pre.main(["--dataset", dataset, "--output", str(tmp_path / "o"), "--batch_size", "1000"])
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("bad, needle", [
    (lambda m: m["pairs"].__setitem__(2, None), "pairs[2] is null, expected an object"),
    (lambda m: m["pairs"][1].pop("scene"), "pairs[1] has no str 'scene'"),
    (lambda m: m["batches"][0]["slots"].append(99), "batches[0] has batch 0 or slots"),
    (lambda m: m.__setitem__("num_pairs", 7), "num_pairs is 7 but pairs is not a list of that many"),
])
def test_damaged_manifest_gets_one_line(dataset, tmp_path, bad, needle):
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    _perfect_run(dataset, prep, out)
    manifest = json.loads((prep / "manifest.json").read_text())
    bad(manifest)
    (prep / "manifest.json").write_text(json.dumps(manifest))
    run = subprocess.run([sys.executable, "Flownet2_postprocess.py", "--gt_path", str(prep / "gt"),
                          "--output_path", str(out), "--batch_size", "2"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"{prep / 'manifest.json'}: damaged manifest: {needle}" in run.stderr


def test_nan_predictions_name_their_pairs(dataset, tmp_path, capsys):
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    _perfect_run(dataset, prep, out)
    pred = np.fromfile(out / "1_0.bin", np.float32).reshape(2, 2, HM, WM)
    pred[1, 0, 5, 7] = np.nan  # pair 3 = batch 1 slot 1: synthetic_2/frame_0001
    pred.tofile(out / "1_0.bin")
    _runner_summary(out, prep, [0, 1, 2])
    capsys.readouterr()
    assert _post(prep, out) == 0
    captured = capsys.readouterr()
    assert "6 samples, Average EPE = nan" in captured.out
    assert ("warning: 1 pair(s) have NaN in their predicted flow, so their EPE and the means are nan: "
            "synthetic_2/frame_0001 (batch 1 slot 1)") in captured.err
    table = {line.split()[0]: line.split() for line in captured.out.splitlines() if line.startswith("synthetic_")}
    assert table["synthetic_2"][2] == "NaN" and table["synthetic_1"][2] == "0.0000"
    report = json.loads((tmp_path / "run_report" / "metrics.json").read_text())
    assert report["nan_pairs"] == ["synthetic_2/frame_0001 (batch 1 slot 1)"] and report["overall"]["epe"] is None


def test_full_disk_names_the_file_being_written(tmp_path):
    target = tmp_path / "gt" / "0.bin"
    with pytest.raises(OSError) as e:
        with atomic_write(target) as f:
            f.write(b"x")
            raise OSError(errno.ENOSPC, "No space left on device")  # what f.write raises on a full disk
    assert e.value.filename == str(target) and e.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path / "gt") == []  # the temporary went with it


def test_output_path_that_is_a_folder_is_named(dataset, tmp_path):
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2"]) == 0
    _perfect_run(dataset, prep, out)
    (tmp_path / "report" / "metrics.json").mkdir(parents=True)
    run = subprocess.run([sys.executable, "Flownet2_postprocess.py", "--gt_path", str(prep / "gt"),
                          "--output_path", str(out), "--batch_size", "2", "--report", str(tmp_path / "report")],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]  # after the progress bar
    assert last == f"error: {tmp_path / 'report' / 'metrics.json'}: is a folder, expected a file name"


def test_a_changed_dataset_is_preprocessed_again_even_with_older_times(dataset, tmp_path, capsys):
    """Same settings, a frame replaced by other content with an older time: every file is written
    again (before: all kept, as their sizes matched), and the old predictions are refused."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    prep, out = tmp_path / "prep", tmp_path / "run"
    args = ["--dataset", str(data), "--output", str(prep), "--batch_size", "2"]
    assert pre.main(args) == 0
    _perfect_run(dataset, prep, out)
    frame = data / "clean" / "synthetic_1" / "frame_0002.png"
    old = frame.stat().st_mtime - 3600
    shutil.copyfile(data / "clean" / "synthetic_2" / "frame_0002.png", frame)
    os.utime(frame, (old, old))
    capsys.readouterr()
    assert pre.main(args) == 0
    assert "18 files written, 0 intact files kept" in capsys.readouterr().out
    with pytest.raises(Flownet2Error, match="preprocessed again since"):
        _post(prep, out)
    # an occlusion (validity) mask changed between preprocessing and scoring is refused too
    _perfect_run(dataset, prep, out)
    shutil.copyfile(prep / "mask" / "0.bin", prep / "mask" / "3.bin")
    with pytest.raises(Flownet2Error, match=r"mask/3\.bin: not the validity mask the manifest's preprocess run wrote"):
        _post(prep, out)

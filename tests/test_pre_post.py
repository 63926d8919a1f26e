"""Flownet2_preprocess.py -> fake runner outputs -> Flownet2_postprocess.py, with known answers.

The expected pair order, batch/slot positions and values are built here by hand from the dataset
files, never from the manifest, so a mapping bug in either script shows up as a wrong number.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from flownet2.data import batches
from flownet2.data.flo import read_flo
from flownet2.data.synthetic import make_synthetic_sintel
from flownet2.errors import Flownet2Error
from flownet2.model import provenance
from flownet2.score.visualize import STAND_IN_RGB, caption_height

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from sintel_mini import MINI, needs_mini  # noqa: E402

H, W, HM, WM = 60, 100, 64, 128  # frame size and the model size it pads / resizes to
# scene 2 loses frame 4, so its flow 3 is skipped: 5 clean pairs, in this order
ORDER = [("synthetic_1", 1), ("synthetic_1", 2), ("synthetic_1", 3), ("synthetic_2", 1),
         ("synthetic_2", 2)]


from flownet2.commands import postprocess as post, preprocess as pre  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = make_synthetic_sintel(tmp_path_factory.mktemp("syn"), scenes=2, pairs=3,
                                 height=H, width=W, seed=7)
    os.remove(os.path.join(root, "clean", "synthetic_2", "frame_0004.png"))
    return root


@pytest.fixture(scope="module")
def prep3(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep3")
    assert pre.main(["--dataset", dataset, "--output", str(out), "--batch_size", "3"]) == 0
    return str(out)


def _frame(dataset, scene, n, pass_name="clean"):
    return np.asarray(Image.open(os.path.join(dataset, pass_name, scene, f"frame_{n:04d}.png")))


def _gt(dataset, scene, n):
    return read_flo(os.path.join(dataset, "flow", scene, f"frame_{n:04d}.flo"))


def _reference_pair(img1, img2):
    """Normalisation written out plainly: float64, mean over both frames, per channel."""
    both = np.concatenate([img1, img2]).astype(np.float64)
    mean = both.reshape(-1, 3).mean(0)
    return [((img.astype(np.float64) - mean) / 255).transpose(2, 0, 1) for img in (img1, img2)]


def _read_batch(folder, k, bs, channels=3):
    return np.fromfile(os.path.join(folder, f"{k}.bin"), np.float32).reshape(bs, channels, HM, WM)


def _sha256(path):
    with open(path, "rb") as f:
        return "sha256:" + hashlib.sha256(f.read()).hexdigest()


def _runner_summary(folder, prep, batches, digests=True, **extra):
    """What our runner writes beside its output folder: filesinfo (infiles -> outfiles) and, unless
    `digests` is False (real ais_bench), the sha256 of each input as read, taken here from the files."""
    folder, prep = str(folder), str(prep)
    info, seen = {}, {}
    for k in batches:
        infiles = [os.path.join(prep, d, f"{k}.bin") for d in ("image1", "image2")]
        info[str(k)] = {"infiles": infiles, "outfiles": [os.path.join(folder, f"{k}_0.bin")]}
        seen.update((p, _sha256(p)) for p in infiles)
    summary = {"filesinfo": info, "args": ["infer.py", "--model", "m.onnx"], **extra}
    if digests:
        summary["flownet2.input_digests"] = seen
    with open(folder.rstrip("/") + "_summary.json", "w") as f:
        json.dump(summary, f)


def _save_one_batch(folder, prep, pred):
    """Batch 0's predictions as the runner saves them, with its summary."""
    folder.mkdir()
    pred.tofile(folder / "0_0.bin")
    _runner_summary(folder, prep, [0])


def _write_predictions(folder, slots, bs, fill, prep, **summary):
    """slots: {(batch, slot): (2, HM, WM) array}; other slots get `fill`; plus the runner's summary
    (with the extra `summary` fields)."""
    os.makedirs(folder, exist_ok=True)
    batches = sorted({b for b, _ in slots})
    for k in batches:
        arr = np.full((bs, 2, HM, WM), fill, np.float32)
        for s in range(bs):
            if (k, s) in slots:
                arr[s] = slots[(k, s)]
        arr.tofile(os.path.join(folder, f"{k}_0.bin"))
    _runner_summary(folder, prep, batches, **summary)


def _padded_gt_prediction(dataset, i, offset=(0, 0)):
    scene, n = ORDER[i]
    pred = np.zeros((2, HM, WM), np.float32)
    pred[:, :H, :W] = _gt(dataset, scene, n).transpose(2, 0, 1) + np.array(offset, np.float32)[:, None, None]
    return pred


def test_batch_size_3_over_5_pairs_maps_every_pair(dataset, prep3, tmp_path, capsys):
    # inputs: pair i is in batch i // 3, slot i % 3; the last batch repeats its first sample
    assert sorted(os.listdir(os.path.join(prep3, "image1"))) == ["0.bin", "1.bin"]
    assert sorted(os.listdir(os.path.join(prep3, "gt"))) == [f"{i}.bin" for i in range(5)]
    for folder, which in (("image1", 0), ("image2", 1)):
        for k in (0, 1):
            arr = _read_batch(os.path.join(prep3, folder), k, 3)
            for s in range(3):
                i = 3 * k + s if 3 * k + s < 5 else 3  # filler: pair 3, batch 1's first sample
                scene, n = ORDER[i]
                ref = _reference_pair(_frame(dataset, scene, n), _frame(dataset, scene, n + 1))[which]
                assert np.allclose(arr[s, :, :H, :W], ref, atol=1e-6), (folder, k, s)
                assert not arr[s, :, H:, :].any() and not arr[s, :, :, W:].any()  # pad after norm
    for i, (scene, n) in enumerate(ORDER):  # gt: the original flow, zero-padded, HWC
        gt = np.fromfile(os.path.join(prep3, "gt", f"{i}.bin"), np.float32).reshape(HM, WM, 2)
        assert np.array_equal(gt[:H, :W], _gt(dataset, scene, n)) and not gt[H:].any()

    # outputs: pair i predicted as gt + (i + 1, 0) -> EPE i + 1; the filler slot holds NaN
    out = tmp_path / "run"
    _write_predictions(out, {(i // 3, i % 3): _padded_gt_prediction(dataset, i, (i + 1, 0))
                             for i in range(5)}, bs=3, fill=np.nan, prep=prep3)
    assert post.main(["--gt_path", os.path.join(prep3, "gt"), "--output_path", str(out),
                      "--batch_size", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "5 samples, Average EPE = 3.000000"
    assert lines[1] == "weights: unknown (pass --model to record them)"
    assert lines[2].startswith("inputs: made from the batch files")
    assert any(line.split()[:2] == ["synthetic_1", "3"] for line in lines)
    assert any(line.split()[:2] == ["all", "5"] for line in lines)
    csv_rows = [r.split(",") for r in (out / "per_pair.csv").read_text().splitlines()]
    header = csv_rows[0]
    got = [(r[header.index("scene")], int(r[header.index("frame")]), float(r[header.index("epe")]))
           for r in csv_rows[1:]]
    assert [(s, n) for s, n, _ in got] == ORDER
    assert [e for _, _, e in got] == pytest.approx([1, 2, 3, 4, 5], abs=1e-5)
    report = json.loads((out / "metrics.json").read_text())
    assert report["samples"] == 5 and report["weights"] is None
    assert report["overall"]["epe"] == pytest.approx(3, abs=1e-5)
    assert report["scenes"]["synthetic_1"]["epe"] == pytest.approx(2, abs=1e-5)
    assert report["scenes"]["synthetic_2"]["epe"] == pytest.approx(4.5, abs=1e-5)
    # every synthetic pair has an occlusion mask: with a uniform error, occ and noc EPE agree
    assert report["overall"]["pairs_with_occlusions"] == 5
    assert report["scenes"]["synthetic_1"]["epe_occ"] == pytest.approx(2, abs=0.5)


def test_missing_frames_warn_or_fail_under_strict(dataset, tmp_path, capsys):
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path / "a"), "--batch_size", "2",
                     "--scenes", "synthetic_2"]) == 0
    err = capsys.readouterr().err
    assert "warning: 1 frame file(s) missing" in err and "frame_0004.png" in err
    with pytest.raises(Flownet2Error, match=r"\(strict: missing frames are an error\)"):
        pre.main(["--dataset", dataset, "--output", str(tmp_path / "b"), "--batch_size", "1",
                  "--strict"])
    assert not (tmp_path / "b").exists()
    # the final pass is complete: 6 pairs, no warning, strict or not
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path / "c"), "--batch_size", "4",
                     "--pass", "final", "--strict"]) == 0
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["num_pairs"] == 6 and manifest["pass"] == "final"
    assert manifest["batches"][1] == {"batch": 1, "slots": [4, 5, 4, 4], "filler_slots": [2, 3]}


def test_resize_mode_round_trips_a_constant_flow(dataset, tmp_path, capsys):
    prep = tmp_path / "prep"
    assert pre.main(["--dataset", dataset, "--output", str(prep), "--batch_size", "2",
                     "--resize-mode", "resize", "--scenes", "synthetic_1"]) == 0
    # images: the normalised frames resized bilinearly (torch as the reference resampler)
    x1 = _read_batch(prep / "image1", 0, 2)
    ref = _reference_pair(_frame(dataset, "synthetic_1", 1), _frame(dataset, "synthetic_1", 2))[0]
    ref = F.interpolate(torch.from_numpy(ref)[None], size=(HM, WM), mode="bilinear",
                        align_corners=False)[0].numpy()
    assert np.allclose(x1[0], ref, atol=1e-5)
    # gt stays the ORIGINAL flow (zero-padded), not a resampled one
    gt = np.fromfile(prep / "gt" / "2.bin", np.float32).reshape(HM, WM, 2)
    assert np.array_equal(gt[:H, :W], _gt(dataset, "synthetic_1", 3))
    # a constant model-size prediction (a, b) is (a * W/WM, b * H/HM) in original pixels
    a, b = 6.0, -3.0
    const = np.stack([np.full((HM, WM), a), np.full((HM, WM), b)]).astype(np.float32)
    out = tmp_path / "run"
    _write_predictions(out, {(0, 0): const, (0, 1): const, (1, 0): const}, bs=2, fill=np.nan, prep=prep)
    assert post.main(["--gt_path", str(prep / "gt"), "--output_path", str(out), "--batch_size", "2",
                      "--save-flo", str(tmp_path / "flo")]) == 0
    u, v = a * W / WM, b * H / HM
    expected = [np.hypot(u - _gt(dataset, "synthetic_1", n)[..., 0],
                         v - _gt(dataset, "synthetic_1", n)[..., 1]).mean() for n in (1, 2, 3)]
    report = json.loads((out / "metrics.json").read_text())
    assert report["resize_mode"] == "resize"
    assert report["overall"]["epe"] == pytest.approx(np.mean(expected), rel=1e-5)
    saved = read_flo(tmp_path / "flo" / "clean" / "synthetic_1" / "frame_0002.flo")
    assert saved.shape == (H, W, 2)
    assert np.allclose(saved[..., 0], u) and np.allclose(saved[..., 1], v)


def test_rerun_keeps_intact_files_and_repairs_broken_ones(dataset, tmp_path, capsys):
    args = ["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "2"]
    assert pre.main(args) == 0
    files = sorted(str(p) for p in tmp_path.rglob("*.bin"))
    stamps = {p: os.stat(p).st_mtime_ns for p in files}
    capsys.readouterr()
    assert pre.main(args) == 0
    assert "0 files written, 16 intact files kept" in capsys.readouterr().out
    assert {p: os.stat(p).st_mtime_ns for p in files} == stamps
    good = (tmp_path / "image2" / "1.bin").read_bytes()
    (tmp_path / "image2" / "1.bin").write_bytes(good[:1000])  # a damaged file
    (tmp_path / "gt" / "4.bin").unlink()  # a missing one (rewritten with its mask)
    assert pre.main(args) == 0
    assert "4 files written, 12 intact files kept" in capsys.readouterr().out
    assert (tmp_path / "image2" / "1.bin").read_bytes() == good
    assert json.loads((tmp_path / "manifest.json").read_text())["complete"] is True


def test_changed_plan_replaces_stale_batch_files(dataset, tmp_path):
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "1"]) == 0
    assert len(os.listdir(tmp_path / "image1")) == 5
    assert pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "4"]) == 0
    # ais_bench would run every {k}.bin it finds: none of the batch-1 files may survive
    assert sorted(os.listdir(tmp_path / "image1")) == ["0.bin", "1.bin"]
    assert os.path.getsize(tmp_path / "image1" / "0.bin") == 4 * 3 * HM * WM * 4


def test_refuses_foreign_files_and_unknown_manifest(dataset, tmp_path):
    (tmp_path / "a" / "image1").mkdir(parents=True)
    (tmp_path / "a" / "image1" / "0.bin").write_bytes(b"x")
    with pytest.raises(Flownet2Error, match="no manifest.json"):
        pre.main(["--dataset", dataset, "--output", str(tmp_path / "a"), "--batch_size", "1"])
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(Flownet2Error, match="not a flownet2-batches manifest"):
        pre.main(["--dataset", dataset, "--output", str(tmp_path / "b"), "--batch_size", "1"])


def test_disk_estimate_refuses_before_writing(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(batches.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(Flownet2Error) as e:
        pre.main(["--dataset", dataset, "--output", str(tmp_path), "--batch_size", "1"])
    needed = 5 * (2 * 3 * HM * WM * 4 + HM * WM * 2 * 4)
    assert f"needs {needed / 1e9:.2f} GB" in str(e.value) and "free" in str(e.value)
    assert os.listdir(tmp_path) == []


def test_postprocess_refuses_bad_outputs(dataset, prep3, tmp_path):
    gt_path = os.path.join(prep3, "gt")
    run = lambda *extra: post.main(["--gt_path", gt_path, "--output_path", str(tmp_path / "run"),
                                    "--batch_size", "3", *extra])
    good = {(i // 3, i % 3): _padded_gt_prediction(dataset, i) for i in range(5)}
    _write_predictions(tmp_path / "run", good, bs=3, fill=0, prep=prep3)
    expected = 3 * 2 * HM * WM * 4
    truncated = tmp_path / "run" / "1_0.bin"
    truncated.write_bytes(truncated.read_bytes()[:1234])
    with pytest.raises(Flownet2Error) as e:
        run()
    assert str(truncated) in str(e.value) and f"expected {expected} bytes" in str(e.value)
    assert "actual 1234" in str(e.value)
    truncated.unlink()
    with pytest.raises(Flownet2Error, match=r"1_0\.bin: missing: expected %d bytes" % expected):
        run()
    assert not (tmp_path / "run" / "metrics.json").exists()  # nothing written on failure
    # the same data as .npy is accepted
    np.save(tmp_path / "run" / "1_0.npy", np.stack([good[(1, 0)], good[(1, 1)], good[(1, 0)]]))
    summary = json.loads((tmp_path / "run_summary.json").read_text())
    summary["filesinfo"]["1"]["outfiles"] = [str(tmp_path / "run" / "1_0.npy")]  # --outfmt NPY
    (tmp_path / "run_summary.json").write_text(json.dumps(summary))
    assert run() == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["overall"]["epe"] == 0
    with pytest.raises(Flownet2Error, match="batch size 4 does not match .* batches of 3"):
        post.main(["--gt_path", gt_path, "--output_path", str(tmp_path / "run"), "--batch_size", "4"])
    gt_copy = tmp_path / "prep" / "gt"
    shutil.copytree(gt_path, gt_copy)
    shutil.copytree(os.path.join(prep3, "mask"), tmp_path / "prep" / "mask")
    manifest = json.loads(open(os.path.join(prep3, "manifest.json")).read())
    (tmp_path / "prep" / "manifest.json").write_text(json.dumps(dict(manifest, version=99)))
    with pytest.raises(Flownet2Error, match="manifest version 99 not understood"):
        post.main(["--gt_path", str(gt_copy), "--output_path", str(tmp_path / "run"), "--batch_size", "3"])
    (tmp_path / "prep" / "manifest.json").write_text(json.dumps(dict(manifest, complete=False)))
    with pytest.raises(Flownet2Error, match="did not finish"):
        post.main(["--gt_path", str(gt_copy), "--output_path", str(tmp_path / "run"), "--batch_size", "3"])
    (tmp_path / "prep" / "manifest.json").write_text(json.dumps(manifest))
    (gt_copy / "2.bin").write_bytes(b"")
    with pytest.raises(Flownet2Error, match=r"2\.bin: expected %d bytes .*actual 0" % (HM * WM * 8)):
        post.main(["--gt_path", str(gt_copy), "--output_path", str(tmp_path / "run"), "--batch_size", "3"])


def test_weights_provenance_lines(dataset, prep3, tmp_path, capsys):
    _write_predictions(tmp_path / "runs" / "bs3", {(i // 3, i % 3): _padded_gt_prediction(dataset, i)
                                                   for i in range(5)}, bs=3, fill=0, prep=prep3)
    summary = lambda **kw: _runner_summary(tmp_path / "runs" / "bs3", prep3, [0, 1], **kw)
    model = tmp_path / "flownet2_bs3.om"
    model.write_bytes(b"")
    (tmp_path / "flownet2_bs3.om.weights").write_text(provenance.stand_in_label(5))
    base = ["--gt_path", os.path.join(prep3, "gt"), "--output_path", str(tmp_path / "runs" / "bs3"),
            "--batch_size", "3", "--report", str(tmp_path / "report")]
    assert post.main(base + ["--model", str(model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [provenance.STAND_IN_BANNER, "5 samples, Average EPE = 0.000000",
                         provenance.STAND_IN_BANNER]
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["weights"] == "stand-in:seed=5"
    # without --model: the runner's summary beside the output folder names the model
    summary(args={"model": str(model)})
    assert post.main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == provenance.STAND_IN_BANNER and lines[2] == provenance.STAND_IN_BANNER
    # our runner's summary: args is its argv list, and it copies the label in as well
    summary(args=["infer.py", "--model", str(tmp_path / "moved.onnx")], **{provenance.KEY: "stand-in:seed=6"})
    assert post.main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == provenance.STAND_IN_BANNER and lines[3] == "weights: stand-in:seed=6"
    summary(args=[f"--model={model}"])
    # checkpoint weights: no banner, the label (with its tensor fingerprint) is printed and recorded
    label = "checkpoint FlowNet2_checkpoint.pth.tar tensors:0123456789abcdef"
    (tmp_path / "flownet2_bs3.om.weights").write_text(label)
    assert post.main(base) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == ["5 samples, Average EPE = 0.000000", f"weights: {label}"]
    # a label of an earlier version is still read, and still not taken for stand-in weights
    (tmp_path / "flownet2_bs3.om.weights").write_text("official:FlowNet2_checkpoint.pth.tar")
    assert post.main(base) == 0
    assert capsys.readouterr().out.splitlines()[1] == "weights: official:FlowNet2_checkpoint.pth.tar"


def test_model_and_run_naming_different_weights_is_refused(dataset, prep3, tmp_path):
    _write_predictions(tmp_path / "runs" / "bs3", {(i // 3, i % 3): _padded_gt_prediction(dataset, i)
                                                   for i in range(5)}, bs=3, fill=0, prep=prep3)
    _runner_summary(tmp_path / "runs" / "bs3", prep3, [0, 1], **{provenance.KEY: "stand-in:seed=0 tensors:aa"})
    model = tmp_path / "other.om"
    model.write_bytes(b"")
    (tmp_path / "other.om.weights").write_text("checkpoint ck.pth.tar tensors:bb")
    with pytest.raises(Flownet2Error, match=r"other\.om holds weights 'checkpoint ck.pth.tar tensors:bb', but "
                                            r"the run .* used 'stand-in:seed=0 tensors:aa'"):
        post.main(["--gt_path", os.path.join(prep3, "gt"), "--output_path", str(tmp_path / "runs" / "bs3"),
                   "--batch_size", "3", "--model", str(model)])
    assert not (tmp_path / "runs" / "bs3" / "metrics.json").exists()


def test_vis_pictures(dataset, prep3, tmp_path):
    _write_predictions(tmp_path / "run", {(i // 3, i % 3): _padded_gt_prediction(dataset, i, (1, 1))
                                          for i in range(5)}, bs=3, fill=0, prep=prep3)
    assert post.main(["--gt_path", os.path.join(prep3, "gt"), "--output_path", str(tmp_path / "run"),
                      "--batch_size", "3", "--vis", str(tmp_path / "vis"), "--vis-count", "2"]) == 0
    assert sorted(os.listdir(tmp_path / "vis")) == ["synthetic_1_frame_0001.png",
                                                    "synthetic_1_frame_0002.png"]
    pic = np.asarray(Image.open(tmp_path / "vis" / "synthetic_1_frame_0002.png"))
    assert pic.shape == (H + caption_height(H), 4 * W, 3)  # panels on top, labelled underneath
    assert np.array_equal(pic[:H, :W], _frame(dataset, "synthetic_1", 2))
    # the same predictions from stand-in weights (the label the runner copies into its summary): the
    # predicted panel's caption says so, in red, and nothing else changes
    _write_predictions(tmp_path / "standin", {(i // 3, i % 3): _padded_gt_prediction(dataset, i, (1, 1))
                                              for i in range(5)}, bs=3, fill=0, prep=prep3,
                       **{provenance.KEY: "stand-in:seed=0 tensors:0123456789abcdef"})
    assert post.main(["--gt_path", os.path.join(prep3, "gt"), "--output_path", str(tmp_path / "standin"),
                      "--batch_size", "3", "--vis", str(tmp_path / "vis2"), "--vis-count", "1"]) == 0
    flagged = np.asarray(Image.open(tmp_path / "vis2" / "synthetic_1_frame_0001.png"))
    plain = np.asarray(Image.open(tmp_path / "vis" / "synthetic_1_frame_0001.png"))
    changed = (flagged != plain).any(-1)
    assert changed[H:, W:2 * W].any() and not changed[:H].any() and not changed[:, :W].any()
    assert not changed[:, 2 * W:].any()
    reddish = lambda p: np.count_nonzero(np.abs(p.astype(int) - STAND_IN_RGB).sum(-1) < 60)
    assert reddish(flagged[H:, W:2 * W]) > reddish(plain[H:, W:2 * W])


def test_scripts_fail_with_one_line(tmp_path):
    for argv in (["Flownet2_preprocess.py", "--dataset", str(tmp_path / "nope"), "--output",
                  str(tmp_path / "o"), "--batch_size", "1"],
                 ["Flownet2_postprocess.py", "--gt_path", str(tmp_path / "gt"), "--output_path",
                  str(tmp_path), "--batch_size", "1"]):
        out = subprocess.run([sys.executable] + argv, cwd=REPO, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2
        assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert str(tmp_path) in out.stderr


@needs_mini
def test_real_sample_end_to_end(tmp_path, capsys):
    prep = tmp_path / "prep"
    assert pre.main(["--dataset", os.path.join(MINI, "training"), "--output", str(prep),
                     "--batch_size", "2", "--scenes", "market_5,cave_2"]) == 0
    manifest = json.loads((prep / "manifest.json").read_text())
    assert manifest["model_size"] == [448, 1024]
    assert [(p["scene"], p["frame"]) for p in manifest["pairs"]] == [("cave_2", 2), ("market_5", 2)]
    pred = np.zeros((2, 2, 448, 1024), np.float32)
    for s, scene in enumerate(("cave_2", "market_5")):
        pred[s, :, :436] = read_flo(os.path.join(MINI, "training", "flow", scene,
                                                 "frame_0002.flo")).transpose(2, 0, 1)
    _save_one_batch(tmp_path / "run", prep, pred)
    capsys.readouterr()
    assert post.main(["--gt_path", str(prep / "gt"), "--output_path", str(tmp_path / "run"),
                      "--batch_size", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "2 samples, Average EPE = 0.000000"
    overall = json.loads((tmp_path / "run" / "metrics.json").read_text())["overall"]
    assert overall["epe"] == 0 and overall["px1"] == 1
    assert overall["epe_occ"] == 0 and overall["epe_noc"] == 0 and overall["pairs_with_occlusions"] == 2


def test_frame_and_flow_sizes_must_agree(tmp_path):
    root = make_synthetic_sintel(tmp_path / "d", scenes=1, pairs=1, height=32, width=48, seed=1)
    frame = os.path.join(root, "clean", "synthetic_1", "frame_0002.png")
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(frame)
    with pytest.raises(Flownet2Error, match=r"frame_0002\.png: frame is 40x32 but its flow .* is 48x32"):
        pre.main(["--dataset", root, "--output", str(tmp_path / "o"), "--batch_size", "1"])


def test_masks_are_taken_at_preprocessing_and_survive_their_source(tmp_path, capsys):
    root = make_synthetic_sintel(tmp_path / "d", scenes=1, pairs=2, height=32, width=48, seed=2)
    prep = tmp_path / "prep"
    assert pre.main(["--dataset", root, "--output", str(prep), "--batch_size", "2"]) == 0
    os.remove(os.path.join(root, "occlusions", "synthetic_1", "frame_0002.png"))
    pred = np.zeros((2, 2, 64, 64), np.float32)
    for s in range(2):
        pred[s, :, :32, :48] = read_flo(os.path.join(root, "flow", "synthetic_1",
                                                     f"frame_{s + 1:04d}.flo")).transpose(2, 0, 1)
    _save_one_batch(tmp_path / "run", prep, pred)
    capsys.readouterr()
    assert post.main(["--gt_path", str(prep / "gt"), "--output_path", str(tmp_path / "run"),
                      "--batch_size", "2"]) == 0
    assert "warning" not in capsys.readouterr().err
    overall = json.loads((tmp_path / "run" / "metrics.json").read_text())["overall"]
    assert overall["epe"] == 0 and overall["pairs_with_occlusions"] == 2

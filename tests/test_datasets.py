"""Every benchmark layout through Flownet2_preprocess.py -> fake runner outputs -> Flownet2_postprocess.py.

Each layout's synthetic set is scored against predictions = ground truth + a known per-pixel error
(2, 3, 4 or 5 px by column), and the answers are computed here by slow loops over the dataset's own
files (KITTI PNGs read by flownet2.data.kitti_png, proven on hand-built bytes in test_kitti_png.py;
.flo by flownet2.data.flo): pair order, batch and slot are written out by hand, never taken from
the manifest.
"""
import json
import math
import os
import re

import cv2
import numpy as np
import pytest
from PIL import Image
from test_pre_post import _sha256, post, pre

from flownet2.data.flo import read_flo
from flownet2.data.kitti_png import read_kitti_flow
from flownet2.data.synthetic import make_synthetic

H, W = 60, 100  # largest synthetic frame; KITTI and Middlebury frames are a few pixels smaller per pair
HM, WM = 64, 128  # the model size they pad to
BS = 2




def _fake_run(prep, out, flows):
    """flows[i]: pair i's (h, w, 2) prediction, placed by hand at batch i // BS, slot i % BS, zero-padded;
    plus the runner summary (inputs and their digests) that lets the postprocess check custody."""
    os.makedirs(out)
    info, seen = {}, {}
    for k in range(math.ceil(len(flows) / BS)):
        arr = np.zeros((BS, 2, HM, WM), np.float32)
        for s in range(BS):
            if k * BS + s < len(flows):
                flow = flows[k * BS + s]
                arr[s, :, :flow.shape[0], :flow.shape[1]] = flow.transpose(2, 0, 1)
        arr.tofile(os.path.join(out, f"{k}_0.bin"))
        infiles = [os.path.join(prep, d, f"{k}.bin") for d in ("image1", "image2")]
        info[str(k)] = {"infiles": infiles, "outfiles": [os.path.join(out, f"{k}_0.bin")]}
        seen.update((p, _sha256(p)) for p in infiles)
    with open(str(out) + "_summary.json", "w") as f:
        json.dump({"filesinfo": info, "args": ["infer.py", "--model", "m.onnx"],
                   "flownet2.input_digests": seen}, f)


def _error_field(h, w, offset=0.0):
    """The known error added to the ground truth: u + 2, 3, 4, 5 px by column (x % 4), v untouched.
    Exact for KITTI's 1/64 px ground truth, so exactly 3 px (not an outlier, not under 3) is met.
    A .flo ground truth is any float32, where gt + 3 - gt is 3 only to ~1e-7: there `offset` 0.5
    keeps every error off the thresholds."""
    d = np.zeros((h, w, 2), np.float32)
    d[..., 0] = 2 + offset + np.arange(w) % 4
    return d


def _reference(items):
    """Slow per-pixel scoring of (pred, gt, valid, noc or None, fg or None) pairs, from the definitions."""
    rows = []
    for pred, gt, valid, noc, fg in items:
        r = {"sum": 0.0, "n": 0, "fl": 0, "out3": 0, "noc_n": 0, "fl_noc": 0, "out3_noc": 0, "noc_sum": 0.0,
             "bg_n": 0, "fl_bg": 0, "fg_n": 0, "fl_fg": 0, "px": [0, 0, 0]}
        for y in range(gt.shape[0]):
            for x in range(gt.shape[1]):
                if not valid[y, x]:
                    continue
                e = math.hypot(float(pred[y, x, 0]) - float(gt[y, x, 0]), float(pred[y, x, 1]) - float(gt[y, x, 1]))
                mag = math.hypot(float(gt[y, x, 0]), float(gt[y, x, 1]))
                fl = e > 3 and e > 0.05 * mag
                r["sum"] += e
                r["n"] += 1
                r["fl"] += fl
                r["out3"] += e > 3
                r["px"] = [c + (e < t) for c, t in zip(r["px"], (1, 3, 5))]
                if noc is not None and noc[y, x]:
                    r["noc_n"] += 1
                    r["noc_sum"] += e
                    r["fl_noc"] += fl
                    r["out3_noc"] += e > 3
                if fg is not None:
                    side = "fg" if fg[y, x] else "bg"
                    r[f"{side}_n"] += 1
                    r[f"fl_{side}"] += fl
        rows.append(r)
    total = lambda k: sum(r[k] for r in rows)
    return {
        "epe": sum(r["sum"] / r["n"] for r in rows) / len(rows),
        "epe_pooled": total("sum") / total("n"),
        "px3": sum(r["px"][1] / r["n"] for r in rows) / len(rows),
        "fl_all": total("fl") / total("n"), "fl_all_image_mean": sum(r["fl"] / r["n"] for r in rows) / len(rows),
        "out3_all": total("out3") / total("n"),
        "fl_noc": total("fl_noc") / total("noc_n") if total("noc_n") else None,
        "out3_noc": total("out3_noc") / total("noc_n") if total("noc_n") else None,
        "epe_noc": total("noc_sum") / total("noc_n") if total("noc_n") else None,
        "epe_occ": (total("sum") - total("noc_sum")) / (total("n") - total("noc_n")) if total("noc_n") else None,
        "fl_bg": total("fl_bg") / total("bg_n") if total("bg_n") else None,
        "fl_fg": total("fl_fg") / total("fg_n") if total("fg_n") else None,
    }


def _kitti_items(root, frames, n):
    """(pred, gt, valid, noc, fg) of KITTI pair n, read from the dataset's files."""
    gt, valid = read_kitti_flow(os.path.join(root, "training", "flow_occ", f"{n:06d}_10.png"))
    _, noc = read_kitti_flow(os.path.join(root, "training", "flow_noc", f"{n:06d}_10.png"))
    obj = os.path.join(root, "training", "obj_map", f"{n:06d}_10.png")
    fg = np.asarray(Image.open(obj)) > 0 if os.path.isfile(obj) else None
    assert valid.any() and not valid.all() and (noc & valid).sum() < valid.sum()  # sparse, some occluded
    pred = gt + _error_field(*gt.shape[:2])
    return pred, gt, valid, noc & valid, fg


def _hd1k_items(root):
    items = []
    for s in range(2):
        for n in range(2):
            gt, valid = read_kitti_flow(os.path.join(root, "hd1k_flow_gt", "flow_occ", f"{s:06d}_{n:04d}.png"))
            items.append((gt + _error_field(*gt.shape[:2]), gt, valid, None, None))
    return items


def _middlebury_items(root):
    items = []
    for s in (1, 2):
        gt = read_flo(os.path.join(root, "other-gt-flow", f"Synthetic{s}", "flow10.flo"))
        valid = ~((np.abs(gt[..., 0]) > 1e9) | (np.abs(gt[..., 1]) > 1e9))
        assert 0 < valid.sum() < valid.size  # some unknown pixels
        pred = np.where(valid[..., None], gt, 0) + _error_field(*gt.shape[:2], 0.5)
        items.append((pred, gt, valid, None, None))
    return items


def _chairs_items(root):
    # the split file marks every second pair as validation: pairs 2 and 4 of 4
    return [(g + _error_field(H, W, 0.5), g, np.ones((H, W), bool), None, None)
            for g in (read_flo(os.path.join(root, "data", f"{n:05d}_flow.flo")) for n in (2, 4))]


LAYOUTS = {  # layout: (make_synthetic arguments, preprocess extras, pairs in order)
    "kitti2015": ({"pairs": 3}, ["--size", f"{HM}x{WM}", "--size-mode", "pad"],
                  lambda root: [_kitti_items(root, "image_2", n) for n in range(3)]),
    "kitti2012": ({"pairs": 3}, ["--size", f"{HM}x{WM}", "--size-mode", "pad"],
                  lambda root: [_kitti_items(root, "colored_0", n) for n in range(3)]),
    "hd1k": ({"scenes": 2, "pairs": 2}, [], _hd1k_items),
    "middlebury": ({"scenes": 2}, [], _middlebury_items),
    "chairs": ({"pairs": 4}, ["--split-file", "SPLIT"], _chairs_items),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def scored(request, tmp_path_factory):
    """A layout's synthetic set, preprocessed (layout recognised), fake predictions, postprocessed."""
    layout = request.param
    kwargs, extra, items = LAYOUTS[layout]
    tmp = tmp_path_factory.mktemp(layout)
    root = make_synthetic(tmp / "data", layout, height=H, width=W, seed=3, **kwargs)
    extra = [os.path.join(root, "FlyingChairs_train_val.txt") if e == "SPLIT" else e for e in extra]
    prep, out = tmp / "prep", tmp / "run"
    assert pre.main(["--dataset", root, "--output", str(prep), "--batch_size", str(BS)] + extra) == 0
    pairs = items(root)
    _fake_run(prep, out, [p[0] for p in pairs])
    assert post.main(["--gt_path", str(prep / "gt"), "--output_path", str(out), "--batch_size", str(BS)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    manifest = json.loads((prep / "manifest.json").read_text())
    return layout, root, prep, report, manifest, pairs


def test_each_layout_scores_known_errors_exactly(scored):
    layout, _, _, report, manifest, pairs = scored
    assert report["dataset_type"] == manifest["dataset_type"] == layout  # recognised from the folder
    ref, got = _reference(pairs), report["overall"]
    assert got["pairs"] == len(pairs)
    keys = {"epe", "epe_pooled", "px3"}
    keys |= {"fl_all", "fl_all_image_mean"} if layout in ("kitti2015", "kitti2012", "hd1k") else set()
    keys |= {"fl_noc", "epe_noc", "epe_occ"} if layout.startswith("kitti") else set()
    keys |= {"fl_bg", "fl_fg"} if layout == "kitti2015" else set()
    keys |= {"out3_all", "out3_noc"} if layout == "kitti2012" else set()
    for key in keys:  # EPE: float32 per pixel as in the postprocess; outlier shares: exact counts
        exact = key.startswith(("fl", "out3"))
        assert got[key] == (ref[key] if exact else pytest.approx(ref[key], rel=1e-6)), key
    # the rules that do not belong to a dataset are not reported for it
    assert ("fl_bg" in got) == (layout == "kitti2015") and ("out3_all" in got) == (layout == "kitti2012")
    assert ("fl_all" in got) == (layout in ("kitti2015", "kitti2012", "hd1k"))
    if "fl_all" in got:  # the error field makes the 4 and 5 px columns outliers, the 2 and 3 px not
        assert 0.3 < got["fl_all"] < 0.7
    if layout == "chairs":  # the split list used is named by its content
        split_file = os.path.join(scored[1], "FlyingChairs_train_val.txt")
        assert report["split"]["sha256"] == _sha256(split_file)
        assert report["split"]["first_validation_pairs"] == ["00002", "00004"] and report["split"]["found"] == 2


def test_masks_in_the_batches_are_the_datasets_own(scored):
    """mask/{i}.bin: bit 1 = KITTI's B channel > 0 (sparse), bit 2 = flow_noc's, bit 4 = obj_map > 0."""
    _layout, _root, prep, _, manifest, pairs = scored
    for i, (_, gt, valid, noc, fg) in enumerate(pairs):
        bits = np.fromfile(prep / "mask" / f"{i}.bin", np.uint8).reshape(HM, WM)
        h, w = gt.shape[:2]
        assert manifest["pairs"][i]["size"] == [h, w] and not bits[h:].any() and not bits[:, w:].any()
        assert np.array_equal(bits[:h, :w] & 1 > 0, valid)
        assert np.array_equal(bits[:h, :w] & 2 > 0, noc if noc is not None else np.zeros_like(valid))
        assert np.array_equal(bits[:h, :w] & 4 > 0, fg & valid if fg is not None else np.zeros_like(valid))
        stored = np.fromfile(prep / "gt" / f"{i}.bin", np.float32).reshape(HM, WM, 2)[:h, :w]
        assert np.array_equal(stored[valid], gt[valid]) and not stored[~valid].any()  # 0, not 1e10


def test_sizes_differ_inside_kitti_and_middlebury_and_each_pair_records_its_fit(scored):
    layout, _, _, _, manifest, _pairs = scored
    sizes = {tuple(p["size"]) for p in manifest["pairs"]}
    assert (len(sizes) > 1) == (layout in ("kitti2015", "kitti2012", "middlebury"))
    assert manifest["model_size"] == [HM, WM]
    for p in manifest["pairs"]:
        assert p["fit"] == {"mode": "pad", "bottom": HM - p["size"][0], "right": WM - p["size"][1]}


def test_kitti_default_is_384x1280_resized_and_scored_at_the_original_size(tmp_path):
    """Zero predictions resize back to zero exactly, so EPE is |gt| and Fl the share of |gt| > 3 px."""
    root = make_synthetic(tmp_path / "k", "kitti2015", pairs=2, height=H, width=W, seed=5)
    prep, out = tmp_path / "prep", tmp_path / "run"
    assert pre.main(["--dataset", root, "--output", str(prep), "--batch_size", "1"]) == 0
    manifest = json.loads((prep / "manifest.json").read_text())
    assert manifest["model_size"] == [384, 1280] and manifest["resize_mode"] == "resize"
    h, w = manifest["pairs"][1]["size"]
    assert manifest["pairs"][1]["fit"] == {"mode": "resize", "scale_y": 384 / h, "scale_x": 1280 / w}
    os.makedirs(out)
    info = {}
    for k in range(2):
        np.zeros((1, 2, 384, 1280), np.float32).tofile(out / f"{k}_0.bin")
        info[str(k)] = {"infiles": [str(prep / d / f"{k}.bin") for d in ("image1", "image2")],
                        "outfiles": [str(out / f"{k}_0.bin")]}
    (tmp_path / "run_summary.json").write_text(json.dumps({"filesinfo": info}))  # as ais_bench: paths only
    assert post.main(["--gt_path", str(prep / "gt"), "--output_path", str(out), "--batch_size", "1"]) == 0
    got = json.loads((out / "metrics.json").read_text())["overall"]
    flows = [read_kitti_flow(os.path.join(root, "training", "flow_occ", f"{n:06d}_10.png")) for n in range(2)]
    mags = [np.hypot(f[..., 0].astype(np.float64), f[..., 1])[v] for f, v in flows]
    assert got["epe"] == pytest.approx(np.mean([m.mean() for m in mags]), rel=1e-6)
    assert got["fl_all"] == sum((m > 3).sum() for m in mags) / sum(m.size for m in mags)


# ------------------------------------------------------------------------- bad input: one line, nothing written

def _one_line(capsys, argv):
    from flownet2.cli import run_main
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_main(pre.main, argv)
    # progress bars redraw with \r and an interrupted one ends without a newline: cut at both
    err = [line[line.index("error: "):] for line in re.split(r"[\r\n]", capsys.readouterr().err)
           if "error: " in line]
    assert e.value.code == 2 and len(err) == 1
    return err[0]


def test_unknown_layout_missing_flow_and_wrong_png_get_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    (tmp_path / "empty" / "images").mkdir(parents=True)
    line = _one_line(capsys, ["--dataset", str(tmp_path / "empty"), "--output", str(out)])
    assert "layout not recognised" in line and "kitti2015 (training/image_2/" in line
    root = make_synthetic(tmp_path / "k", "kitti2012", pairs=2, height=32, width=80, seed=1)
    flow = os.path.join(root, "training", "flow_occ", "000001_10.png")
    with open(flow, "rb") as f:
        good = f.read()
    os.remove(flow)
    line = _one_line(capsys, ["--dataset", root, "--output", str(out)])
    assert f"{flow}: flow file not found" in line
    for raw, what in ((np.zeros((32, 80), np.uint16), "1 channel(s) of 16 bits"),
                      (np.zeros((32, 80, 4), np.uint16), "4 channel(s) of 16 bits"),
                      (np.zeros((32, 80, 3), np.uint8), "3 channel(s) of 8 bits")):
        cv2.imwrite(flow, raw)
        line = _one_line(capsys, ["--dataset", root, "--output", str(out)])
        assert f"{flow}: a KITTI flow PNG has 3 channels of 16 bits, this one has {what}" in line
    assert not out.exists()  # refused while planning: not a file written
    with open(flow, "wb") as f:
        f.write(good)
    line = _one_line(capsys, ["--dataset", root, "--dataset-type", "middlebury", "--output", str(out)])
    assert "not in the middlebury layout" in line
    line = _one_line(capsys, ["--dataset", root, "--output", str(out), "--size", "60x200"])
    assert "multiples of 64" in line
    line = _one_line(capsys, ["--dataset", root, "--output", str(out), "--size", "64x64", "--size-mode", "pad"])
    assert "larger than the model size 64x64" in line
    assert not out.exists()

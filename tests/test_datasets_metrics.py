"""The benchmark rules at their edges, against slow references written here from the devkits' words."""
import math

import numpy as np
import pytest

from flownet2.score.metrics import compute_metrics, fl_outliers, summarise

KITTI2015 = ("epe", "px", "occ", "fl", "fg")


def _one_pixel(gt, err):
    g = np.array([[gt]], np.float32)
    return compute_metrics(g + np.array([[err]], np.float32), g, rules=("epe", "fl", "out3"))


@pytest.mark.parametrize("gt, err, fl, out3", [
    ((0, 0), (3, 0), 0, 0),            # exactly 3 px: not above 3
    ((0, 0), (3.0625, 0), 1, 1),       # just above 3 px, |gt| 0
    ((100, 0), (5, 0), 0, 1),          # exactly 5% of |gt| = 100: not above 5%
    ((100, 0), (5.0625, 0), 1, 1),     # just above 5%
    ((100, 0), (0, 4), 0, 1),          # above 3 px, under 5%: KITTI 2015 inlier, KITTI 2012 outlier
    ((60, 80), (3, 4), 0, 1),          # |gt| 100, error exactly 5 in both components
    ((-40, 0), (0, 2.5), 0, 0),        # above 5% (2), under 3 px
])
def test_fl_and_out3_rules_at_their_edges(gt, err, fl, out3):
    m = _one_pixel(gt, err)
    assert (m["fl_all"], m["n_fl_all"], m["out3_all"]) == (fl, fl, out3)


def _slow(pred, gt, valid, noc, fg):
    out = {k: 0 for k in ("n", "fl", "noc", "fl_noc", "bg", "fl_bg", "fg", "fl_fg", "out3")}
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            if not valid[y, x]:
                continue
            e = math.dist(pred[y, x].tolist(), gt[y, x].tolist())
            bad = e > 3 and e > 0.05 * math.hypot(*gt[y, x].tolist())
            out["n"] += 1
            out["fl"] += bad
            out["out3"] += e > 3
            if noc[y, x]:
                out["noc"] += 1
                out["fl_noc"] += bad
            side = "fg" if fg[y, x] else "bg"
            out[side] += 1
            out["fl_" + side] += bad
    return out


def test_sparse_validity_and_obj_map_splits_match_a_slow_reference():
    rng = np.random.default_rng(4)
    gt = (rng.integers(-64 * 40, 64 * 40, (23, 31, 2)) / 64).astype(np.float32)  # KITTI's 1/64 px steps
    pred = (gt + rng.integers(-64 * 6, 64 * 6, gt.shape) / 64).astype(np.float32)
    valid = rng.random((23, 31)) < 0.4
    noc = valid & (rng.random((23, 31)) < 0.7)
    fg = rng.random((23, 31)) < 0.3
    gt[~valid] = 0  # what an invalid KITTI pixel stores; its prediction says anything
    m = compute_metrics(pred, gt, valid, noc=noc, fg=fg & valid, rules=KITTI2015 + ("out3",))
    ref = _slow(pred, gt, valid, noc, fg)
    assert m["n_valid"] == ref["n"] and m["n_fl_all"] == ref["fl"] and m["n_out3_all"] == ref["out3"]
    assert (m["n_noc_px"], m["n_fl_noc"]) == (ref["noc"], ref["fl_noc"])
    assert (m["n_bg_px"], m["n_fl_bg"], m["n_fg_px"], m["n_fl_fg"]) == (ref["bg"], ref["fl_bg"], ref["fg"], ref["fl_fg"])
    assert m["fl_all"] == ref["fl"] / ref["n"] and 0 < ref["fl"] < ref["n"]


def test_middlebury_unknown_means_above_1e9():
    gt = np.zeros((1, 4, 2), np.float32)
    gt[0, 0, 0] = 1e9        # exactly 1e9: known
    gt[0, 1, 1] = -1.001e9   # above 1e9 in magnitude: unknown
    gt[0, 2] = 1e10          # Middlebury's stored value: unknown
    pred = np.zeros_like(gt)
    pred[0, 0, 0] = 1e9
    pred[0, 3] = (3, 4)
    m = compute_metrics(pred, gt, rules=("epe", "px"))
    assert m["n_valid"] == 2 and m["epe"] == 2.5  # (0 + 5) / 2


def test_image_mean_and_pixel_pooled_epe_and_fl_are_both_reported():
    gt = np.zeros((2, 5, 2), np.float32)
    small = np.zeros((2, 5), bool)
    small[0, 0] = True  # one valid pixel, error 10: an outlier
    big = np.ones((2, 5), bool)  # ten valid pixels, error 1
    rows = [dict(compute_metrics(gt + np.float32(10) * np.array([1, 0], np.float32), gt, small, rules=KITTI2015),
                 scene="a"),
            dict(compute_metrics(gt + np.array([1, 0], np.float32), gt, big, rules=KITTI2015), scene="a")]
    s = summarise(rows)
    assert s["epe"] == (10 + 1) / 2 and s["epe_pooled"] == (10 + 10) / 11
    assert s["fl_all"] == 1 / 11 and s["fl_all_image_mean"] == (1 + 0) / 2
    assert "fl_bg" not in s and s["epe_occ"] is None  # no obj_map, no noc mask: not made up


def test_nan_prediction_has_no_outlier_count():
    gt = np.zeros((2, 2, 2), np.float32)
    pred = gt.copy()
    pred[0, 0, 0] = np.nan
    m = compute_metrics(pred, gt, rules=KITTI2015)
    assert math.isnan(m["epe"]) and math.isnan(m["fl_all"]) and m["n_fl_all"] is None
    assert math.isnan(summarise([dict(m, scene="a")])["fl_all"])


def test_fl_outliers_vectorised_rule_equals_the_definition_on_a_grid():
    e = np.repeat(np.arange(0, 8, 0.25, dtype=np.float32)[None], 3, 0)
    gt = np.zeros(e.shape + (2,), np.float32)
    gt[..., 0] = np.array([0, 40, 100], np.float32)[:, None]
    expected = [[ev > 3 and ev > 0.05 * g for ev in row] for row, g in zip(e.tolist(), (0, 40, 100))]
    assert fl_outliers(e, gt).tolist() == expected

"""Metrics with known answers, and against a slow per-pixel reference."""
import math
import os

import numpy as np
import pytest
from sintel_mini import MINI, needs_mini

from flownet2.data.flo import read_flo
from flownet2.score import metrics
from flownet2.score.metrics import compute_metrics, per_scene, summarise


def _quarter_pixel_gt(shape=(20, 30), seed=0):
    """A flow whose values are multiples of 1/4: adding (3, 4) to it is exact in float32."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-200, 200, shape + (2,)) / 4).astype(np.float32)


def test_gt_against_itself_scores_zero():
    gt = _quarter_pixel_gt()
    m = compute_metrics(gt.copy(), gt)
    assert m["epe"] == 0 and m["px1"] == m["px3"] == m["px5"] == 1 and m["n_valid"] == 600


def test_constant_3_4_offset_is_epe_5_and_no_pixel_under_5():
    gt = _quarter_pixel_gt()
    pred = gt + np.array([3, 4], np.float32)
    m = compute_metrics(pred, gt)
    assert m["epe"] == 5.0
    assert m["px1"] == m["px3"] == m["px5"] == 0.0


@needs_mini
def test_real_gt_against_itself_and_offset():
    gt = read_flo(os.path.join(MINI, "training", "flow", "market_5", "frame_0002.flo"))
    assert compute_metrics(gt.copy(), gt)["epe"] == 0
    m = compute_metrics(gt + np.array([3, 4], np.float32), gt)
    # float32 rounding of gt + 3 moves single pixels by < 1e-5 px, so EPE 5 to that precision;
    # px5 is not asserted here: 4.99999 < 5 is a rounding artefact (the exact case is tested above)
    assert m["epe"] == pytest.approx(5, abs=1e-5)
    assert m["px1"] == 0 and m["px3"] == 0


def _slow_reference(pred, gt, occ):
    """Per-pixel loop, written from the definitions."""
    errs, occ_errs, noc_errs = [], [], []
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            if abs(gt[y, x, 0]) > 1e9 or abs(gt[y, x, 1]) > 1e9:
                continue
            e = math.sqrt((float(pred[y, x, 0]) - float(gt[y, x, 0])) ** 2
                          + (float(pred[y, x, 1]) - float(gt[y, x, 1])) ** 2)
            errs.append(e)
            (occ_errs if occ[y, x] else noc_errs).append(e)
    return {"epe": sum(errs) / len(errs), "px1": sum(e < 1 for e in errs) / len(errs),
            "px3": sum(e < 3 for e in errs) / len(errs), "px5": sum(e < 5 for e in errs) / len(errs),
            "epe_occ": sum(occ_errs) / len(occ_errs), "n_occ": len(occ_errs),
            "epe_noc": sum(noc_errs) / len(noc_errs), "n_noc": len(noc_errs), "n_valid": len(errs)}


def test_matches_slow_reference_with_unknowns_and_occlusions():
    rng = np.random.default_rng(1)
    gt = rng.normal(0, 5, (13, 17, 2)).astype(np.float32)
    pred = (gt + rng.normal(0, 3, gt.shape)).astype(np.float32)
    gt[2, 3, 0] = 1e10  # unknown: ignored whatever the prediction says
    gt[5, :, 1] = -3e9
    pred[2, 3] = 1e6
    occ = rng.random((13, 17)) < 0.3
    ours, ref = compute_metrics(pred, gt, noc=~occ), _slow_reference(pred, gt, occ)
    assert set(ours) == set(ref)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-6), key  # float32 per pixel
    assert ours["n_valid"] == 13 * 17 - 17 - 1  # row 5 and pixel (2, 3)


def test_occluded_split_known_answer():
    gt = np.zeros((4, 4, 2), np.float32)
    occ = np.zeros((4, 4), bool)
    occ[:, :1] = True  # 4 occluded pixels with error 1, 12 visible with error 2
    pred = np.zeros_like(gt)
    pred[..., 0] = np.where(occ, 1, 2)
    m = compute_metrics(pred, gt, noc=~occ)
    assert (m["epe_occ"], m["n_occ"], m["epe_noc"], m["n_noc"]) == (1, 4, 2, 12)
    assert m["epe"] == pytest.approx((4 * 1 + 12 * 2) / 16)
    assert "epe_occ" not in compute_metrics(pred, gt)  # no mask, no split


def test_all_unknown_gt_is_not_scored_and_not_averaged_in():
    gt = np.full((3, 3, 2), 2e9, np.float32)
    m = compute_metrics(np.zeros_like(gt), gt)
    assert m["n_valid"] == 0 and math.isnan(m["epe"])
    good = {"scene": "a", "epe": 2.0, "px1": 0.0, "px3": 1.0, "px5": 1.0, "n_valid": 9}
    s = summarise([good, dict(m, scene="a")])
    assert s["pairs"] == 2 and s["pairs_scored"] == 1 and s["epe"] == 2.0


def test_nan_prediction_is_not_hidden():
    gt = np.zeros((2, 2, 2), np.float32)
    pred = gt.copy()
    pred[0, 0, 0] = np.nan
    m = compute_metrics(pred, gt)
    assert math.isnan(m["epe"]) and m["px1"] == 0.75
    assert math.isnan(summarise([dict(m, scene="a")])["epe"])


def test_summaries_image_means_and_pooled_occlusion():
    rows = [
        {"scene": "a", "epe": 1.0, "px1": 0.5, "px3": 1.0, "px5": 1.0, "n_valid": 100,
         "epe_occ": 4.0, "n_occ": 10, "epe_noc": 1.0, "n_noc": 90},
        {"scene": "a", "epe": 3.0, "px1": 0.0, "px3": 0.5, "px5": 1.0, "n_valid": 100,
         "epe_occ": 1.0, "n_occ": 30, "epe_noc": 3.0, "n_noc": 70},
        {"scene": "b", "epe": 8.0, "px1": 0.0, "px3": 0.0, "px5": 0.25, "n_valid": 100},
    ]
    s = summarise(rows)
    assert s["epe"] == pytest.approx(4.0) and s["px1"] == pytest.approx(0.5 / 3)
    assert s["px5"] == pytest.approx(0.75)
    assert s["epe_occ"] == pytest.approx((4 * 10 + 1 * 30) / 40)
    assert s["epe_noc"] == pytest.approx((1 * 90 + 3 * 70) / 160)
    assert s["pairs_with_occlusions"] == 2
    scenes = per_scene(rows)
    assert list(scenes) == ["a", "b"]
    assert scenes["a"]["epe"] == pytest.approx(2.0) and scenes["b"]["epe"] == 8.0
    assert scenes["b"]["epe_occ"] is None and scenes["b"]["pairs"] == 1


def test_per_pair_columns_are_the_keys_compute_metrics_writes():
    rng = np.random.default_rng(4)
    gt = rng.standard_normal((8, 8, 2)).astype(np.float32)
    noc, fg = rng.random((8, 8)) < 0.7, rng.random((8, 8)) < 0.4
    row = metrics.compute_metrics(gt + 1, gt, noc=noc, fg=fg, rules=("epe", "px", "occ", "fl", "out3", "fg"))
    assert row["n_all_px"] == row["n_valid"] and row["n_noc_px"] == row["n_noc"]  # written once, as those
    assert set(row) - {"n_all_px", "n_noc_px"} == set(metrics.PAIR_COLUMNS)

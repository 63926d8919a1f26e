"""Optical-flow metrics against ground truth: EPE, px1/px3/px5, occluded / non-occluded EPE.

Conventions: EPE is the per-image mean of ||pred - gt||, then the mean over
images. px1/px3/px5 are the fraction of pixels with EPE strictly under 1/3/5 px, per image, then
averaged over images. Occluded / non-occluded EPE is pooled over all masked pixels of a set (an
image with ten occluded pixels should not weigh as much as one with ten thousand). Pixels whose
ground truth is unknown (|u| or |v| > 1e9) are left out of everything.
"""
import math

import numpy as np

from ..data.flo import UNKNOWN_THRESHOLD, unknown_mask

THRESHOLDS = (1, 3, 5)


def compute_metrics(pred, gt, occ=None):
    """Metrics of one (H, W, 2) prediction against (H, W, 2) ground truth; `occ`: (H, W) bool."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    # float32 per pixel (the inputs' own precision, ~1e-7 relative), sums in float64; the
    # unknown pixels may overflow to inf here, harmlessly: they are masked out below
    with np.errstate(over="ignore", invalid="ignore"):
        # (2, H, W) planes, worked on in place: these passes over ~450k pixels are most of the
        # postprocess time (predictions arrive as planes, so this reads them contiguously)
        d = np.subtract(pred.transpose(2, 0, 1), gt.transpose(2, 0, 1), dtype=np.float32)
        d *= d
        epe = np.add(d[0], d[1])
        np.sqrt(epe, out=epe)
    # the common case, no unknown pixel at all, is settled by two fast reductions
    if not (gt.min() >= -UNKNOWN_THRESHOLD and gt.max() <= UNKNOWN_THRESHOLD):
        valid = ~unknown_mask(gt)
        epe = epe[valid]
        occ = None if occ is None else occ[valid]
    n = int(epe.size)
    total = float(epe.sum(dtype=np.float64))
    out = {"epe": total / n if n else math.nan, "n_valid": n}
    for t in THRESHOLDS:
        out[f"px{t}"] = float(np.count_nonzero(epe < t)) / n if n else math.nan
    if occ is not None:
        n_occ = int(np.count_nonzero(occ))
        # multiplying by the mask is 3x faster than np.where, but NaN * 0 is NaN: only when finite
        masked = epe * occ if math.isfinite(total) else np.where(occ, epe, np.float32(0))
        occ_sum = float(masked.sum(dtype=np.float64))
        out["epe_occ"] = occ_sum / n_occ if n_occ else math.nan
        out["n_occ"] = n_occ
        out["epe_noc"] = (total - occ_sum) / (n - n_occ) if n - n_occ else math.nan
        out["n_noc"] = n - n_occ
    return out


def _pooled(rows, key):
    """Pixel-weighted mean of a masked EPE over the rows that have that mask."""
    rows = [r for r in rows if r.get(f"n_{key}")]
    total = sum(r[f"n_{key}"] for r in rows)
    return sum(r[f"epe_{key}"] * r[f"n_{key}"] for r in rows) / total if total else None


def summarise(rows):
    """Aggregate per-pair metric dicts: image means for EPE/px, pooled occ/noc EPE."""
    scored = [r for r in rows if r["n_valid"] > 0]  # an all-unknown gt has nothing to score
    mean = lambda key: float(np.mean([r[key] for r in scored])) if scored else None
    out = {"pairs": len(rows), "pairs_scored": len(scored), "epe": mean("epe")}
    for t in THRESHOLDS:
        out[f"px{t}"] = mean(f"px{t}")
    out["epe_occ"] = _pooled(rows, "occ")
    out["epe_noc"] = _pooled(rows, "noc")
    out["pairs_with_occlusions"] = sum(1 for r in rows if "n_occ" in r)
    return out


def per_scene(rows):
    """{scene: summarise(its rows)}, scenes in the order they first appear."""
    scenes = {}
    for r in rows:
        scenes.setdefault(r["scene"], []).append(r)
    return {scene: summarise(group) for scene, group in scenes.items()}

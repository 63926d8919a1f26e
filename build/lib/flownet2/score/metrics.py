"""Optical-flow metrics against ground truth: one function per rule, each on (flow, gt, valid).

Rules (which ones a dataset is scored with: RULES; what each means: RULE_TEXT):
- EPE = ||pred - gt|| per valid pixel. Per image: its mean; over a set both the mean of the image
  means ("epe", what RAFT, ptlflow and Sintel's own tables report) and the per-pixel pooled mean
  ("epe_pooled", what mmflow reports).
- px1/px3/px5: fraction of valid pixels with EPE strictly under 1/3/5 px, per image, then averaged.
- occ / noc: EPE over the occluded / non-occluded valid pixels, pooled over the set (an image with
  ten occluded pixels should not weigh as much as one with ten thousand).
- Fl (KITTI 2015 devkit): a pixel is an outlier when its EPE is > 3 px AND > 5% of the true flow's
  length; Fl-all = outliers / valid pixels, summed over all images (pooled); also over the
  non-occluded pixels (Fl-noc) and, with an object map, over background / foreground (Fl-bg / Fl-fg).
- Out3 (KITTI 2012 devkit): a pixel is an outlier when its EPE is > 3 px; pooled like Fl.
Pixels whose ground truth is unknown (not in `valid`; by default |u| or |v| > 1e9) are left out of everything.
"""
import math

import numpy as np

from ..data.flo import UNKNOWN_THRESHOLD, unknown_mask

THRESHOLDS = (1, 3, 5)
# The outlier rules and the regions each is counted over (bg / fg only where the dataset has an object map)
OUTLIER_REGIONS = {"fl": ("all", "noc", "bg", "fg"), "out3": ("all", "noc")}
FL_ABSOLUTE = 3.0  # KITTI 2015: EPE > 3 px and > 5 % of |gt|,
FL_RELATIVE = 20.0  # the 5 % as its exact inverse: 20 * EPE > |gt|
OUT_ABSOLUTE = 3.0  # KITTI 2012: > 3 px

RULE_TEXT = {
    "epe": "EPE over valid pixels: mean of per-image means (epe) and per-pixel pooled (epe_pooled)",
    "px": "px1/px3/px5: fraction of valid pixels with EPE < 1/3/5 px, mean of per-image fractions",
    "occ": "EPE over occluded / non-occluded valid pixels (epe_occ / epe_noc), pooled over pixels",
    "fl": "Fl (KITTI 2015 devkit): outlier when EPE > 3 px and > 5% of |gt|; Fl-all pooled over all "
          "valid pixels of all images (fl_all; per-image mean: fl_all_image_mean), Fl-noc over non-occluded",
    "fg": "Fl-bg / Fl-fg: Fl over obj_map background (0) / foreground (> 0) valid pixels, pooled",
    "out3": "Out3 (KITTI 2012 devkit): outlier when EPE > 3 px, pooled over all (out3_all) and "
            "non-occluded (out3_noc) valid pixels",
}
RULES = {
    "sintel": ("epe", "px", "occ"),
    "kitti2015": ("epe", "px", "occ", "fl", "fg"),
    "kitti2012": ("epe", "px", "occ", "fl", "out3"),  # Fl as ptlflow reports it, Out3 as the devkit
    "hd1k": ("epe", "px", "fl"),
    "middlebury": ("epe", "px"),
    "chairs": ("epe", "px"),
}


def epe_map(flow, gt):
    """(H, W) float32 end-point error of (H, W, 2) flows; unknown gt may overflow to inf, harmlessly
    (callers mask it out)."""
    if flow.shape != gt.shape:
        raise ValueError(f"prediction {flow.shape} and ground truth {gt.shape} differ in shape")
    with np.errstate(over="ignore", invalid="ignore"):
        # (2, H, W) planes, worked on in place: these passes are most of the postprocess time
        d = np.subtract(flow.transpose(2, 0, 1), gt.transpose(2, 0, 1), dtype=np.float32)
        d *= d
        epe = np.add(d[0], d[1])
        np.sqrt(epe, out=epe)
    return epe


def fl_outliers(epe, gt):
    """KITTI 2015's outlier rule per pixel (bool): EPE > 3 px and EPE > 5% of |gt|. Compared as
    20 * EPE > |gt| in float64, so exactly 5% is not an outlier (no rounding of 0.05 involved)."""
    magnitude = np.hypot(gt[..., 0].astype(np.float64), gt[..., 1].astype(np.float64))
    return (epe > FL_ABSOLUTE) & (FL_RELATIVE * epe.astype(np.float64) > magnitude)


def out3_outliers(epe):
    """KITTI 2012's outlier rule per pixel (bool): EPE > 3 px."""
    return epe > OUT_ABSOLUTE


def default_valid(gt):
    """Known ground truth: every pixel but those marked unknown (|u| or |v| > 1e9)."""
    if gt.min() >= -UNKNOWN_THRESHOLD and gt.max() <= UNKNOWN_THRESHOLD:
        return None  # the common case, settled by two fast reductions: all valid
    return ~unknown_mask(gt)


def _mean(total, n):
    return total / n if n else math.nan


def px_key(threshold):
    return f"px{threshold}"


def outlier_keys(rule, region):
    """(outlier rate, outlier count, pixels in the region) keys of one rule over one region."""
    return f"{rule}_{region}", f"n_{rule}_{region}", f"n_{region}_px"


def _pair_columns():
    columns = ["epe", *map(px_key, THRESHOLDS), "epe_occ", "epe_noc", "n_valid", "n_occ", "n_noc"]
    for rule, regions in OUTLIER_REGIONS.items():
        keys = [outlier_keys(rule, region) for region in regions]
        columns += [k[0] for k in keys] + [k[1] for k in keys]
        # pixels of "all" and "noc" are n_valid and n_noc already
        columns += [k[2] for k, region in zip(keys, regions) if region not in ("all", "noc")]
    return tuple(columns)


PAIR_COLUMNS = _pair_columns()  # every per-pair metric, in per_pair.csv's order


def compute_metrics(flow, gt, valid=None, *, noc=None, fg=None, rules=("epe", "px", "occ")):
    """Metrics of one (H, W, 2) prediction against (H, W, 2) ground truth.

    `valid`, `noc`, `fg`: (H, W) bool, or None (valid: every known pixel; noc / fg: no such mask).
    `rules`: which of RULE_TEXT's rules to apply. Counts ("n_*") are kept so sets can be pooled.
    """
    epe = epe_map(flow, gt)
    if valid is None:
        valid = default_valid(gt)
    # all valid: no copy (a Sintel frame has no unknown pixel)
    sel = (lambda m: m) if valid is None else (lambda m: m[valid])
    e = sel(epe)
    n = int(e.size)
    total = float(e.sum(dtype=np.float64))
    out = {"epe": _mean(total, n), "n_valid": n}
    if "px" in rules:
        for t in THRESHOLDS:
            out[px_key(t)] = _mean(float(np.count_nonzero(e < t)), n)
    noc_v = None if noc is None else sel(noc)
    if "occ" in rules and noc_v is not None:
        n_noc = int(np.count_nonzero(noc_v))
        # multiplying by the mask is 3x faster than np.where, but NaN * 0 is NaN: only when finite
        noc_sum = float((e * noc_v if math.isfinite(total) else np.where(noc_v, e, np.float32(0)))
                        .sum(dtype=np.float64))
        out.update(epe_noc=_mean(noc_sum, n_noc), n_noc=n_noc,
                   epe_occ=_mean(total - noc_sum, n - n_noc), n_occ=n - n_noc)
    finite = math.isfinite(total)  # a NaN prediction has no outlier count: NaN, not "no outliers"
    for rule, outliers in (("fl", lambda: fl_outliers(e, sel(gt))), ("out3", lambda: out3_outliers(e))):
        if rule not in rules:
            continue
        bad = outliers()
        regions = {"all": None, "noc": noc_v}
        if rule == "fl" and "fg" in rules and fg is not None:
            fg_v = sel(fg)
            regions.update(bg=~fg_v, fg=fg_v)
        for region, mask in regions.items():
            if region != "all" and mask is None:
                continue
            count = int(np.count_nonzero(bad if mask is None else bad & mask))
            size = n if mask is None else int(np.count_nonzero(mask))
            rate, outliers_key, pixels = outlier_keys(rule, region)
            out[rate] = _mean(count, size) if finite else math.nan
            out[outliers_key] = count if finite else None
            out[pixels] = size
    return out


def _pooled(rows, key):
    """Pixel-weighted mean of a masked EPE over the rows that have that mask."""
    rows = [r for r in rows if r.get(f"n_{key}")]
    total = sum(r[f"n_{key}"] for r in rows)
    return sum(r[f"epe_{key}"] * r[f"n_{key}"] for r in rows) / total if total else None


def _pooled_rate(rows, rule, region):
    """Outliers / pixels over the rows that have that region (the devkits' Fl / Out: pooled)."""
    _, outliers, pixels = outlier_keys(rule, region)
    rows = [r for r in rows if r.get(pixels) and outliers in r]
    if not rows:
        return None
    if any(r[outliers] is None for r in rows):
        return math.nan
    return sum(r[outliers] for r in rows) / sum(r[pixels] for r in rows)


def summarise(rows):
    """Aggregate per-pair metric dicts: image means and pooled values, each under its own key."""
    scored = [r for r in rows if r["n_valid"] > 0]  # an all-unknown gt has nothing to score
    mean = lambda key: float(np.mean([r[key] for r in scored])) if scored and key in scored[0] else None
    n_pixels = sum(r["n_valid"] for r in scored)
    out = {"pairs": len(rows), "pairs_scored": len(scored), "epe": mean("epe"),
           "epe_pooled": sum(r["epe"] * r["n_valid"] for r in scored) / n_pixels if n_pixels else None}
    for t in THRESHOLDS:
        out[px_key(t)] = mean(px_key(t))
    out["epe_occ"] = _pooled(rows, "occ")
    out["epe_noc"] = _pooled(rows, "noc")
    out["pairs_with_occlusions"] = sum(1 for r in rows if "n_occ" in r)
    for rule, regions in OUTLIER_REGIONS.items():
        for region in regions:
            rate, outliers, _ = outlier_keys(rule, region)
            if any(outliers in r for r in rows):
                out[rate] = _pooled_rate(rows, rule, region)
    if "fl_all" in out:
        out["fl_all_image_mean"] = mean("fl_all")
    return out


def per_scene(rows):
    """{scene: summarise(its rows)}, scenes in the order they first appear."""
    scenes = {}
    for r in rows:
        scenes.setdefault(r["scene"], []).append(r)
    return {scene: summarise(group) for scene, group in scenes.items()}

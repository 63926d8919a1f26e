"""Motion scores of a clip from the flows of its sampled pairs, without ground truth: for video-dataset
curation (static clips out, or clips ranked by how much they move).

Every score is over all pixels of all sampled pairs of the clip, in pixels of the size the flow was
scored at (the frames' size after any resize), summed in float64:

- flow: Open-Sora's score, the mean of |u| and |v|: (sum |u| + sum |v|) / (2 * pixels).
- motion: data-juicer's video_motion_score, the mean flow magnitude sqrt(u^2 + v^2). Its pairs all
  have one size, so the mean over pixels and pairs is its mean of the per-pair means.
- motion_relative: motion / the diagonal sqrt(H^2 + W^2) of the scored frames (data-juicer's
  relative=True).
- p90: the 90th percentile of the magnitude within each pair (numpy's linear interpolation),
  averaged over the pairs: how fast the fast part of the picture moves (a small object crossing a
  still background lifts p90, hardly the mean). Per pair, so a long clip needs no memory for it.
- fb_consistent: the fraction of pixels passing the forward-backward consistency rule
  (score/quality.py), when the backward flow was computed; NaN otherwise.

Magnitudes are taken with hypot in float64 (no squared flow is held); a pair whose flow is not finite
makes every score NaN, so a broken model run never reads as a still clip.
"""
import math
from dataclasses import dataclass

import numpy as np

PERCENTILE = 90
COLUMNS = ("flow", "motion", "motion_relative", "p90", "pairs", "frames_used", "fb_consistent", "status")


@dataclass
class MotionSums:
    """Running sums over a clip's pairs; add() one (H, W, 2) flow at a time."""

    pairs: int = 0
    pixels: int = 0
    abs_u: float = 0.0
    abs_v: float = 0.0
    magnitude: float = 0.0
    p90: float = 0.0  # the sum of each pair's 90th percentile
    consistent: int = 0  # pixels passing the forward-backward rule, over the pairs that were checked
    checked: int = 0  # pixels of those pairs
    size: tuple | None = None  # (height, width) of the flows

    def add(self, flow, consistent=None):
        """One pair's flow (H, W, 2), and its consistency mask (H, W) bool when the backward flow ran."""
        f = np.asarray(flow, np.float64)
        if self.size is None:
            self.size = f.shape[:2]
        elif f.shape[:2] != self.size:  # the definitions hold for pairs of one size only
            raise ValueError(f"a {f.shape[0]}x{f.shape[1]} flow among {self.size[0]}x{self.size[1]} ones")
        magnitude = np.hypot(f[..., 0], f[..., 1])
        self.pairs += 1
        self.pixels += magnitude.size
        self.abs_u += float(np.abs(f[..., 0]).sum())
        self.abs_v += float(np.abs(f[..., 1]).sum())
        self.magnitude += float(magnitude.sum())
        self.p90 += float(np.percentile(magnitude, PERCENTILE)) if np.isfinite(magnitude).all() else math.nan
        if consistent is not None:
            self.consistent += int(np.count_nonzero(consistent))
            self.checked += consistent.size

    def scores(self):
        """{flow, motion, motion_relative, p90, pairs, fb_consistent} (NaN where there is no pair)."""
        if not self.pairs:
            return {"flow": math.nan, "motion": math.nan, "motion_relative": math.nan, "p90": math.nan,
                    "pairs": 0, "fb_consistent": math.nan}
        motion = self.magnitude / self.pixels
        return {"flow": (self.abs_u + self.abs_v) / (2 * self.pixels), "motion": motion,
                "motion_relative": motion / math.hypot(*self.size), "p90": self.p90 / self.pairs,
                "pairs": self.pairs, "fb_consistent": self.consistent / self.checked if self.checked else math.nan}


def clip_record(sums, source, *, model_ms=0.0):
    """What a clip's marker keeps: its scores, the frame indices its source used (0-based), its status
    (short: the clip ended before the sampling rule's last index), the decode and model seconds."""
    return {**sums.scores(), "frames_used": list(source.used), "status": "short" if source.short else "ok",
            "decode_s": source.decode_s, "model_s": model_ms / 1000}


def keep(score, *, low=None, high=None):
    """1 when low <= score <= high (either bound left out: open), 0 otherwise; None for a missing or NaN score."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return None
    return int((low is None or score >= low) and (high is None or score <= high))


def row(record):
    """A marker's record as table cells (COLUMNS): numbers to 9 significant digits (fb_consistent empty where
    the backward flow did not run), the frame indices joined by spaces."""
    cells = {k: _number(record[k]) for k in ("flow", "motion", "motion_relative", "p90")}
    cells["fb_consistent"] = "" if math.isnan(record["fb_consistent"]) else _number(record["fb_consistent"])
    return {**cells, "pairs": str(record["pairs"]), "frames_used": " ".join(str(i) for i in record["frames_used"]),
            "status": record["status"]}


def _number(value):
    return "nan" if value is None or math.isnan(value) else f"{value:.9g}"

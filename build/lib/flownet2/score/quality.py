"""Flow you can check without ground truth: forward-backward consistency, photometric error, flags.

    python -m flownet2.score.quality --forward F.flo --backward B.flo [--frames I1 I2] [--mask OUT.png]

- Backward warp: a map sampled at x + w_f(x) for every pixel x, bilinearly. x is the integer pixel
  index; the point is taken apart as x + floor(w_f) (integers) and the fraction w_f - floor(w_f), so no
  float ever holds an absolute pixel coordinate. A point outside [0, W-1] x [0, H-1], or a non-finite
  flow, has nothing to read: it counts as inconsistent (occluded: its pixel leaves the picture).
- Consistency (Sundaram, Brox and Keutzer, ECCV 2010; the rule of UnFlow, Meister et al. 2018): pixel
  x is consistent when |w_f + w_b(x + w_f)|^2 < a1 (|w_f|^2 + |w_b(x + w_f)|^2) + a2, with a1 = 0.01,
  a2 = 0.5 px^2 by default. Inconsistent pixels are occluded or wrong. Squares are taken in float64.
- Photometric error: mean over the consistent pixels and the three channels of |I1(x) - I2(x + w_f)|,
  in grey levels (0-255); NaN without frames or without a consistent pixel.
- Mean flow magnitude: mean of |w_f| in px over the pixels.
- Flagging, per video: a pair is flagged when its consistent fraction is under half its video's
  median, or its photometric error is over twice its video's median plus 2 grey levels (the floor
  keeps a nearly perfect video from flagging its own noise). A shot cut or a black frame usually
  does both.
"""
import argparse
import csv
import dataclasses
import math

import numpy as np

from ..cli import run_main
from ..data.flow_formats import read_flow
from ..data.images import read_rgb
from ..errors import Flownet2Error
from ..fileio import atomic_write, save_png

ALPHA1 = 0.01
ALPHA2 = 0.5  # px^2
CONSISTENT_DROP = 0.5  # flagged under half the video's median consistent fraction
PHOTOMETRIC_RISE = 2.0  # flagged over twice the video's median photometric error ...
PHOTOMETRIC_FLOOR = 2.0  # ... plus 2 grey levels
CONSISTENT = 255  # the occlusion mask's value for a consistent pixel (0 elsewhere)


@dataclasses.dataclass(frozen=True)
class PairScores:
    consistent: float  # fraction of pixels that pass the consistency rule
    photometric: float  # mean |I1 - warped I2| over consistent pixels, grey levels; NaN if unknown
    magnitude: float  # mean |w_f|, px


def sample(values, flow):
    """(values (H, W, C) sampled bilinearly at x + flow(x), float64; inside (H, W) bool).

    Where the point lies outside the picture (or the flow is not finite) the value is 0 and inside
    is False. A point exactly on the last row or column is inside.
    """
    h, w = flow.shape[:2]
    if values.shape[:2] != (h, w):
        raise Flownet2Error(f"a {values.shape[0]}x{values.shape[1]} map cannot be sampled by a {h}x{w} flow")
    f = flow.astype(np.float64)
    finite = np.isfinite(f).all(axis=-1)
    # a step of more than h + w px leaves the picture whatever its fraction; clipping keeps int64 exact
    f = np.where(finite[..., None], np.clip(f, -(h + w), h + w), 0.0)
    whole = np.floor(f)
    frac = f - whole  # in [0, 1): exact, the fraction of a float is representable
    x0 = np.arange(w) + whole[..., 0].astype(np.int64)
    y0 = np.arange(h)[:, None] + whole[..., 1].astype(np.int64)
    fx, fy = frac[..., 0, None], frac[..., 1, None]
    inside = finite & _within(x0, frac[..., 0], w) & _within(y0, frac[..., 1], h)
    x0, x1 = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    row0, row1 = np.clip(y0, 0, h - 1) * w, np.clip(y0 + 1, 0, h - 1) * w
    flat = values.reshape(h * w, -1)  # gathered by flat index, converted to float64 by the weights

    def at(rows, cols):
        return np.take(flat, rows + cols, axis=0)

    out = ((at(row0, x0) * (1 - fx) + at(row0, x1) * fx) * (1 - fy)
           + (at(row1, x0) * (1 - fx) + at(row1, x1) * fx) * fy)
    out[~inside] = 0.0
    return out.reshape(values.shape[:2] + values.shape[2:]), inside


def _within(start, frac, size):
    """start + frac in [0, size - 1] for integer start and frac in [0, 1)."""
    return (start >= 0) & ((start < size - 1) | ((start == size - 1) & (frac == 0)))


def consistency(forward, backward, *, alpha1=ALPHA1, alpha2=ALPHA2):
    """(H, W) bool: the forward-backward rule of the module's docstring, per pixel of `forward`."""
    _check_flows(forward, backward)
    return _consistent(forward, *sample(backward, forward), alpha1=alpha1, alpha2=alpha2)


def _check_flows(forward, backward):
    if forward.shape != backward.shape or forward.ndim != 3 or forward.shape[2] != 2:
        raise Flownet2Error(f"forward flow {forward.shape} and backward flow {backward.shape} must both be "
                            "(H, W, 2) of one size")


def _consistent(forward, back, inside, *, alpha1, alpha2):
    """The rule, given the backward flow already sampled at the targets (`back`) and where they lie."""
    wf = forward.astype(np.float64)
    d = wf + back
    with np.errstate(invalid="ignore"):  # NaN in the backward flow: the comparison is False
        lhs = (d * d).sum(axis=-1)
        rhs = alpha1 * ((wf * wf).sum(axis=-1) + (back * back).sum(axis=-1)) + alpha2
        return inside & (lhs < rhs)


def photometric_error(frame1, frame2, *, flow, mask):
    """Mean over `mask` and the channels of |frame1(x) - frame2(x + flow)| in grey levels; NaN if
    `mask` is empty. Frames (H, W, 3) in 0-255."""
    _check_frames(frame1, frame2, flow)
    warped, inside = sample(frame2, flow)
    return _mean_difference(frame1, warped, mask & inside)


def _check_frames(frame1, frame2, flow):
    if frame1.shape != frame2.shape or frame1.shape[:2] != flow.shape[:2]:
        raise Flownet2Error(f"frames {frame1.shape} and {frame2.shape} do not match the "
                            f"{flow.shape[0]}x{flow.shape[1]} flow")


def _mean_difference(frame1, warped, use):
    if not use.any():
        return math.nan
    return float(np.abs(frame1.astype(np.float64)[use] - warped[use]).mean())


def mean_magnitude(flow):
    """Mean |flow| in px over the finite pixels (NaN if none)."""
    f = flow.astype(np.float64)
    finite = np.isfinite(f).all(axis=-1)
    return float(np.hypot(f[..., 0], f[..., 1])[finite].mean()) if finite.any() else math.nan


def score_pair(forward, backward, *, frames=None, alpha1=ALPHA1, alpha2=ALPHA2):
    """(PairScores, consistent mask (H, W) bool) of one pair; the photometric error needs `frames`,
    the pair's two frames (H, W, 3)."""
    _check_flows(forward, backward)
    maps = [backward]
    if frames is not None:
        _check_frames(*frames, forward)
        maps.append(frames[1])
    # one lookup for both: the backward flow and the second frame are sampled at the same points
    sampled, inside = sample(np.concatenate(maps, axis=-1, dtype=np.float64), forward)
    mask = _consistent(forward, sampled[..., :2], inside, alpha1=alpha1, alpha2=alpha2)
    photometric = math.nan if frames is None else _mean_difference(frames[0], sampled[..., 2:], mask)
    return PairScores(float(mask.mean()), photometric, mean_magnitude(forward)), mask


def flag_pairs(scores):
    """[bool] per pair of one video: the flagging rule of the module's docstring. NaN scores never
    flag by themselves and are left out of the medians."""
    consistent = np.array([s.consistent for s in scores], np.float64)
    photometric = np.array([s.photometric for s in scores], np.float64)
    with np.errstate(invalid="ignore"):  # NaN compares False: no flag
        low = consistent < CONSISTENT_DROP * _nanmedian(consistent)
        high = photometric > PHOTOMETRIC_RISE * _nanmedian(photometric) + PHOTOMETRIC_FLOOR
    return (low | high).tolist()


def video_summary(names, scores):
    """What a video's quality comes to: its pairs, the flagged ones, medians and the mean magnitude."""
    return {"pairs": len(scores), "flagged": [n for n, f in zip(names, flag_pairs(scores)) if f],
            "median_consistent": _nanmedian([s.consistent for s in scores]),
            "median_photometric": _nanmedian([s.photometric for s in scores]),
            "mean_magnitude": _nanmean([s.magnitude for s in scores])}


def _nanmedian(values):
    values = np.asarray(values, np.float64)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else math.nan


def _nanmean(values):
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else math.nan


def write_video_table(path, *, names, scores):
    """quality.csv of one video: a row per pair (pair, consistent, photometric, magnitude, flagged 0/1);
    returns video_summary()."""
    flags = flag_pairs(scores)
    rows = [[name, _number(s.consistent), _number(s.photometric), _number(s.magnitude), int(f)]
            for name, s, f in zip(names, scores, flags)]
    _write_csv(path, PAIR_COLUMNS, rows)
    return video_summary(names, scores)


def write_collection_table(path, summaries):
    """quality.csv of a collection: a row per video from {video: video_summary()}."""
    rows = [[video, s["pairs"], len(s["flagged"]), _number(s["median_consistent"]),
             _number(s["median_photometric"]), _number(s["mean_magnitude"])] for video, s in summaries.items()]
    _write_csv(path, VIDEO_COLUMNS, rows)


PAIR_COLUMNS = ("pair", "consistent", "photometric", "magnitude", "flagged")
VIDEO_COLUMNS = ("video", "pairs", "flagged", "median_consistent", "median_photometric", "mean_magnitude")


def _number(value):
    return "nan" if value is None or math.isnan(value) else f"{value:.6g}"


def _write_csv(path, columns, rows):
    with atomic_write(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)


def summary_line(summary):
    """One line of a video's quality for a run's summary."""
    flagged = summary["flagged"]
    names = f": {', '.join(flagged)}" if flagged else ""
    return (f"quality: {len(flagged)} of {summary['pairs']} pairs flagged{names} (median consistent "
            f"{summary['median_consistent']:.3f}, median photometric error {summary['median_photometric']:.2f} "
            f"grey levels, mean |flow| {summary['mean_magnitude']:.2f} px)")


def occlusion_png(mask):
    """The 8-bit picture of a consistency mask: 255 consistent, 0 occluded or wrong."""
    return np.where(mask, CONSISTENT, 0).astype(np.uint8)


def describe(scores):
    """One line of a pair's scores."""
    return (f"consistent {scores.consistent:.4f}, photometric error {scores.photometric:.3f} "
            f"(grey levels), mean |flow| {scores.magnitude:.3f} px")


def read_for_quality(path):
    """A flow file through the toolkit's one reader; pixels it marks invalid become NaN (inconsistent)."""
    flow, valid = read_flow(path)
    return flow if valid is None else np.where(valid[..., None], flow, np.nan).astype(np.float32)


def main(argv=None):
    p = argparse.ArgumentParser(description="Score a flow without ground truth: forward-backward "
                                "consistency, photometric error and mean magnitude.")
    p.add_argument("--forward", required=True, help="flow from frame 1 to frame 2 (.flo, KITTI .png, .npy, jpg)")
    p.add_argument("--backward", required=True, help="flow from frame 2 to frame 1, same size")
    p.add_argument("--frames", nargs=2, metavar=("I1", "I2"), help="the two frames: adds the photometric error")
    p.add_argument("--mask", help="write the consistency mask here (8-bit PNG, 255 = consistent)")
    p.add_argument("--alpha1", type=float, default=ALPHA1)
    p.add_argument("--alpha2", type=float, default=ALPHA2)
    args = p.parse_args(argv)
    forward, backward = read_for_quality(args.forward), read_for_quality(args.backward)
    if forward.shape != backward.shape:
        raise Flownet2Error(f"{args.backward}: {backward.shape[0]}x{backward.shape[1]}, but the forward flow "
                            f"{args.forward} is {forward.shape[0]}x{forward.shape[1]}")
    frames = [read_rgb(f) for f in args.frames] if args.frames else None
    for path, frame in zip(args.frames or (), frames or ()):
        if frame.shape[:2] != forward.shape[:2]:
            raise Flownet2Error(f"{path}: {frame.shape[0]}x{frame.shape[1]}, but the flow is "
                                f"{forward.shape[0]}x{forward.shape[1]}")
    scores, mask = score_pair(forward, backward, frames=frames, alpha1=args.alpha1, alpha2=args.alpha2)
    print(describe(scores))
    if args.mask:
        save_png(args.mask, occlusion_png(mask))
    return 0


if __name__ == "__main__":
    run_main(main)

"""Middlebury (other-data) on disk: `other-data/<seq>/frameNN.png`, `frameNN+1.png` and
`other-gt-flow/<seq>/flowNN.flo` (the 8 training sequences have flow10.flo). Ground truth values
above 1e9 are unknown (stored as 1e10); flownet2.data.flo reads them as they are.
"""
import os
import re

from .images import Pair

_FLOW = re.compile(r"^flow(\d+)\.flo$")


def middlebury_root(dataset):
    ok = lambda r: os.path.isdir(os.path.join(r, "other-gt-flow")) and os.path.isdir(os.path.join(r, "other-data"))
    return dataset if ok(dataset) else None


def find_pairs(root):
    """(pairs, skipped): every flowNN.flo with both of its frames; sequences sorted."""
    gt_root, frames_root = os.path.join(root, "other-gt-flow"), os.path.join(root, "other-data")
    pairs, skipped = [], []
    for seq in sorted(os.listdir(gt_root)):
        if not os.path.isdir(os.path.join(gt_root, seq)):
            continue
        for entry in sorted(os.listdir(os.path.join(gt_root, seq))):
            m = _FLOW.match(entry)
            if not m:
                continue
            n, digits = int(m.group(1)), m.group(1)
            frames = [os.path.join(frames_root, seq, f"frame{k:0{len(digits)}d}.png") for k in (n, n + 1)]
            missing = [p for p in frames if not os.path.isfile(p)]
            if missing:
                skipped.extend(os.path.relpath(p, root) for p in missing)
                continue
            pairs.append(Pair(seq, n, f"frame{digits}", *frames, os.path.join(gt_root, seq, entry)))
    return pairs, skipped

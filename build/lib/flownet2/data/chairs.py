"""FlyingChairs on disk: `data/NNNNN_img1.ppm`, `NNNNN_img2.ppm`, `NNNNN_flow.flo` (22,872 pairs,
384x512), and the split file `FlyingChairs_train_val.txt`: line i says whether pair i (numbered
from 1) is training (1) or validation (2).

Two different 640-pair validation lists circulate under that file name (the one published with the
dataset and the one RAFT and ptlflow ship; they share only ~35 pairs): a run records the split
file's sha256 and its first validation pairs, so a result names the list it used.
"""
import os
import re

from ..errors import Flownet2Error
from ..fileio import file_digest
from .images import Pair
from .sintel import frame_pairs

_FRAME = re.compile(r"^(\d+)_img1\.ppm$")
TRAIN, VALIDATION = "1", "2"


def chairs_root(dataset):
    """The folder holding the `_img1.ppm` files: `dataset/data` or `dataset` itself; None if neither."""
    for root in (os.path.join(dataset, "data"), dataset):
        if os.path.isdir(root) and any(_FRAME.match(e) for e in os.listdir(root)):
            return root
    return None


def read_split(path):
    """The split file's lines ('1' or '2' each), refusing anything else with one line."""
    try:
        with open(path) as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError as e:
        raise Flownet2Error(f"{path}: cannot read split file ({e.strerror})") from None
    bad = next((n for n, v in enumerate(lines, 1) if v not in (TRAIN, VALIDATION)), None)
    if bad:
        raise Flownet2Error(f"{path}: line {bad} is {lines[bad - 1]!r}; a FlyingChairs split file has "
                            "one 1 (train) or 2 (validation) per line")
    return lines


def find_pairs(root, split_file=None):
    """(pairs, skipped, split): all pairs, or with `split_file` its validation pairs; `split` describes
    the list used (None without one)."""
    found, skipped = frame_pairs(root, _FRAME, second=lambda stem: os.path.join(root, f"{stem}_img2.ppm"),
                                 flow=lambda stem, _: os.path.join(root, f"{stem}_flow.flo"), root=root)
    pairs = [Pair("chairs", int(stem), stem, image1, image2, flow) for stem, image1, image2, flow in found]
    if split_file is None:
        return pairs, skipped, None
    lines = read_split(split_file)
    last = max((p.frame for p in pairs), default=0)
    if last > len(lines):
        raise Flownet2Error(f"{split_file}: {len(lines)} lines, but the dataset has pair {last:05d}; "
                            "is this the FlyingChairs_train_val.txt of this dataset?")
    chosen = [p for p in pairs if lines[p.frame - 1] == VALIDATION]
    listed = [n for n, v in enumerate(lines, 1) if v == VALIDATION]
    split = {"file": os.path.abspath(split_file), "sha256": file_digest(split_file), "lines": len(lines),
             "validation_pairs": len(listed), "first_validation_pairs": [f"{n:05d}" for n in listed[:5]],
             "found": len(chosen)}
    return chosen, skipped, split


def describe_split(split):
    """One line naming the split list a run used (by content: its sha256 and first validation pairs)."""
    return (f"{split['file']} ({split['sha256'][:19]}..., {split['validation_pairs']} validation pairs, "
            f"first {', '.join(split['first_validation_pairs'])}; {split['found']} of them found)")

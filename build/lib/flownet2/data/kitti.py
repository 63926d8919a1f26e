"""KITTI 2015, KITTI 2012 and HD1K on disk: find the pairs and their masks.

    KITTI 2015  training/image_2/NNNNNN_10.png, _11.png; flow_occ/, flow_noc/ NNNNNN_10.png; obj_map/
    KITTI 2012  training/colored_0/NNNNNN_10.png, _11.png; flow_occ/, flow_noc/
    HD1K        hd1k_input/image_2/SSSSSS_NNNN.png; hd1k_flow_gt/flow_occ/SSSSSS_NNNN.png

KITTI pairs are listed from their first frames, so a first frame without its ground truth is an
error, not a silent gap. HD1K pairs are listed from the flow files (its sequences have more frames
than flows). The flow PNGs themselves are read by flownet2.data.kitti_png.
"""
import os
import re

import numpy as np
from PIL import Image

from ..errors import Flownet2Error
from .images import Pair
from .sintel import frame_pairs

FRAMES = {"kitti2015": "image_2", "kitti2012": "colored_0"}
_KITTI_FRAME = re.compile(r"^(\d{6})_10\.png$")
_HD1K_FLOW = re.compile(r"^(\d{6})_(\d{4})\.png$")


def kitti_root(dataset, kind):
    """The folder holding `image_2/` (2015) or `colored_0/` (2012) and `flow_occ/`: `dataset`
    itself or its `training/` child; None when neither."""
    for root in (dataset, os.path.join(dataset, "training")):
        if os.path.isdir(os.path.join(root, FRAMES[kind])) and os.path.isdir(os.path.join(root, "flow_occ")):
            return root
    return None


def hd1k_root(dataset):
    ok = lambda r: os.path.isdir(os.path.join(r, "hd1k_input", "image_2")) and \
        os.path.isdir(os.path.join(r, "hd1k_flow_gt", "flow_occ"))
    return dataset if ok(dataset) else None


def _optional(root, folder, name):
    """The path of `folder/name` when the dataset has that folder; a missing file in it is an error."""
    if not os.path.isdir(os.path.join(root, folder)):
        return None
    path = os.path.join(root, folder, name)
    if not os.path.isfile(path):
        raise Flownet2Error(f"{path}: file not found ({folder}/ lacks the one for this pair)")
    return path


def find_kitti_pairs(root, kind):
    """(pairs, skipped) of KITTI 2015 (`kind` "kitti2015") or 2012 ("kitti2012"), ascending by number."""
    frames = os.path.join(root, FRAMES[kind])
    found, skipped = frame_pairs(frames, _KITTI_FRAME, second=lambda n: os.path.join(frames, f"{n}_11.png"),
                                 flow=lambda _, entry: os.path.join(root, "flow_occ", entry), root=root)
    pairs = [Pair(kind, int(n), f"{n}_10", image1, image2, flow,
                  flow_noc=_optional(root, "flow_noc", os.path.basename(image1)),
                  obj_map=_optional(root, "obj_map", os.path.basename(image1)) if kind == "kitti2015" else None)
             for n, image1, image2, flow in found]
    return pairs, skipped


def find_hd1k_pairs(root):
    """(pairs, skipped) of HD1K: sequences ascending, frames ascending."""
    flows, frames = os.path.join(root, "hd1k_flow_gt", "flow_occ"), os.path.join(root, "hd1k_input", "image_2")
    pairs, skipped = [], []
    for entry in sorted(os.listdir(flows)):
        m = _HD1K_FLOW.match(entry)
        if not m:
            continue
        sequence, digits = m.groups()
        n = int(digits)
        image1 = os.path.join(frames, entry)
        image2 = os.path.join(frames, f"{sequence}_{n + 1:0{len(digits)}d}.png")
        missing = [p for p in (image1, image2) if not os.path.isfile(p)]
        if missing:
            skipped.extend(os.path.relpath(p, root) for p in missing)
            continue
        pairs.append(Pair(sequence, n, entry[:-4], image1, image2, os.path.join(flows, entry)))
    return pairs, skipped


def read_obj_map(path):
    """KITTI 2015's object map as a (H, W) bool foreground mask (any non-zero label)."""
    try:
        with Image.open(path) as im:  # labels are small integers: no threshold at 128 as for masks
            labels = np.asarray(im)
            return labels > 0 if labels.ndim == 2 else (labels > 0).any(axis=2)
    except (OSError, ValueError) as e:
        raise Flownet2Error(f"{path}: cannot read object map ({e})") from None


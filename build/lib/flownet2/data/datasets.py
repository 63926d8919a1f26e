"""Every benchmark layout behind one door: recognise it, list its pairs, read a pair's ground truth.

    sintel      training/{clean,final}/<scene>/frame_N.png, training/flow/<scene>/frame_N.flo
    kitti2015   training/image_2/NNNNNN_10.png, _11.png, flow_occ/, flow_noc/, obj_map/
    kitti2012   training/colored_0/NNNNNN_10.png, _11.png, flow_occ/, flow_noc/
    hd1k        hd1k_input/image_2/, hd1k_flow_gt/flow_occ/
    middlebury  other-data/<seq>/frame10.png, frame11.png, other-gt-flow/<seq>/flow10.flo
    chairs      data/NNNNN_img1.ppm, _img2.ppm, _flow.flo (+ FlyingChairs_train_val.txt)

Ground truth comes back as flow (zero where unknown) plus bool masks: `valid` (known flow), `noc`
(known and not occluded; None where the dataset has no such notion) and `fg` (KITTI 2015's moving
objects; None elsewhere).
"""
import os

import numpy as np

from ..errors import Flownet2Error
from . import chairs, images, kitti, middlebury, sintel
from .flo import read_flo_size, unknown_mask
from .flow_formats import read_flow
from .kitti_png import png_header, read_kitti_flow, read_kitti_flow_size

TYPES = ("sintel", "kitti2015", "kitti2012", "hd1k", "middlebury", "chairs")

# The size a dataset is run at when --size is not given (None: the next multiples of 64 above its
# largest frame), and how frames reach it. KITTI: 384x1280 resized, as the official Caffe release,
# mmflow and ptlflow score FlowNet2 (375x1242 -> 384x1280); the others keep their pixels (padding).
DEFAULT_SIZE = {"kitti2015": (384, 1280), "kitti2012": (384, 1280)}
DEFAULT_MODE = {"kitti2015": "resize", "kitti2012": "resize"}


def _roots(dataset):
    """{type: root} of every layout `dataset` holds."""
    found = {}
    try:
        found["sintel"] = sintel.training_root(dataset)
    except Flownet2Error:
        pass
    for kind in ("kitti2015", "kitti2012"):
        root = kitti.kitti_root(dataset, kind)
        if root:
            found[kind] = root
    for kind, find in (("hd1k", kitti.hd1k_root), ("middlebury", middlebury.middlebury_root),
                       ("chairs", chairs.chairs_root)):
        root = find(dataset)
        if root:
            found[kind] = root
    return found


def locate(dataset, dataset_type=None):
    """(type, root): the layout of `dataset` (recognised, or checked when `dataset_type` names it)."""
    dataset = os.path.abspath(os.fspath(dataset))
    if not os.path.isdir(dataset):
        raise Flownet2Error(f"{dataset}: dataset folder not found")
    if dataset_type is not None and dataset_type not in TYPES:
        raise Flownet2Error(f"unknown dataset type {dataset_type!r} (choose from {', '.join(TYPES)})")
    found = _roots(dataset)
    if dataset_type is not None:
        if dataset_type not in found:
            raise Flownet2Error(f"{dataset}: not in the {dataset_type} layout ({_LAYOUTS[dataset_type]})")
        return dataset_type, found[dataset_type]
    if not found:
        raise Flownet2Error(f"{dataset}: layout not recognised; expected one of: "
                            + "; ".join(f"{t} ({_LAYOUTS[t]})" for t in TYPES))
    if len(found) > 1:
        raise Flownet2Error(f"{dataset}: holds several layouts ({', '.join(found)}); say which with --dataset-type")
    return next(iter(found.items()))


_LAYOUTS = {
    "sintel": "training/flow/ beside training/clean/ and final/",
    "kitti2015": "training/image_2/ and training/flow_occ/",
    "kitti2012": "training/colored_0/ and training/flow_occ/",
    "hd1k": "hd1k_input/image_2/ and hd1k_flow_gt/flow_occ/",
    "middlebury": "other-data/ and other-gt-flow/",
    "chairs": "data/NNNNN_img1.ppm",
}


def find_pairs(dataset, dataset_type=None, *, pass_name="clean", scenes=None, split_file=None):
    """(type, root, pairs, skipped, split) of the dataset: pairs in a fixed order, the frames
    missing for flows that exist (skipped), and FlyingChairs' split description (else None)."""
    kind, root = locate(dataset, dataset_type)
    if split_file is not None and kind != "chairs":
        raise Flownet2Error(f"{split_file}: a split file selects FlyingChairs pairs; {root} is {kind}")
    split = None
    if kind == "sintel":
        pairs, skipped = sintel.find_pairs(root, pass_name, scenes)
        return kind, root, pairs, skipped, None
    if kind in ("kitti2015", "kitti2012"):
        pairs, skipped = kitti.find_kitti_pairs(root, kind)
    elif kind == "hd1k":
        pairs, skipped = kitti.find_hd1k_pairs(root)
    elif kind == "middlebury":
        pairs, skipped = middlebury.find_pairs(root)
    else:
        pairs, skipped, split = chairs.find_pairs(root, split_file)
    if scenes:
        available = list(dict.fromkeys(p.scene for p in pairs))
        unknown = [s for s in scenes if s not in available]
        if unknown:
            raise Flownet2Error(f"{root}: no scene {', '.join(unknown)} (available: {', '.join(available[:8])}"
                                f"{' ...' if len(available) > 8 else ''})")
        pairs = [p for p in pairs if p.scene in scenes]
    if not pairs:
        raise Flownet2Error(f"{root}: no complete pairs found (ground truth + both frames)")
    return kind, root, pairs, skipped, split


def flow_size(path):
    """(height, width) of a ground-truth file from its header (.flo or KITTI PNG), format checked."""
    return read_kitti_flow_size(path) if path.endswith(".png") else read_flo_size(path)


def mask_sizes(pair):
    """{path: (height, width)} of the pair's mask files, from their headers."""
    sizes = {}
    if pair.flow_noc:
        sizes[pair.flow_noc] = read_kitti_flow_size(pair.flow_noc)
    for path in (pair.occlusions, pair.obj_map):
        if path:
            sizes[path] = png_header(path)[:2]
    return sizes


def _read_flow(path):
    """(flow, valid) of one ground-truth file: KITTI's valid channel, else every known, finite pixel."""
    flow, valid = read_flow(path)
    return flow, (~unknown_mask(flow) & np.isfinite(flow).all(axis=2)) if valid is None else valid


def _check_shape(path, array, shape):
    if array.shape[:2] != tuple(shape):
        raise Flownet2Error(f"{path}: is {array.shape[1]}x{array.shape[0]}, the pair is {shape[1]}x{shape[0]}")


def read_ground_truth(pair):
    """(flow (H, W, 2) float32, zero where unknown; valid; noc or None; fg or None) of one pair.
    `pair`: a Pair or a manifest entry (a dict with the same fields)."""
    get = pair.get if isinstance(pair, dict) else lambda key: getattr(pair, key)
    flow, valid = _read_flow(get("flow"))
    flow = np.where(valid[..., None], flow, np.float32(0)).astype(np.float32, copy=False)
    noc = fg = None
    if get("flow_noc"):
        _, noc = read_kitti_flow(get("flow_noc"))
        _check_shape(get("flow_noc"), noc, valid.shape)
        noc &= valid
    elif get("occlusions"):
        occ = images.read_mask(get("occlusions"))
        _check_shape(get("occlusions"), occ, valid.shape)
        noc = valid & ~occ
    if get("obj_map"):
        fg = kitti.read_obj_map(get("obj_map"))
        _check_shape(get("obj_map"), fg, valid.shape)
        fg &= valid
    return flow, valid, noc, fg

"""MPI-Sintel on disk: find the pairs (frames are read and sized by flownet2/data/images.py).

Pairs are found by name: `flow/<scene>/frame_N.flo` goes with `<pass>/<scene>/frame_N.png` and
`frame_N+1.png`. Frames are never assumed to start at 0001 or to be contiguous.
"""
import os
import re

from ..errors import Flownet2Error
from .images import (InputPadder, Pair, image_size, normalise_pair, read_mask,  # noqa: F401  (re-exported)
                     read_rgb, resize_bilinear)

PASSES = ("clean", "final")
_FLOW_NAME = re.compile(r"^frame_(\d+)\.flo$")


def frame_pairs(folder, pattern, *, second, flow, root):
    """The pairs of a layout that names each first frame with a pattern: [(stem, image1, image2, flow)]
    for each file of `folder` that `pattern` matches (group 1: the stem), by name, and the second frames
    found missing (skipped, relative to `root`). `second(stem)`, `flow(stem, entry)`: the other two
    paths. A missing flow file is an error: the pair cannot be scored."""
    found, skipped = [], []
    for entry in sorted(os.listdir(folder)):
        m = pattern.match(entry)
        if not m:
            continue
        image1, image2, flow_path = os.path.join(folder, entry), second(m.group(1)), flow(m.group(1), entry)
        if not os.path.isfile(image2):
            skipped.append(os.path.relpath(image2, root))
        elif not os.path.isfile(flow_path):
            raise Flownet2Error(f"{flow_path}: flow file not found (the ground truth of {image1})")
        else:
            found.append((m.group(1), image1, image2, flow_path))
    return found, skipped


def training_root(dataset):
    """The Sintel `training` folder: `dataset` itself, or its `training/` child."""
    dataset = os.path.abspath(os.fspath(dataset))
    if not os.path.isdir(dataset):
        raise Flownet2Error(f"{dataset}: dataset folder not found")
    if os.path.isdir(os.path.join(dataset, "flow")):
        return dataset
    if os.path.isdir(os.path.join(dataset, "training", "flow")):
        return os.path.join(dataset, "training")
    raise Flownet2Error(
        f"{dataset}: no flow/ folder; pass the Sintel training folder (with clean/, final/, flow/)"
    )


def _frame_path(root, folder, scene, stem, ext):
    return os.path.join(root, folder, scene, stem + ext)


def _flow_frames(flow_dir):
    """[(N, digits)] for every frame_N.flo in `flow_dir`, ascending by N."""
    found = []
    for entry in os.listdir(flow_dir):
        m = _FLOW_NAME.match(entry)
        if m:
            found.append((int(m.group(1)), m.group(1)))
    return sorted(found)


def _select_scenes(root, scenes):
    available = sorted(d for d in os.listdir(os.path.join(root, "flow"))
                       if os.path.isdir(os.path.join(root, "flow", d)))
    if not scenes:
        return available
    unknown = [s for s in scenes if s not in available]
    if unknown:
        raise Flownet2Error(
            f"{os.path.join(root, 'flow')}: no scene {', '.join(unknown)} "
            f"(available: {', '.join(available[:8])}{' ...' if len(available) > 8 else ''})"
        )
    return sorted(set(scenes))


def find_pairs(dataset, pass_name="clean", scenes=None):
    """All pairs of one pass, scenes sorted, frames ascending.

    Returns (pairs, skipped): `skipped` lists the frame files missing for flows that exist, so the
    caller can warn (or fail under --strict); such a flow is never paired with a guessed frame.
    """
    if pass_name not in PASSES:
        raise Flownet2Error(f"unknown pass {pass_name!r} (choose from {', '.join(PASSES)})")
    root = training_root(dataset)
    if not os.path.isdir(os.path.join(root, pass_name)):
        raise Flownet2Error(f"{root}: no {pass_name}/ folder for pass {pass_name!r}")
    pairs, skipped = [], []
    for scene in _select_scenes(root, scenes):
        for n, digits in _flow_frames(os.path.join(root, "flow", scene)):
            stem = "frame_" + digits
            next_stem = "frame_" + str(n + 1).zfill(len(digits))
            image1 = _frame_path(root, pass_name, scene, stem, ".png")
            image2 = _frame_path(root, pass_name, scene, next_stem, ".png")
            missing = [p for p in (image1, image2) if not os.path.isfile(p)]
            if missing:
                skipped.extend(os.path.relpath(p, root) for p in missing)
                continue
            occ = _frame_path(root, "occlusions", scene, stem, ".png")
            inv = _frame_path(root, "invalid", scene, stem, ".png")
            pairs.append(Pair(scene, n, stem, image1, image2,
                              _frame_path(root, "flow", scene, stem, ".flo"),
                              occ if os.path.isfile(occ) else None,
                              inv if os.path.isfile(inv) else None))
    if not pairs:
        raise Flownet2Error(f"{root}: no complete {pass_name} pairs found (flow + both frames)")
    return pairs, skipped


def skipped_message(skipped, shown=3):
    """One line for the frames that were missing: the count and the first few."""
    first = ", ".join(skipped[:shown]) + (", ..." if len(skipped) > shown else "")
    return f"{len(skipped)} frame file(s) missing, their flows skipped (first: {first})"

"""KITTI's 16-bit PNG flow format (KITTI 2012/2015, HD1K; also what RAFT's and torchvision's KITTI readers read).

Three uint16 channels per pixel, in RGB order: u = (R - 2**15) / 64, v = (G - 2**15) / 64, valid = B > 0.
So flow is stored to 1/64 px within [-512, 512) px; an invalid pixel stores (0, 0).

Read and written with OpenCV: common image readers (Pillow among them) silently reduce a 48-bit PNG to
8 bits per channel; OpenCV keeps 16 bits, and its channel order (BGR) is reversed here.
"""
import os

import numpy as np

from ..errors import Flownet2Error
from ..fileio import atomic_write

OFFSET = 2 ** 15
SCALE = 64.0
LIMIT = OFFSET / SCALE  # |u|, |v| below 512 px are stored exactly to 1/64 px


def _cv2():
    import cv2  # imported on first use: most stages never read a PNG flow
    return cv2


def read_kitti_flow(path):
    """(flow (H, W, 2) float32 in px, valid (H, W) bool) from a KITTI flow PNG."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise Flownet2Error(f"{path}: flow file not found")
    cv2 = _cv2()
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # None on anything it cannot decode
    if raw is None:
        raise Flownet2Error(f"{path}: not a readable PNG")
    if raw.dtype != np.uint16 or raw.ndim != 3 or raw.shape[2] != 3:
        channels = 1 if raw.ndim == 2 else raw.shape[2]
        raise Flownet2Error(f"{path}: a KITTI flow PNG has 3 channels of 16 bits, this one has {channels} "
                            f"channel(s) of {raw.dtype.itemsize * 8} bits")
    valid = raw[:, :, 0] > 0  # B
    flow = np.empty(raw.shape[:2] + (2,), np.float32)
    # (value - 2^15) / 64 is exact in float32: both steps stay on 1/64 px steps below 2^24
    np.subtract(raw[:, :, 2], OFFSET, out=flow[:, :, 0], dtype=np.float32)  # R
    np.subtract(raw[:, :, 1], OFFSET, out=flow[:, :, 1], dtype=np.float32)  # G
    flow /= SCALE
    return flow, valid


def encode_kitti_flow(flow, valid=None):
    """The (H, W, 3) uint16 RGB planes of a KITTI flow PNG: flow rounded to 1/64 px and clipped to the
    format's range; `valid` (H, W) bool defaults to every finite pixel; invalid pixels store zeros."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise Flownet2Error(f"flow must be (H, W, 2), got {flow.shape}")
    finite = np.isfinite(flow).all(axis=2)
    valid = finite if valid is None else np.asarray(valid, bool) & finite
    out = np.zeros(flow.shape[:2] + (3,), np.uint16)
    scaled = np.rint(np.where(valid[..., None], flow, 0).astype(np.float64) * SCALE) + OFFSET
    np.clip(scaled, 0, 2 ** 16 - 1, out=scaled)
    out[:, :, :2] = scaled
    out[:, :, 2] = valid
    out[~valid, :2] = 0
    return out


def write_kitti_flow(path, flow, valid=None):
    """Write (H, W, 2) flow as a KITTI flow PNG, atomically (see encode_kitti_flow)."""
    rgb = encode_kitti_flow(flow, valid)
    cv2 = _cv2()
    ok, data = cv2.imencode(".png", rgb[:, :, ::-1])
    if not ok:
        raise Flownet2Error(f"{path}: could not encode the flow as PNG")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())

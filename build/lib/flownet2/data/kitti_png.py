"""KITTI's 16-bit PNG flow format (KITTI 2012/2015, HD1K; also what RAFT's and torchvision's KITTI readers read).

Three uint16 channels per pixel, in RGB order: u = (R - 2**15) / 64, v = (G - 2**15) / 64, valid = B > 0.
So flow is stored to 1/64 px within [-512, 512) px; an invalid pixel stores (0, 0).

`read_kitti_flow_size` checks a file's header (3 channels of 16 bits) without decoding it, so a
dataset is checked before anything is written. Read and written with OpenCV: common image readers (Pillow among them) silently reduce a 48-bit PNG to
8 bits per channel; OpenCV keeps 16 bits, and its channel order (BGR) is reversed here.
"""
import os

import numpy as np

from ..errors import Flownet2Error
from ..fileio import atomic_write

OFFSET = 2 ** 15
SCALE = 64.0
LIMIT = OFFSET / SCALE  # |u|, |v| below 512 px are stored exactly to 1/64 px
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> channels


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
    _check_format(path, 1 if raw.ndim == 2 else raw.shape[2], raw.dtype.itemsize * 8)
    valid = raw[:, :, 0] > 0  # B
    flow = np.empty(raw.shape[:2] + (2,), np.float32)
    # (value - 2^15) / 64 is exact in float32: both steps stay on 1/64 px steps below 2^24
    np.subtract(raw[:, :, 2], OFFSET, out=flow[:, :, 0], dtype=np.float32)  # R
    np.subtract(raw[:, :, 1], OFFSET, out=flow[:, :, 1], dtype=np.float32)  # G
    flow /= SCALE
    return flow, valid


def png_header(path):
    """(height, width, bits per channel, channels) from a PNG's IHDR chunk, without decoding."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError as e:
        raise Flownet2Error(f"{path}: cannot read ({e.strerror})") from None
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise Flownet2Error(f"{path}: not a PNG file")
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return height, width, head[24], _PNG_CHANNELS.get(head[25], 0)


def read_kitti_flow_size(path):
    """(height, width) of a KITTI flow PNG, after checking it holds 3 channels of 16 bits."""
    height, width, bits, channels = png_header(path)
    _check_format(path, channels, bits)
    return height, width


def _check_format(path, channels, bits):
    if bits != 16 or channels != 3:
        raise Flownet2Error(f"{path}: a KITTI flow PNG has 3 channels of 16 bits, this one has "
                            f"{channels} channel(s) of {bits} bits")


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

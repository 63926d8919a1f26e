"""Middlebury `.flo` files: read and write with validation.

Layout: b"PIEH" (float32 202021.25, little-endian), int32 width, int32 height, then
height * width * 2 float32, (u, v) interleaved, row-major. |u| or |v| > 1e9 means "unknown";
this module returns those values untouched, `flownet2.score.metrics` masks them out.
"""
import os

import numpy as np

from ..errors import Flownet2Error
from ..fileio import atomic_save

MAGIC = b"PIEH"  # the bytes of float32 202021.25, little-endian
HEADER_BYTES = 12
UNKNOWN_THRESHOLD = 1e9


def flo_bytes(height: int, width: int) -> int:
    """Size in bytes of a .flo file holding a (height, width, 2) flow."""
    return HEADER_BYTES + height * width * 2 * 4


def read_flo_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) from the header alone, after checking the file size matches it."""
    path = os.fspath(path)
    try:
        actual = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES)
    except OSError as e:
        raise Flownet2Error(f"{path}: cannot read flow file ({e.strerror})") from None
    if len(header) < HEADER_BYTES:
        raise Flownet2Error(
            f"{path}: truncated .flo file: expected at least {HEADER_BYTES} bytes, actual {actual}"
        )
    if header[:4] != MAGIC:
        magic = np.frombuffer(header[:4], "<f4")[0]
        raise Flownet2Error(f"{path}: not a .flo file: magic {magic!r}, expected 202021.25 ('PIEH')")
    width, height = (int(v) for v in np.frombuffer(header[4:12], "<i4"))
    if width <= 0 or height <= 0 or width * height > 1 << 31:
        raise Flownet2Error(f"{path}: invalid .flo size {width}x{height} (width x height)")
    expected = flo_bytes(height, width)
    if actual != expected:
        what = "truncated" if actual < expected else "oversized"
        raise Flownet2Error(
            f"{path}: {what} .flo file for {width}x{height}: expected {expected} bytes, actual {actual}"
        )
    return height, width


def read_flo(path: str | os.PathLike) -> np.ndarray:  # (H, W, 2) float32
    """The flow field as a (height, width, 2) float32 array: [..., 0] = u (x), [..., 1] = v (y), in pixels."""
    height, width = read_flo_size(path)
    data = np.fromfile(os.fspath(path), dtype="<f4", offset=HEADER_BYTES)
    return data.reshape(height, width, 2).astype(np.float32, copy=False)


def write_flo(path: str | os.PathLike, flow: np.ndarray) -> None:
    """Write a (height, width, 2) flow field (u, v) as float32, atomically."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.shape[0] == 0 or flow.shape[1] == 0:
        raise ValueError(f"write_flo({path}): flow must be (height, width, 2), got {flow.shape}")
    height, width = flow.shape[:2]
    header = MAGIC + np.array([width, height], "<i4").tobytes()
    atomic_save(path, header + np.ascontiguousarray(flow, dtype="<f4").tobytes())


def unknown_mask(flow: np.ndarray) -> np.ndarray:  # (..., 2) -> (...) bool
    """True where the flow is marked unknown (|u| or |v| > 1e9); flow is (..., 2), the mask (...)."""
    return (np.abs(flow[..., 0]) > UNKNOWN_THRESHOLD) | (np.abs(flow[..., 1]) > UNKNOWN_THRESHOLD)

"""Flow written in the formats training code reads, and ONE reader over all of them.

    flo    Middlebury .flo, float32 (flownet2.data.flo): exact.
    jpg    two grayscale JPEGs per pair, flow_x_00001.jpg / flow_y_00001.jpg, as mmaction2's rawframes
           and denseflow: pixel = round(255 * (v + bound) / (2 * bound)) clipped to 0..255.
    kitti  KITTI's 16-bit PNG (flownet2.data.kitti_png): 1/64 px within +-512 px, a valid channel.
    npy    float16 (H, W, 2), NumPy's own file format.

`read_flow(path)` returns (flow (H, W, 2) float32, valid (H, W) bool or None) for any of them.
"""
import os
import re

import numpy as np

from ..errors import Flownet2Error
from ..fileio import atomic_write
from .flo import read_flo, write_flo
from .kitti_png import read_kitti_flow, write_kitti_flow

FORMATS = ("flo", "jpg", "kitti", "npy")
DEFAULT_BOUND = 20.0  # px at pixel 0 / 255: mmaction2's extraction scripts (denseflow's own default is 32)
JPEG_QUALITY = 95  # OpenCV's default, so what denseflow writes
_JPG_NAME = re.compile(r"^(?P<prefix>.*)flow_(?P<axis>[xy])_(?P<index>\d+)\.jpg$")
_EXT = {"flo": ".flo", "kitti": ".png", "npy": ".npy"}
# the flow from a pair's second frame back to its first: a name of its own, which read_flow still reads
# (and mmaction2's flow_{x,y}_{:05d}.jpg template does not pick up)
BACKWARD_SUFFIX = "_bwd"
BACKWARD_JPG_PREFIX = "bwd_"
OCCLUSION_SUFFIX = "_occ"  # the consistency mask's PNG: <pair name>_occ.png


def _cv2():
    import cv2  # first use only: .flo and .npy runs never need it
    return cv2


def quantise(component, bound=DEFAULT_BOUND):
    """uint8 pixels of one flow component: round(255 * (v + bound) / (2 * bound)), clipped to 0..255.

    Rounding is half to even (np.rint, Python's round): v = 0 at bound 20 is 127.5 -> 128.
    Non-finite values become 0 (NaN) or the clip limit (+-inf).
    """
    if not bound > 0:
        raise Flownet2Error(f"the jpg bound must be positive, got {bound}")
    scaled = (np.asarray(component, np.float64) + bound) * (255.0 / (2.0 * bound))
    return np.clip(np.rint(np.nan_to_num(scaled, nan=0.0)), 0, 255).astype(np.uint8)


def dequantise(pixels, bound=DEFAULT_BOUND):
    """Flow in px from quantised uint8 pixels (the inverse of quantise up to its rounding)."""
    return (np.asarray(pixels, np.float32) * np.float32(2.0 * bound / 255.0) - np.float32(bound))


def write_jpg_pair(path_x, path_y, flow, bound=DEFAULT_BOUND):
    for path, component in ((path_x, flow[..., 0]), (path_y, flow[..., 1])):
        write_jpeg(path, quantise(component, bound))


def write_jpeg(path, pixels):
    """(H, W) grey or (H, W, 3) RGB uint8 as a JPEG at OpenCV's default quality, atomically."""
    cv2 = _cv2()
    image = pixels[:, :, ::-1] if pixels.ndim == 3 else pixels
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(image), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise Flownet2Error(f"{path}: could not encode as JPEG")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())


def _read_grey(path):
    if not os.path.isfile(path):
        raise Flownet2Error(f"{path}: flow file not found")
    pixels = _cv2().imread(path, _cv2().IMREAD_UNCHANGED)
    if pixels is None or pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise Flownet2Error(f"{path}: not a readable 8-bit grayscale JPEG")
    return pixels


def read_jpg_pair(path, bound=DEFAULT_BOUND):
    """Flow from a flow_x_N.jpg / flow_y_N.jpg pair; `path` names either of the two."""
    m = _JPG_NAME.match(os.path.basename(path))
    if m is None:
        raise Flownet2Error(f"{path}: a jpg flow is named flow_x_<N>.jpg / flow_y_<N>.jpg")
    folder = os.path.dirname(path)
    x, y = (_read_grey(os.path.join(folder, f"{m['prefix']}flow_{a}_{m['index']}.jpg")) for a in "xy")
    if x.shape != y.shape:
        raise Flownet2Error(f"{path}: flow_x is {x.shape[0]}x{x.shape[1]}, flow_y {y.shape[0]}x{y.shape[1]}")
    return np.stack([dequantise(x, bound), dequantise(y, bound)], axis=-1)


def write_npy(path, flow):
    with atomic_write(path, "wb") as f:
        np.save(f, np.asarray(flow, np.float16), allow_pickle=False)


def read_npy(path):
    try:
        flow = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise Flownet2Error(f"{path}: flow file not found") from None
    except (OSError, ValueError) as e:
        raise Flownet2Error(f"{path}: not a readable .npy file ({e})") from None
    if flow.ndim != 3 or flow.shape[2] != 2 or flow.dtype.kind != "f":
        raise Flownet2Error(f"{path}: a flow .npy holds (H, W, 2) floats, this one {flow.dtype} {flow.shape}")
    return flow.astype(np.float32)


def read_flow(path, *, bound=DEFAULT_BOUND):
    """(flow (H, W, 2) float32 px, valid (H, W) bool or None) from .flo, KITTI .png, .npy or a jpg pair."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".flo":
        return read_flo(path), None
    if ext == ".png":
        return read_kitti_flow(path)
    if ext == ".npy":
        return read_npy(path), None
    if ext in (".jpg", ".jpeg"):
        return read_jpg_pair(path, bound), None
    raise Flownet2Error(f"{path}: unknown flow file; .flo, .png (KITTI 16-bit), .npy or flow_x_N.jpg")


class FlowFormat:
    """Where and how pair i's flow is written: `name` is the pair's output name (folder-relative, no
    extension, as FrameSource.pair_name gives); jpg files are numbered `start_index + i` instead."""

    def __init__(self, kind="flo", *, bound=DEFAULT_BOUND, start_index=1):
        if kind not in FORMATS:
            raise Flownet2Error(f"unknown flow format {kind!r}; choose from {', '.join(FORMATS)}")
        if not bound > 0:
            raise Flownet2Error(f"the jpg bound must be positive, got {bound}")
        if start_index < 0:
            raise Flownet2Error(f"the start index must be 0 or more, got {start_index}")
        self.kind, self.bound, self.start_index = kind, float(bound), start_index

    def files(self, name, i, *, backward=False):
        """The files pair i writes, relative to the output folder; `backward`: those of its flow from
        the second frame back to the first (`<name>_bwd.flo`; jpg: `bwd_flow_x_00001.jpg`)."""
        if self.kind == "jpg":
            folder = os.path.dirname(name)
            prefix = BACKWARD_JPG_PREFIX if backward else ""
            return [os.path.join(folder, f"{prefix}flow_{a}_{self.start_index + i:05d}.jpg") for a in "xy"]
        return [name + (BACKWARD_SUFFIX if backward else "") + _EXT[self.kind]]

    def frame_file(self, name, n):
        """mmaction2's rawframe name for frame n (0-based) of the source pair `name` belongs to."""
        return os.path.join(os.path.dirname(name), f"img_{self.start_index + n:05d}.jpg")

    def write(self, output, name, i, flow, *, backward=False):
        paths = [os.path.join(output, f) for f in self.files(name, i, backward=backward)]
        if self.kind == "flo":
            write_flo(paths[0], flow)
        elif self.kind == "jpg":
            write_jpg_pair(*paths, flow, self.bound)
        elif self.kind == "kitti":
            write_kitti_flow(paths[0], flow)
        else:
            write_npy(paths[0], flow)
        return paths

    def read(self, path):
        return read_flow(path, bound=self.bound)

    def describe(self, pairs):
        """The flow files `pairs` pairs write, for a summary: "9 .flo", "18 .jpg (flow_x, flow_y)"."""
        if self.kind == "jpg":
            return f"{2 * pairs} .jpg (flow_x, flow_y)"
        return f"{pairs} {'KITTI ' if self.kind == 'kitti' else ''}{_EXT[self.kind]}"


# what a video's output folder may hold of ours, whatever the format: removed before a redo
OUTPUT_FILE = re.compile(r"^(frame_\d{4,}(_bwd|_occ)?\.(flo|png|npy)|(bwd_)?flow_[xy]_\d+\.jpg|img_\d+\.jpg"
                         r"|quality\.csv)$")


_FLOW_JPG = re.compile(r"^(bwd_)?flow_[xy]_\d+\.jpg$")


def is_flow_jpg(name):
    """Whether file `name` is one of our jpg flow files (flow_x_N.jpg / flow_y_N.jpg, and the backward
    bwd_flow_x_N.jpg): flow, never a frame. (Our pictures need no rule: their caption strip makes them
    taller than any frame.)"""
    return bool(_FLOW_JPG.match(name))

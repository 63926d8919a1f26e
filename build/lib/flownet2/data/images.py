"""Frames as the toolkit reads them, for every dataset and for your own frames: an image's size from its
header, RGB frames (through the one reader, `decode`) and masks read, a pair normalised as the network was trained, and frames brought to
the model size and flow back (pad or bilinear resize: the size mode). `Pair` is one pair of any layout.
"""
from dataclasses import dataclass

import numpy as np

from .. import sizes
from ..errors import Flownet2Error
from . import decode


@dataclass(frozen=True)
class Pair:
    """One pair of any layout: flow from frame N (`image1`) to frame N+1 (`image2`). Paths are absolute.

    `flow` is the ground truth of every pixel it knows (`.flo`, or KITTI's `flow_occ` PNG); the
    optional masks: Sintel's `occlusions`, KITTI's `flow_noc` (its valid pixels are the
    non-occluded ones) and `obj_map` (0 = background).
    """

    scene: str
    frame: int
    name: str  # "frame_0001": the flow file's stem, also the name of the submitted .flo
    image1: str
    image2: str
    flow: str
    occlusions: str | None = None  # None where Sintel (or the sparse sample) has no mask for this frame
    invalid: str | None = None
    flow_noc: str | None = None
    obj_map: str | None = None


def image_size(path):
    """(height, width) as displayed (EXIF orientation applied), from the header, without decoding."""
    return decode.header(path).size


def read_rgb(path):
    """A frame as (height, width, 3) uint8 RGB, for pictures: decode.read_frame rounded to 8 bits
    (every other use reads decode.read_frame, which keeps 16-bit frames whole)."""
    return decode.to_uint8(decode.read_frame(path))


def read_mask(path):
    """A Sintel mask PNG (255 = set) as a (height, width) bool array."""
    with decode.open_image(path) as im:
        try:
            return np.asarray(im if im.mode == "L" else im.convert("L")) >= 128
        except (OSError, ValueError) as e:
            raise Flownet2Error(f"{path}: cannot decode mask ({e})") from None


def normalise_pair(img1, img2, out1=None, out2=None):
    """(x1, x2), each (3, h, w) float32: per channel, minus the mean over BOTH frames, / 255.

    The mean covers the real pixels only (as the network was trained); padding comes later.
    `out1`/`out2` may be given, e.g. the top-left (3, h, w) corner of a batch slot.
    """
    xs = []
    for img, out in ((img1, out1), (img2, out2)):
        x = np.empty((3,) + img.shape[:2], np.float32) if out is None else out
        x[...] = img.transpose(2, 0, 1)  # exact: uint8 values and decode's float32 16-bit ones
        xs.append(x)
    # float64 sums of 8-bit values are exact, so the mean is one rounding away from the truth
    count = 2 * img1.shape[0] * img1.shape[1]
    mean = (xs[0].sum(axis=(1, 2), dtype=np.float64) + xs[1].sum(axis=(1, 2), dtype=np.float64)) / count
    for x in xs:
        x -= mean.astype(np.float32)[:, None, None]
        x /= np.float32(255)
    return xs[0], xs[1]


def _resize_axis(x, axis, size):
    """Bilinear resampling of one axis (half-pixel centres, like align_corners=False)."""
    n = x.shape[axis]
    if n == size:
        return x
    src = (np.arange(size) + 0.5) * (n / size) - 0.5
    src = np.clip(src, 0, n - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (src - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = size
    w = w.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - w) + np.take(x, i1, axis=axis) * w


def resize_bilinear(x, height, width):
    """Resize a (C, h, w) array to (C, height, width) bilinearly."""
    return _resize_axis(_resize_axis(x, 1, height), 2, width).astype(np.float32, copy=False)


SIZE_MODES = ("pad", "resize")  # how frames reach the model size; see InputPadder


def padder_for(size, model_size, mode, *, name="the frames"):
    """An InputPadder for frames of `size` at `model_size`; pad mode cannot shrink a frame."""
    check_size_mode(mode)
    (h, w), (mh, mw) = size, model_size
    if mode == "pad" and (h > mh or w > mw):
        fit_h, fit_w = sizes.model_size(h, w)
        raise Flownet2Error(f"{name}: frames are {h}x{w}, larger than the model's {mh}x{mw}; "
                            f"resize them instead of padding, or export a model for this size "
                            f"(`Flownet2_pth2onnx.py --height {fit_h} --width {fit_w}`)")
    return InputPadder(size, model_size, mode)


def check_size_mode(mode):
    if mode not in SIZE_MODES:
        raise Flownet2Error(f"unknown resize mode {mode!r} (choose from {', '.join(SIZE_MODES)})")


class InputPadder:
    """Bring an (h, w) frame to the model size and a model-size flow back (after RAFT's InputPadder).

    mode "pad": zeros at the bottom and right (the Ascend guide); "resize": bilinear resize (the
    official Caffe release), where the flow coming back is rescaled: u by w/W, v by h/H.
    """

    def __init__(self, size, target, mode="pad"):
        check_size_mode(mode)
        self.h, self.w = size
        self.H, self.W = target
        if mode == "pad" and (self.H < self.h or self.W < self.w):
            raise ValueError(f"cannot pad {size} down to {target}")
        self.mode = mode

    def pad(self, x, out=None):
        """(C, h, w) -> (C, H, W); writes into `out` when given (a slot of a batch array).

        `x` may already be `out`'s top-left corner (pad mode): then only the border is zeroed.
        """
        if out is None:
            out = np.empty((x.shape[0], self.H, self.W), np.float32)
        if self.mode == "resize":
            out[...] = resize_bilinear(x, self.H, self.W)
            return out
        out[:, self.h:, :] = 0
        out[:, :self.h, self.w:] = 0
        corner = out[:, :self.h, :self.w]
        if not np.shares_memory(corner, x):
            corner[...] = x
        return out

    def corner(self, out):
        """The view of a model-size array that holds the frame in pad mode (None in resize mode)."""
        return out[:, :self.h, :self.w] if self.mode == "pad" else None

    def unpad(self, flow, size=None):
        """(2, H, W) model-size flow -> (2, h, w) flow in original pixels, or at `size` (height,
        width) in that size's pixels: one resize from what the model saw, u and v scaled with it."""
        height, width = size or (self.h, self.w)
        if self.mode == "pad":
            flow = flow[:, :self.h, :self.w]
            if (height, width) == (self.h, self.w):
                return flow
        seen_h, seen_w = flow.shape[1:]  # the frame as the model saw it: its padded corner, or resized
        out = resize_bilinear(flow, height, width)
        out[0] *= width / seen_w
        out[1] *= height / seen_h
        return out

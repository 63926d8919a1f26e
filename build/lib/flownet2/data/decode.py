"""The one frame reader: any common image file to (height, width, 3) RGB at its full range, in
display orientation; a file it cannot map faithfully is refused in one line, never guessed.

    8-bit   1-bit, grey (L), palette (P, with or without transparency), RGB, CMYK, YCbCr, and each of
            these with alpha (LA, PA, RGBA): uint8 RGB. Alpha is dropped, never composited: a
            transparent pixel keeps the colour stored under it. CMYK: R = (255 - C)(255 - K) / 255.
    16-bit  grey (I;16, I;16B, I;16L) and RGB / RGBA / grey+alpha PNG and TIFF: float32 RGB on the
            8-bit scale, value / 257 (65535 -> 255), so the model sees all 16 bits. A 32-bit integer
            image (I) is read the same way when every value is within 0..65535.
    refused floating point (F), 32-bit integers outside 0..65535, and any other mode.

EXIF orientation (JPEG, TIFF, WebP, PNG's eXIf) is applied, as OpenCV's imread and FFmpeg's tools
show the picture; a value outside 1..8 counts as 1, as they do.
"""
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import Flownet2Error

SIXTEEN_BIT_STEP = 257  # 65535 / 255: a 16-bit value v is the 8-bit value v / 257
ORIENTATION_TAG = 0x0112
_EIGHT_BIT = {"1": "RGB", "L": "RGB", "P": "RGBA", "PA": "RGBA", "RGB": "RGB", "RGBX": "RGB",
              "CMYK": "RGB", "YCbCr": "RGB", "LA": "RGBA", "RGBA": "RGBA"}  # mode -> what to convert to
_SIXTEEN_BIT_GREY = ("I;16", "I;16B", "I;16L", "I;16N")
# 16 bits per channel as PNG and TIFF store them ('RGB;16B'); not BMP's packed 5-6-5 'BGR;16'
_SIXTEEN_PER_CHANNEL = re.compile(r";16[BLN]$")
ROTATED = (5, 6, 7, 8)  # orientations whose display size swaps height and width


@dataclass(frozen=True)
class FrameHeader:
    size: tuple  # (height, width) as displayed
    orientation: int  # EXIF orientation, 1 = as stored


def open_image(path):
    """PIL's image, lazily (header only); a file PIL cannot open is refused in one line."""
    try:
        return Image.open(path)
    except (OSError, ValueError) as e:
        raise Flownet2Error(f"{path}: cannot read image ({e})") from None


def _orientation(im):
    # PNG keeps EXIF in an eXIf chunk before the pixels; getexif() would decode the whole image to
    # look for one after them, so only the header's is read
    if im.format == "PNG":
        exif = Image.Exif()
        if im.info.get("exif"):
            exif.load(im.info["exif"])
    else:
        exif = im.getexif()
    value = exif.get(ORIENTATION_TAG, 1)
    return value if value in range(1, 9) else 1


def header(path):
    """FrameHeader from the file's header, without decoding the pixels."""
    with open_image(path) as im:
        orientation = _orientation(im)
        h, w = im.height, im.width
    return FrameHeader((w, h) if orientation in ROTATED else (h, w), orientation)


def orient(pixels, orientation):
    """(H, W, ...) as stored -> as displayed, for EXIF orientation 1..8 (a view, no copy)."""
    flips = {1: pixels, 2: pixels[:, ::-1], 3: pixels[::-1, ::-1], 4: pixels[::-1]}
    if orientation in flips:
        return flips[orientation]
    turned = pixels.swapaxes(0, 1)  # 5: the main diagonal; 6..8 are it flipped one way or both
    return {5: turned, 6: turned[:, ::-1], 7: turned[::-1, ::-1], 8: turned[::-1]}[orientation]


def rotate(pixels, degrees):
    """(H, W, ...) turned counter-clockwise by a multiple of 90 degrees (a video's display matrix)."""
    return np.rot90(pixels, (degrees // 90) % 4)


def read_frame(path):
    """(height, width, 3) RGB as displayed: uint8 from an 8-bit file, float32 (0..255) from a 16-bit one."""
    with open_image(path) as im:
        orientation = _orientation(im)
        try:
            pixels = _pixels(path, im)
        except (OSError, ValueError) as e:
            raise Flownet2Error(f"{path}: cannot decode image ({e})") from None
    return np.ascontiguousarray(orient(pixels, orientation))


def from_pil(im, *, name="image"):
    """A PIL image opened by your own code, read as read_frame reads a file (EXIF orientation applied;
    a 16-bit colour PNG needs its file, which Pillow keeps as im.filename)."""
    orientation = _orientation(im)
    try:
        pixels = _pixels(getattr(im, "filename", "") or name, im)
    except (OSError, ValueError) as e:
        raise Flownet2Error(f"{name}: cannot decode image ({e})") from None
    return np.ascontiguousarray(orient(pixels, orientation))


def _rawmode(im):
    """How the file stores its pixels (PNG: 'RGB;16B'), from the first tile, before decoding."""
    args = im.tile[0].args if im.tile else ""
    return next((a for a in (args if isinstance(args, tuple) else (args,)) if isinstance(a, str)), "")


def _pixels(path, im):
    if im.mode in ("RGB", "RGBA", "LA") and _SIXTEEN_PER_CHANNEL.search(_rawmode(im)):
        return _sixteen_bit_colour(path, im.size)  # Pillow would keep only the high byte
    if im.mode in _SIXTEEN_BIT_GREY:
        return _grey(np.asarray(im).astype(np.float32) / np.float32(SIXTEEN_BIT_STEP))
    if im.mode == "I":
        values = np.asarray(im)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise Flownet2Error(f"{path}: 32-bit integer image with values {values.min()}..{values.max()}, "
                                "outside 16 bits; convert it to 8 or 16 bits first")
        return _grey(values.astype(np.float32) / np.float32(SIXTEEN_BIT_STEP))
    if im.mode not in _EIGHT_BIT:
        raise Flownet2Error(f"{path}: image mode {im.mode} is not read (8- or 16-bit grey, palette, RGB, "
                            "CMYK, with or without alpha); convert it first")
    rgb = np.asarray(im.convert(_EIGHT_BIT[im.mode]))
    return rgb[:, :, :3]  # alpha dropped


def _grey(values):
    return np.repeat(values[:, :, None], 3, axis=2)


def _sixteen_bit_colour(path, size):
    import cv2  # Pillow has no 16-bit colour mode; OpenCV keeps all 16 bits

    data = np.fromfile(path, np.uint8)
    pixels = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16 or pixels.shape[1::-1] != size:
        raise Flownet2Error(f"{path}: cannot decode this 16-bit colour image")
    if pixels.ndim == 2 or pixels.shape[2] <= 2:
        rgb = _grey(pixels if pixels.ndim == 2 else pixels[:, :, 0])
    else:
        rgb = pixels[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    return rgb.astype(np.float32) / np.float32(SIXTEEN_BIT_STEP)


def to_uint8(frame):
    """A frame as uint8 for pictures and JPEG frames: rounded to the nearest 8-bit value."""
    if frame.dtype == np.uint8:
        return frame
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)

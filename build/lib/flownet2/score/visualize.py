"""Pictures of flow people can read without a manual: the Middlebury colour wheel, labelled panels
(frame | predicted flow | ground truth | error), a small wheel legend and an error scale.

Colour coding (Baker et al., "A Database and Evaluation Methodology for Optical Flow"): hue is the
direction (+u, rightwards, is red), saturation the magnitude relative to a radius; beyond the
radius the colour is darkened to 75%. Unknown flow is black. The panels are drawn unchanged at the
top of the picture; a caption strip underneath names each one and carries its legend.
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..data.flo import unknown_mask
from ..model.provenance import is_stand_in

# hue segments of the wheel, as in the Middlebury code: red-yellow, yellow-green, green-cyan,
# cyan-blue, blue-magenta, magenta-red; their lengths follow perceptual spacing
_SEGMENTS = (15, 6, 4, 11, 13, 6)
ERROR_SCALE_PX = 10.0  # the error map saturates (white) at 10 px
UNKNOWN_ERROR_RGB = (0, 0, 96)  # dark blue where the ground truth is unknown
CAPTION_RGB = (24, 24, 24)  # the caption strip under the panels
TEXT_RGB = (235, 235, 235)
STAND_IN_RGB = (255, 72, 48)  # the predicted panel's caption when the weights are stand-ins
STAND_IN_CAPTION = "predicted: STAND-IN weights"


def _ramp(n):
    return np.floor(255 * np.arange(n) / n)


def colour_wheel():
    """(55, 3) float array of the wheel's colours in [0, 255]."""
    ry, yg, gc, cb, bm, mr = _SEGMENTS
    full, none = np.full, np.zeros
    parts = [
        (full(ry, 255.0), _ramp(ry), none(ry)),
        (255 - _ramp(yg), full(yg, 255.0), none(yg)),
        (none(gc), full(gc, 255.0), _ramp(gc)),
        (none(cb), 255 - _ramp(cb), full(cb, 255.0)),
        (_ramp(bm), none(bm), full(bm, 255.0)),
        (full(mr, 255.0), none(mr), 255 - _ramp(mr)),
    ]
    return np.concatenate([np.stack(p, axis=1) for p in parts])


def flow_to_color(flow, radius):
    """(H, W, 2) flow -> (H, W, 3) uint8; a magnitude of `radius` is fully saturated."""
    wheel = (colour_wheel() / 255).astype(np.float32)
    ncols = len(wheel)
    unknown = unknown_mask(flow)
    u = np.where(unknown, 0, flow[..., 0]).astype(np.float32) / np.float32(radius)
    v = np.where(unknown, 0, flow[..., 1]).astype(np.float32) / np.float32(radius)
    rad = np.sqrt(u * u + v * v)
    angle = np.arctan2(-v, -u) / np.float32(np.pi)  # in [-1, 1]; -1 (and 1) is +u
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(np.intp)
    k1 = (k0 + 1) % ncols
    f = (fk - k0)[..., None]
    col = (1 - f) * wheel[k0] + f * wheel[k1]
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * np.float32(0.75))
    col[unknown] = 0
    return np.floor(255 * col).astype(np.uint8)


def flow_radius(flow):
    """The largest known magnitude of `flow` (at least a small epsilon): the wheel's radius."""
    known = ~unknown_mask(flow)
    mag = np.sqrt(flow[..., 0] ** 2 + flow[..., 1] ** 2)[known]
    return max(float(mag.max()) if mag.size else 0.0, 1e-3)


def _error_ramp(t):
    """[0, 1] -> black-red-yellow-white uint8 colours."""
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], -1)
    return np.floor(255 * rgb).astype(np.uint8)


def error_to_color(pred, gt, scale=ERROR_SCALE_PX):
    """Per-pixel EPE on a black-red-yellow-white ramp, saturating at `scale` px; unknown: dark blue."""
    epe = np.sqrt(((pred.astype(np.float64) - gt) ** 2).sum(axis=-1))
    out = _error_ramp(np.clip(np.nan_to_num(epe / scale, nan=1.0), 0, 1))
    out[unknown_mask(gt)] = UNKNOWN_ERROR_RGB
    return out


def wheel_legend(diameter):
    """(d, d, 3) uint8: the colour wheel as a disc (rim = the radius), caption colour outside it."""
    r = diameter / 2
    # pixel centres measured from the disc's centre, in units of the radius (+x right, +y down)
    c = (np.arange(diameter) + 0.5 - r) / r
    flow = np.stack(np.meshgrid(c, c), axis=-1).astype(np.float32)
    out = flow_to_color(flow, 1.0)
    out[np.hypot(flow[..., 0], flow[..., 1]) > 1] = CAPTION_RGB
    return out


def error_legend(height, width):
    """(height, width, 3) uint8: the error ramp left (0 px) to right (the scale and beyond)."""
    t = (np.arange(width) + 0.5) / width
    return np.broadcast_to(_error_ramp(t)[None], (height, width, 3)).copy()


def caption_height(panel_height):
    """Height of the caption strip under panels of this height (readable, never dominant)."""
    return int(min(72, max(28, panel_height // 6)))


def _font(px):
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _caption(width, height, label, legend=None, note="", colour=TEXT_RGB):
    """One panel's caption: `label` (in `colour`, and `note`) on the left, a legend picture on the right."""
    strip = Image.new("RGB", (width, height), CAPTION_RGB)
    draw = ImageDraw.Draw(strip)
    font = _font(max(10, height // 3))
    pad = max(2, height // 12)
    draw.text((pad, pad), label, fill=colour, font=font)
    if note:
        draw.text((pad, height // 2), note, fill=TEXT_RGB, font=font)
    if legend is not None and legend.shape[1] + 2 * pad <= width // 2:
        strip.paste(Image.fromarray(legend), (width - legend.shape[1] - pad, (height - legend.shape[0]) // 2))
    return np.asarray(strip)


def _flow_caption(width, height, label, radius, colour=TEXT_RGB):
    wheel = wheel_legend(height - 2 * max(2, height // 12))
    return _caption(width, height, label, wheel, f"wheel rim = {radius:.3g} px", colour)


def side_by_side(frame, pred, gt=None, *, radius=None, error_scale=ERROR_SCALE_PX, weights=None):
    """One labelled picture: frame | predicted flow [| ground truth | error], panels on top, unchanged.

    `radius`: the wheel's radius in px; give one for a whole sequence so colours compare across
    pictures (default: this pair's largest ground-truth magnitude, else the prediction's).
    `weights`: the weights label of the model that predicted; stand-in weights are named in the
    predicted panel's caption, in red, since a picture travels without the terminal's banner.
    Returns (H + caption_height(H), n*W, 3) uint8 with n = 2 without `gt`, 4 with it.
    """
    if radius is None:
        radius = flow_radius(pred if gt is None else gt)
    h, w = frame.shape[:2]
    ch = caption_height(h)
    panels = [frame, flow_to_color(pred, radius)]
    label, colour = (STAND_IN_CAPTION, STAND_IN_RGB) if is_stand_in(weights) else ("predicted flow", TEXT_RGB)
    captions = [_caption(w, ch, "frame"), _flow_caption(w, ch, label, radius, colour)]
    if gt is not None:
        panels += [flow_to_color(gt, radius), error_to_color(pred, gt, error_scale)]
        bar = error_legend(max(4, ch // 4), max(8, w // 4))
        captions += [_flow_caption(w, ch, "ground truth", radius),
                     _caption(w, ch, "error", bar, f"black 0 .. white {error_scale:g}+ px")]
    return np.concatenate([np.concatenate(panels, axis=1), np.concatenate(captions, axis=1)], axis=0)

"""The Middlebury colour coding at known directions, and the side-by-side picture."""
import numpy as np
from PIL import Image

from flownet2.fileio import save_png
from flownet2.score.visualize import (
    CAPTION_RGB,
    caption_height,
    colour_wheel,
    error_legend,
    flow_radius,
    flow_to_color,
    STAND_IN_RGB,
    side_by_side,
    wheel_legend,
)


def _one(u, v, radius=1.0):
    return tuple(int(c) for c in flow_to_color(np.array([[[u, v]]], np.float32), radius)[0, 0])


def test_wheel_has_the_55_middlebury_colours():
    wheel = colour_wheel()
    assert wheel.shape == (55, 3)
    assert tuple(wheel[0]) == (255, 0, 0)  # red
    assert tuple(wheel[15]) == (255, 255, 0)  # yellow starts the yellow-green segment
    assert tuple(wheel[21]) == (0, 255, 0)  # green
    assert tuple(wheel[25]) == (0, 255, 255)  # cyan
    assert tuple(wheel[36]) == (0, 0, 255)  # blue
    assert tuple(wheel[49]) == (255, 0, 255)  # magenta


def test_known_directions_and_saturation():
    assert _one(0, 0) == (255, 255, 255)  # no motion is white
    assert _one(1, 0) == (255, 0, 0)  # rightwards at full radius: red
    # leftwards: angle 0 -> index 27 of the wheel, (0, 255 - floor(255*2/11), 255)
    assert _one(-1, 0) == (0, 255 - int(255 * 2 / 11), 255)
    assert _one(0.5, 0) == (255, 127, 127)  # half radius: half-way to white
    assert _one(2, 0) == (191, 0, 0)  # beyond the radius: darkened to 75%
    assert _one(2e10, 0) == (0, 0, 0)  # unknown flow is black
    assert _one(3, 0, radius=3) == _one(1, 0)  # the radius scales everything


def test_side_by_side_layout(tmp_path):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    gt = rng.normal(0, 3, (6, 8, 2)).astype(np.float32)
    pic = side_by_side(frame, gt.copy(), gt)
    assert pic.shape == (6 + caption_height(6), 32, 3) and pic.dtype == np.uint8
    assert np.array_equal(pic[:6, :8], frame)  # panels on top, unchanged; captions underneath
    assert np.array_equal(pic[:6, 8:16], pic[:6, 16:24])  # perfect prediction looks like gt
    assert not pic[:6, 24:].any()  # and has a black error map
    # the default per-pair radius is the largest gt magnitude: that pixel is fully saturated
    assert flow_radius(gt) == np.sqrt((gt ** 2).sum(-1)).max()
    save_png(tmp_path / "p.png", pic)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), pic)


def test_without_ground_truth_two_panels_and_a_given_radius():
    frame = np.zeros((300, 400, 3), np.uint8)
    flow = np.zeros((300, 400, 2), np.float32)
    flow[..., 0] = 5  # 5 px rightwards everywhere
    pic = side_by_side(frame, flow, radius=10)
    assert pic.shape == (300 + caption_height(300), 800, 3)
    assert tuple(pic[0, 400]) == _one(0.5, 0)  # half the given radius: half-saturated red


def test_captions_carry_labels_a_wheel_legend_and_an_error_scale():
    h, w = 436, 1024
    ch = caption_height(h)
    gt = np.ones((h, w, 2), np.float32)
    pic = side_by_side(np.zeros((h, w, 3), np.uint8), gt, gt)
    captions = pic[h:]
    for k in range(4):  # every panel's caption has text (pixels brighter than the strip) at its left
        assert (captions[:, k * w:k * w + w // 4] > 200).any()
    # the wheel legend sits at the right end of the two flow captions: a disc in wheel colours
    legend = wheel_legend(ch - 2 * max(2, ch // 12))
    d = legend.shape[0]
    for k in (1, 2):
        right = captions[:, (k + 1) * w - d - 20:(k + 1) * w]
        assert any(np.array_equal(right[r:r + d, c:c + d], legend)
                   for r in range(ch - d + 1) for c in range(right.shape[1] - d + 1))
    # the error scale, at the right of the last caption, is the error ramp from 0 px to the scale
    bar = error_legend(max(4, ch // 4), max(8, w // 4))
    (bh, bw), right = bar.shape[:2], captions[:, 4 * w - bar.shape[1] - 20:]
    assert any(np.array_equal(right[r:r + bh, c:c + bw], bar)
               for r in range(ch - bh + 1) for c in range(right.shape[1] - bw + 1))


def test_error_scale_by_hand():
    bar = error_legend(8, 100)  # pixel k shows an error of (k + 0.5) / 100 of the scale
    # t = 0.005: red 3t; t = 0.505: red full, green 3t - 1; t = 0.995: white but for blue 3t - 2
    assert tuple(bar[0, 0]) == (int(255 * 0.015), 0, 0)
    assert tuple(bar[3, 50]) == (255, int(255 * 0.515), 0)
    assert tuple(bar[7, 99]) == (255, 255, int(255 * 0.985))


def test_wheel_legend_directions():
    legend = wheel_legend(41)
    c = 20
    assert tuple(legend[c, c]) == (255, 255, 255)  # the centre: no motion
    # pixel (row, col) stands for the flow ((col + 0.5 - 20.5) / 20.5, (row + 0.5 - 20.5) / 20.5)
    assert tuple(legend[c, 40]) == _one(20 / 20.5, 0)  # right edge: +u, red
    assert tuple(legend[40, c]) == _one(0, 20 / 20.5)  # bottom edge: +v
    assert tuple(legend[c, 0]) == _one(-20 / 20.5, 0)  # left edge: -u
    assert tuple(legend[0, 0]) == CAPTION_RGB  # outside the disc: the caption strip's colour


def test_stand_in_weights_are_named_in_red_under_the_predicted_panel():
    """A picture travels without the terminal's banner: stand-in weights say so in the caption."""
    h, w = 96, 160
    frame = np.zeros((h, w, 3), np.uint8)
    flow = np.ones((h, w, 2), np.float32)
    red = lambda pic: np.count_nonzero((np.abs(pic.astype(int) - STAND_IN_RGB).sum(-1) < 60))
    plain = side_by_side(frame, flow, flow, weights="checkpoint FlowNet2_checkpoint.pth.tar tensors:0123456789abcdef")
    stand_in = side_by_side(frame, flow, flow, weights="stand-in:seed=0 tensors:0123456789abcdef")
    unknown = side_by_side(frame, flow, flow)
    assert np.array_equal(plain, unknown)  # real or unknown weights: the usual caption
    assert np.array_equal(stand_in[:h], plain[:h])  # the panels themselves are unchanged
    changed = (stand_in[h:] != plain[h:]).any(-1)
    assert changed[:, w:2 * w].any() and not changed[:, :w].any() and not changed[:, 2 * w:].any()
    assert red(stand_in[h:, w:2 * w]) > red(plain[h:, w:2 * w]) + 20  # red text under the predicted panel

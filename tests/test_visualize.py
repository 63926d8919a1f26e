"""The Middlebury colour coding at known directions, and the side-by-side picture."""
import numpy as np
from PIL import Image

from flownet2.visualize import colour_wheel, flow_radius, flow_to_color, save_png, side_by_side


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
    assert pic.shape == (6, 32, 3) and pic.dtype == np.uint8
    assert np.array_equal(pic[:, :8], frame)
    assert np.array_equal(pic[:, 8:16], pic[:, 16:24])  # perfect prediction looks like gt
    assert not pic[:, 24:].any()  # and has a black error map
    # the fixed per-pair radius is the largest gt magnitude: that pixel is fully saturated
    assert flow_radius(gt) == np.sqrt((gt ** 2).sum(-1)).max()
    save_png(tmp_path / "p.png", pic)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "p.png")), pic)

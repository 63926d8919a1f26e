"""The synthetic Sintel-layout generator: layout, determinism, and that its flows are true."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from flownet2.data import sintel
from flownet2.data.flo import read_flo
from flownet2.data.synthetic import make_synthetic_sintel
from flownet2.errors import Flownet2Error

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_synthetic_sintel(tmp_path_factory.mktemp("syn"), scenes=2, pairs=2,
                                 height=96, width=160, seed=0)


def _listing(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


def test_layout_is_sintel(dataset):
    assert os.path.basename(dataset) == "training"
    expected = []
    for scene in ("synthetic_1", "synthetic_2"):
        for n in (1, 2, 3):
            expected += [f"clean/{scene}/frame_{n:04d}.png", f"final/{scene}/frame_{n:04d}.png"]
        for n in (1, 2):
            expected += [f"flow/{scene}/frame_{n:04d}.flo", f"occlusions/{scene}/frame_{n:04d}.png",
                         f"invalid/{scene}/frame_{n:04d}.png"]
    assert _listing(dataset) == sorted(os.path.join(*e.split("/")) for e in expected)
    for pass_name in ("clean", "final"):
        pairs, skipped = sintel.find_pairs(dataset, pass_name)
        assert len(pairs) == 4 and not skipped
        assert all(p.occlusions and p.invalid for p in pairs)
    frame = Image.open(os.path.join(dataset, "clean", "synthetic_1", "frame_0001.png"))
    assert frame.mode == "RGB" and frame.size == (160, 96)
    assert read_flo(os.path.join(dataset, "flow", "synthetic_1", "frame_0001.flo")).shape == (96, 160, 2)
    assert inspect.signature(make_synthetic_sintel).parameters["height"].default == 436
    assert inspect.signature(make_synthetic_sintel).parameters["width"].default == 1024


def test_deterministic_by_seed(dataset, tmp_path):
    again = make_synthetic_sintel(tmp_path / "a", scenes=2, pairs=2, height=96, width=160, seed=0)
    for rel in _listing(dataset):
        with open(os.path.join(dataset, rel), "rb") as f1, open(os.path.join(again, rel), "rb") as f2:
            assert f1.read() == f2.read(), rel
    other = make_synthetic_sintel(tmp_path / "b", scenes=1, pairs=1, height=96, width=160, seed=1)
    rel = os.path.join("flow", "synthetic_1", "frame_0001.flo")
    assert not np.array_equal(read_flo(os.path.join(other, rel)), read_flo(os.path.join(dataset, rel)))


def _bilinear(img, x, y):
    """Independent sampler for the check below: img (H, W, C) at float points, edges clamped."""
    h, w = img.shape[:2]
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.minimum(np.floor(x).astype(int), w - 2), np.minimum(np.floor(y).astype(int), h - 2)
    a, b = (x - x0)[..., None], (y - y0)[..., None]
    return ((1 - a) * (1 - b) * img[y0, x0] + a * (1 - b) * img[y0, x0 + 1]
            + (1 - a) * b * img[y0 + 1, x0] + a * b * img[y0 + 1, x0 + 1])


@pytest.mark.parametrize("scene,n", [("synthetic_1", 1), ("synthetic_1", 2), ("synthetic_2", 1)])
def test_flow_moves_frame_n_onto_frame_n_plus_1(dataset, scene, n):
    def load(folder, k, ext=".png"):
        return os.path.join(dataset, folder, scene, f"frame_{k:04d}{ext}")

    img1 = np.asarray(Image.open(load("clean", n))).astype(np.float64)
    img2 = np.asarray(Image.open(load("clean", n + 1))).astype(np.float64)
    flow = read_flo(load("flow", n, ".flo"))
    occ = np.asarray(Image.open(load("occlusions", n))) == 255
    mag = np.hypot(flow[..., 0], flow[..., 1])
    assert 1.0 < mag.mean() and mag.max() < 16  # moderate: a few px up to ~15
    assert 0.001 < occ.mean() < 0.3
    y, x = np.mgrid[0:96, 0:160]
    warped = _bilinear(img2, x + flow[..., 0], y + flow[..., 1])
    err_true = np.abs(warped - img1).mean(-1)
    err_still = np.abs(img2 - img1).mean(-1)
    # the true flow explains the visible pixels far better than no motion does; the
    # remainder is bilinear interpolation of a texture with 6 px waves and 8-bit rounding
    assert err_true[~occ].mean() < 0.2 * err_still[~occ].mean()
    # pixels marked occluded are not explained by their flow
    assert err_true[occ].mean() > 3 * err_true[~occ].mean()
    # smooth background: neighbouring flow vectors differ by well under a pixel almost everywhere
    step = np.abs(np.diff(flow, axis=1)).max(-1)
    assert np.mean(step < 0.1) > 0.9


def test_final_pass_differs_but_shares_the_flow(dataset):
    clean = np.asarray(Image.open(os.path.join(dataset, "clean", "synthetic_2", "frame_0002.png")))
    final = np.asarray(Image.open(os.path.join(dataset, "final", "synthetic_2", "frame_0002.png")))
    assert clean.shape == final.shape and np.abs(clean.astype(int) - final).mean() > 2


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "flownet2.data.synthetic", "--out", str(tmp_path / "d"),
                          "--scenes", "1", "--pairs", "1", "--height", "32", "--width", "48",
                          "--seed", "3"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(tmp_path / "d" / "training")
    assert len(sintel.find_pairs(out.stdout.strip(), "final")[0]) == 1
    bad = subprocess.run([sys.executable, "-m", "flownet2.data.synthetic", "--out", str(tmp_path / "e"),
                          "--pairs", "0"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr


def test_library_refuses_an_empty_dataset_in_its_own_words(tmp_path):
    with pytest.raises(Flownet2Error) as e:
        make_synthetic_sintel(tmp_path, scenes=2, pairs=0, height=32, width=48)
    assert "0 pairs" in str(e.value) and "--" not in str(e.value)  # no command-line flag: any caller may see it
    assert not (tmp_path / "training").exists()
    params = inspect.signature(make_synthetic_sintel).parameters
    assert all(params[name].kind is inspect.Parameter.KEYWORD_ONLY
               for name in ("scenes", "pairs", "height", "width", "seed"))

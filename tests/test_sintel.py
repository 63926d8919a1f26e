"""Finding Sintel pairs by name, reading frames, normalisation and the pad / resize protocols."""
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sintel_mini import MINI, needs_mini

from flownet2.data import images, sintel
from flownet2.data.flo import write_flo
from flownet2.errors import Flownet2Error
from flownet2.sizes import model_size


@needs_mini
@pytest.mark.parametrize("pass_name", ["clean", "final"])
def test_real_sample_yields_its_five_pairs(pass_name):
    pairs, skipped = sintel.find_pairs(os.path.join(MINI, "training"), pass_name)
    assert skipped == []
    assert [(p.scene, p.frame) for p in pairs] == [
        ("alley_1", 1), ("alley_1", 2), ("alley_1", 3), ("cave_2", 2), ("market_5", 2)]
    root = os.path.abspath(os.path.join(MINI, "training"))
    p = pairs[3]
    assert p.image1 == os.path.join(root, pass_name, "cave_2", "frame_0002.png")
    assert p.image2 == os.path.join(root, pass_name, "cave_2", "frame_0003.png")
    assert p.flow == os.path.join(root, "flow", "cave_2", "frame_0002.flo")
    # masks exist only for frame 0002 of each scene in the sample
    assert [p.occlusions is not None for p in pairs] == [False, True, False, True, True]
    assert [p.invalid is not None for p in pairs] == [False, True, False, True, True]
    # the parent folder of training/ is accepted too
    again, _ = sintel.find_pairs(MINI, pass_name, ["market_5"])
    assert [(q.scene, q.frame) for q in again] == [("market_5", 2)]


def _tiny_layout(root, frames, flows, scene="s", size=(4, 6)):
    """A hand-built Sintel layout: PNG frames and zero flows with the given numbers."""
    for n in frames:
        path = root / "clean" / scene / f"frame_{n:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(size + (3,), n, np.uint8)).save(path)
    for n in flows:
        write_flo(root / "flow" / scene / f"frame_{n:04d}.flo", np.zeros(size + (2,), np.float32))


def test_pairs_by_name_never_by_position(tmp_path):
    # frames 7, 8 and 10, 11: flow 7 pairs (7, 8), flow 10 pairs (10, 11); flow 8 has no frame 9
    _tiny_layout(tmp_path, frames=[7, 8, 10, 11], flows=[8, 10, 7])
    pairs, skipped = sintel.find_pairs(tmp_path, "clean")
    assert [(p.frame, os.path.basename(p.image1), os.path.basename(p.image2)) for p in pairs] == [
        (7, "frame_0007.png", "frame_0008.png"), (10, "frame_0010.png", "frame_0011.png")]
    assert skipped == [os.path.join("clean", "s", "frame_0009.png")]
    msg = sintel.skipped_message(skipped)
    assert msg.startswith("1 frame file(s) missing") and "frame_0009.png" in msg


def test_skipped_message_counts_and_shows_first_few():
    msg = sintel.skipped_message([f"clean/a/frame_{n:04d}.png" for n in range(10)])
    assert msg.startswith("10 frame file(s)") and "frame_0002" in msg and "frame_0003" not in msg


def test_scene_filter_and_bad_arguments(tmp_path):
    _tiny_layout(tmp_path, frames=[1, 2], flows=[1], scene="b_scene")
    _tiny_layout(tmp_path, frames=[1, 2], flows=[1], scene="a_scene")
    pairs, _ = sintel.find_pairs(tmp_path, "clean")
    assert [p.scene for p in pairs] == ["a_scene", "b_scene"]  # scenes sorted
    pairs, _ = sintel.find_pairs(tmp_path, "clean", ["b_scene"])
    assert [p.scene for p in pairs] == ["b_scene"]
    with pytest.raises(Flownet2Error, match="no scene nope"):
        sintel.find_pairs(tmp_path, "clean", ["nope"])
    with pytest.raises(Flownet2Error, match="no final/ folder"):
        sintel.find_pairs(tmp_path, "final")
    with pytest.raises(Flownet2Error, match="unknown pass"):
        sintel.find_pairs(tmp_path, "albedo")
    with pytest.raises(Flownet2Error, match="no flow/ folder"):
        sintel.find_pairs(tmp_path / "clean", "clean")
    with pytest.raises(Flownet2Error, match="not found"):
        sintel.find_pairs(tmp_path / "absent", "clean")


def test_read_rgb_drops_alpha_and_expands_grey(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (3, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(images.read_rgb(tmp_path / "a.png"), rgba[..., :3])
    Image.fromarray(rgba[..., 0], "L").save(tmp_path / "g.png")
    grey = images.read_rgb(tmp_path / "g.png")
    assert grey.shape == (3, 5, 3) and (grey == rgba[..., :1]).all()
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(Flownet2Error, match="bad.png"):
        images.read_rgb(tmp_path / "bad.png")


def test_normalise_matches_per_pixel_loop():
    rng = np.random.default_rng(2)
    img1 = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    x1, x2 = images.normalise_pair(img1, img2)
    assert x1.shape == (3, 6, 9) and x1.dtype == np.float32
    for c in range(3):
        total = 0
        for img in (img1, img2):
            for y in range(6):
                for x in range(9):
                    total += int(img[y, x, c])
        mean = total / (2 * 6 * 9)
        for img, out in ((img1, x1), (img2, x2)):
            for y in range(6):
                for x in range(9):
                    assert out[c, y, x] == pytest.approx((int(img[y, x, c]) - mean) / 255, abs=1e-6)
    # both frames together have zero mean per channel
    assert np.allclose((x1.sum(axis=(1, 2)) + x2.sum(axis=(1, 2))), 0, atol=1e-4)


def test_model_size():
    assert model_size(436, 1024) == (448, 1024)
    assert model_size(1, 64) == (64, 64)
    assert model_size(65, 128) == (128, 128)


def test_pad_puts_zeros_bottom_right_and_unpad_crops():
    x = np.random.default_rng(3).normal(size=(3, 5, 7)).astype(np.float32)
    padder = images.InputPadder((5, 7), (64, 64), "pad")
    out = np.full((3, 64, 64), 9, np.float32)  # a dirty batch slot: pad must overwrite it all
    padder.pad(x, out=out)
    assert np.array_equal(out[:, :5, :7], x)
    assert not out[:, 5:, :].any() and not out[:, :, 7:].any()
    flow = np.random.default_rng(4).normal(size=(2, 64, 64)).astype(np.float32)
    assert np.array_equal(padder.unpad(flow), flow[:, :5, :7])


@pytest.mark.parametrize("src,dst", [((5, 7), (64, 64)), ((60, 100), (64, 128)), ((70, 40), (64, 64))])
def test_resize_matches_torch_bilinear(src, dst):
    x = np.random.default_rng(5).normal(size=(3,) + src).astype(np.float32)
    ours = images.resize_bilinear(x, *dst)
    ref = F.interpolate(torch.from_numpy(x)[None], size=dst, mode="bilinear",
                        align_corners=False)[0].numpy()
    assert ours.shape == (3,) + dst
    assert np.allclose(ours, ref, atol=1e-5)


def test_resize_unpad_rescales_a_constant_flow():
    # a model-size flow of (8, -4) px at 128x192 means (8 * 100/192, -4 * 60/128) px at 60x100
    padder = images.InputPadder((60, 100), (128, 192), "resize")
    flow = np.stack([np.full((128, 192), 8.0), np.full((128, 192), -4.0)]).astype(np.float32)
    back = padder.unpad(flow)
    assert back.shape == (2, 60, 100)
    assert np.allclose(back[0], 8 * 100 / 192) and np.allclose(back[1], -4 * 60 / 128)
    # the image path is a plain bilinear resize to the model size
    img = np.ones((3, 60, 100), np.float32)
    assert np.allclose(padder.pad(img), 1)


def test_unknown_mode_refused():
    with pytest.raises(Flownet2Error, match="unknown resize mode"):
        images.InputPadder((5, 5), (64, 64), "crop")

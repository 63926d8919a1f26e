"""Dataset-scale extraction: --step K pairs, --new-short / --new-size output sizes, and a full or
read-only output that stops a run (exit 3) which the same command resumes.

Independent references: the two-image run on frames i and i + K for a step; OpenCV's resize of the
model's own flow with u, v scaled by hand for an output size; a fraction rounded half up for the
size rule. The full disk is a real small tmpfs mounted by the test (root); where mounting is not
allowed, an ENOSPC injected at the write layer (the temporary file's creation) stands in for it.
"""
import errno
import json
import subprocess
from fractions import Fraction
from math import floor
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from test_collection import clip_frames, make_collection, outputs
from test_predict import (CountingSource, SlowSession, decoded_frames, encode_video, files_under, read_flo,
                          run_cli, tiny_model, write_frames)

from flownet2 import fileio
from flownet2.data.flow_formats import read_flow
from flownet2.runtime import collection, predict
from flownet2.sizes import OutputSize

av = pytest.importorskip("av")
GOOD = {"a/v1.mp4": 4, "a/v2.avi": 3, "b/v3.mkv": 4}  # video -> frames


def diff_model(path, size=(64, 128), batch=1):
    """A static ONNX model whose flow needs both frames: channels 0, 1 of x2 minus those of x1."""
    h, w = size
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, c, h, w]) for n, c in
          (("x1", 3), ("x2", 3), ("flow", 2))]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("starts", [0]), ("ends", [2]), ("axes", [1]))]
    nodes = [helper.make_node("Slice", ["x1", "starts", "ends", "axes"], ["s1"]),
             helper.make_node("Slice", ["x2", "starts", "ends", "axes"], ["s2"]),
             helper.make_node("Sub", ["s2", "s1"], ["flow"])]
    graph = helper.make_graph(nodes, "diff", io[:2], io[2:], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def smooth_field(size=(64, 128)):
    """A (2, H, W) flow of smooth waves within +-9 px (JPEG keeps it well)."""
    y, x = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    return np.stack([6 * np.sin(x / 17) + 3 * np.cos(y / 11), 5 * np.cos(x / 23) - 4 * np.sin(y / 9)]).astype(np.float32)


def hand_scaled(field, size):
    """The reference: OpenCV's bilinear resize of a (2, h, w) flow to `size`, u by W_out / w, v by H_out / h."""
    (h, w), (oh, ow) = field.shape[1:], size
    out = cv2.resize(np.ascontiguousarray(field.transpose(1, 2, 0)), (ow, oh), interpolation=cv2.INTER_LINEAR)
    return out * np.array([ow / w, oh / h], np.float32)


# ------------------------------------------------------------------------------------- sizes

def test_the_size_rule_rounds_the_long_side_half_up_and_never_enlarges_unless_asked():
    def by_fraction(h, w, short):  # denseflow / mmcv: round(long * short_new / short), halves up
        scaled = floor(Fraction(max(h, w) * short, min(h, w)) + Fraction(1, 2))
        return (short, scaled) if h <= w else (scaled, short)

    for h, w in [(436, 1024), (720, 1280), (1080, 1920), (240, 320), (1280, 720), (257, 514), (300, 301)]:
        assert OutputSize(new_short=256 if min(h, w) > 256 else 128).of((h, w)) == \
            by_fraction(h, w, 256 if min(h, w) > 256 else 128)
    assert OutputSize(new_short=256).of((720, 1280)) == (256, 455)  # 455.1
    assert OutputSize(new_short=2).of((4, 5)) == (2, 3)  # 2.5 rounds up, as int(x + 0.5)
    assert OutputSize(new_short=256).of((144, 176)) == (144, 176)  # never enlarged...
    assert OutputSize(new_short=256, enlarge=True).of((144, 176)) == (256, 313)  # ...unless asked
    assert OutputSize(new_size=(256, 340)).of((720, 1280)) == (256, 340)
    assert OutputSize().of((7, 9)) == (7, 9)


# -------------------------------------------------------------------------------------- step

def test_a_step_pair_is_the_two_image_run_on_those_frames(tmp_path, capsys):
    model = diff_model(tmp_path / "d.onnx")
    files = write_frames(tmp_path / "frames", clip_frames(6, 1))
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "frames", "--output", tmp_path / "s3",
                              "--step", "3"], capsys)
    assert code == 0, err
    assert "6 frames" in out and "3 pair(s), frames i and i+3" in out
    assert files_under(tmp_path / "s3") == [f"frame_{i:04d}.flo" for i in (1, 2, 3)]
    for i in range(3):
        single = tmp_path / f"pair{i}"
        assert run_cli(["--model", model, "--input", files[i], files[i + 3], "--output", single], capsys)[0] == 0
        flow = (tmp_path / "s3" / f"frame_{i + 1:04d}.flo").read_bytes()
        assert flow == (single / f"frame_{i + 1:04d}.flo").read_bytes()
        assert np.abs(read_flo(single / f"frame_{i + 1:04d}.flo")).max() > 0  # a flow that tells frames apart


def test_a_video_with_a_step_gives_n_minus_k_pairs_each_the_two_image_run(tmp_path, capsys):
    model = diff_model(tmp_path / "d.onnx")
    encode_video(tmp_path / "clip.mkv", clip_frames(7, 2), codec="ffv1")  # lossless: the frames as decoded
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "clip.mkv", "--output", tmp_path / "o",
                            "--step", "2", "--format", "jpg", "--rgb"], capsys)
    assert code == 0, err
    got = files_under(tmp_path / "o" / "clip")
    assert got == [f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in range(1, 6)] + \
        [f"img_{i:05d}.jpg" for i in range(1, 8)]
    frames = write_frames(tmp_path / "decoded", decoded_frames(tmp_path / "clip.mkv"))
    for i in (0, 4):
        single = tmp_path / f"pair{i}"
        run_cli(["--model", model, "--input", frames[i], frames[i + 2], "--output", single, "--format", "jpg"],
                capsys)
        for axis in "xy":
            assert (tmp_path / "o" / "clip" / f"flow_{axis}_{i + 1:05d}.jpg").read_bytes() == \
                (single / f"flow_{axis}_00001.jpg").read_bytes()


def test_too_few_frames_for_the_step_are_refused_in_one_line(tmp_path, capsys):
    model = diff_model(tmp_path / "d.onnx")
    write_frames(tmp_path / "frames", clip_frames(3, 0))
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "frames", "--output", tmp_path / "o",
                            "--step", "3"], capsys)
    assert code == 2 and "3 frame(s), a step of 3 needs at least 4" in err and not (tmp_path / "o").exists()


def test_a_long_step_holds_only_its_frames(tmp_path):
    session = SlowSession((64, 64))
    source = CountingSource(40, (64, 64), session)
    source.step = 5
    result = predict.predict(session, source, output=tmp_path, size_mode="pad", progress=False)
    assert result.pairs == 35 and session.runs == 35
    # the five frames before each pair's second, then as for a step of 1 (test_predict)
    assert source.ahead <= 2 * predict.QUEUED_BATCHES + 4 + 5


# ---------------------------------------------------------------------------- output sizes

@pytest.mark.parametrize("flow_at", ["output", "source"])
@pytest.mark.parametrize("mode, source, flag, out", [
    ("resize", (96, 160), ["--new-size", "80x48"], (48, 80)),  # the model saw the whole frame resized
    ("pad", (50, 100), ["--new-short", "40"], (40, 80)),  # the model saw it in its top-left corner
])
def test_the_flow_at_an_output_size_is_the_models_resized_with_u_v_scaled(tmp_path, capsys, mode, source, flag, out,
                                                                           flow_at):
    field = smooth_field()
    model = tiny_model(tmp_path / "f.onnx", size=(64, 128), field=field)
    write_frames(tmp_path / "frames", clip_frames(3, 0, size=source))
    code, out_text, err = run_cli(["--model", model, "--input", tmp_path / "frames", "--output", tmp_path / "o",
                                   "--size-mode", mode, "--png", "--flow-at", flow_at, *flag], capsys)
    assert code == 0, err
    assert f"written at {out[0]}x{out[1]}" in out_text
    given = out if flow_at == "output" else source  # the frames' size as the model was given them
    seen = field if mode == "resize" else field[:, :given[0], :given[1]]
    expected = hand_scaled(seen, out)
    for i in (1, 2):
        flow = read_flo(tmp_path / "o" / f"frame_{i:04d}.flo")
        assert flow.shape == out + (2,)
        np.testing.assert_allclose(flow, expected, atol=1e-4)
        assert np.asarray(Image.open(tmp_path / "o" / f"frame_{i:04d}.png")).shape[1] == 2 * out[1]


@pytest.mark.parametrize("fmt, tolerance", [("flo", 1e-4), ("npy", 0.01), ("kitti", 1 / 64), ("jpg", 0.6)])
def test_every_format_writes_flow_and_frames_at_the_output_size(tmp_path, capsys, fmt, tolerance):
    field = smooth_field()
    model = tiny_model(tmp_path / "f.onnx", size=(64, 128), field=field)
    encode_video(tmp_path / "clip.mp4", clip_frames(3, 0, size=(96, 160)), qp="0")
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "clip.mp4", "--output", tmp_path / "o",
                            "--format", fmt, "--rgb", "--new-short", "48", "--video", tmp_path / "v.mp4"], capsys)
    assert code == 0, err
    names = {"flo": "frame_0001.flo", "npy": "frame_0001.npy", "kitti": "frame_0001.png", "jpg": "flow_x_00001.jpg"}
    flow, _ = read_flow(tmp_path / "o" / "clip" / names[fmt])
    assert flow.shape == (48, 80, 2)
    assert np.abs(flow - hand_scaled(field, (48, 80))).max() <= tolerance
    frames = sorted((tmp_path / "o" / "clip").glob("img_*.jpg"))
    assert len(frames) == 3 and all(cv2.imread(str(f)).shape == (48, 80, 3) for f in frames)
    assert decoded_frames(tmp_path / "v.mp4")[0].shape[1] == 2 * 80


def test_must_show_jpg_rgb_step_2_new_short_128_on_real_frames(tmp_path, capsys):
    """Real Sintel-size clips (436x1024, or random frames without the sample): N img files, N - 2 flow
    pairs, every file with short side 128 (long side 1024 * 128 / 436 = 300.6 -> 301)."""
    model = tiny_model(tmp_path / "m.onnx", size=(64, 128))
    for k, n in enumerate((4, 5)):
        (tmp_path / "clips").mkdir(exist_ok=True)
        encode_video(tmp_path / "clips" / f"c{k}.mp4", clip_frames(n, k, size=(436, 1024)))
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "clips", "--output", tmp_path / "o",
                              "--format", "jpg", "--rgb", "--step", "2", "--new-short", "128"], capsys)
    assert code == 0, err
    for k, n in enumerate((4, 5)):
        folder = tmp_path / "o" / f"c{k}"
        assert len(list(folder.glob("img_*.jpg"))) == n
        assert len(list(folder.glob("flow_x_*.jpg"))) == len(list(folder.glob("flow_y_*.jpg"))) == n - 2
        assert {cv2.imread(str(f)).shape[:2] for f in folder.glob("*.jpg")} == {(128, 301)}
        marker = json.loads((folder / collection.MARKER).read_text())
        assert marker["step"] == 2 and marker["new_short"] == 128 and marker["pairs"] == n - 2


def test_a_rerun_with_another_step_or_size_is_refused_and_old_settings_files_still_match(tmp_path, capsys):
    model = tiny_model(tmp_path / "m.onnx", size=(64, 128))
    videos = make_collection(tmp_path / "videos", good={"a/v1.mp4": 4}, bad={})
    base = ["--model", model, "--input", videos, "--output", tmp_path / "o"]
    assert run_cli(base + ["--step", "2"], capsys)[0] == 0
    code, _, err = run_cli(base, capsys)
    assert code == 2 and "step 2 (now 1)" in err
    code, _, err = run_cli(base + ["--step", "2", "--new-short", "32"], capsys)
    assert code == 2 and "new_short None (now 32)" in err
    # a folder made before steps and sizes existed: their absence means step 1, the source's size
    settings = tmp_path / "o" / collection.SETTINGS_FILE
    old = {k: v for k, v in json.loads(settings.read_text()).items() if k not in ("step", "new_short", "new_size",
                                                                                   "enlarge")}
    settings.write_text(json.dumps(old))
    code, out, err = run_cli(base + ["--force"], capsys)
    assert code == 0, err
    # a folder from before the model ran at the output's size: resized ones ran at the source's
    assert run_cli(base + ["--new-short", "32", "--force"], capsys)[0] == 0
    settings.write_text(json.dumps({k: v for k, v in json.loads(settings.read_text()).items() if k != "flow_at"}))
    code, _, err = run_cli(base + ["--new-short", "32"], capsys)
    assert code == 2 and "flow_at 'source' (now 'output')" in err
    assert run_cli(base + ["--new-short", "32", "--flow-at", "source"], capsys)[0] == 0


# ------------------------------------------------------------------ frames at the output's size, before the model

def test_a_frame_shrunk_before_the_model_is_bilinear_with_antialiasing():
    """Against torch's own antialiased bilinear (an independent implementation): uint8 within one
    grey level (each rounds on its own), the float frames of 16-bit sources within 0.01 (float32 weights)."""
    import torch
    import torch.nn.functional as F

    from flownet2.data.frames import resize_frame

    img = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    for size in [(40, 57), (33, 131), (97, 60), (150, 200)]:  # shrink both ways, one side, enlarge
        ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=size, mode="bilinear",
                            antialias=True, align_corners=False)[0].permute(1, 2, 0).numpy()
        ours = resize_frame(img, size, antialias=True)
        assert ours.dtype == np.uint8 and ours.shape == size + (3,)
        assert np.abs(ours - ref).max() <= 1.0
        assert np.abs(resize_frame(img.astype(np.float32), size, antialias=True) - ref).max() < 0.01


def test_a_phone_photo_with_new_short_runs_the_model_at_that_short_side(tmp_path, capsys):
    """Two 4032x3024 photos, --new-short 64: the model (a checkpoint's: sized by the frames it is given)
    runs at 64x128 (the frames at 64x85), and the flow is written at 64x85."""
    big = [cv2.resize(f, (4032, 3024)) for f in clip_frames(2, 0, size=(96, 128))]
    paths = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    for path, img in zip(paths, big):
        Image.fromarray(img).save(path, quality=90)
    code, out, err = run_cli(["--model", "stand-in:s:0", "--backend", "torch", "--precision", "fp32", "--input",
                              *paths, "--output", tmp_path / "o", "--new-short", "64"], capsys)
    assert code == 0, err
    assert "(3024x4032, 1 pair(s)); model: stand-in:s:0 (64x128," in out
    assert "written at 64x85 (frames resized first)" in out
    assert read_flo(tmp_path / "o" / "a.flo").shape == (64, 85, 2)


def test_a_collection_of_two_sizes_alternating_opens_two_models_not_four(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for k, size in enumerate([(64, 64), (64, 128), (64, 64), (64, 128)]):  # v1 A, v2 B, v3 A, v4 B
        encode_video(videos / f"v{k + 1}.mp4", clip_frames(3, k, size=size), qp="0")
    code, out, err = run_cli(["--model", "stand-in:s:0", "--backend", "torch", "--precision", "fp32", "--input",
                              videos, "--output", tmp_path / "o"], capsys)
    assert code == 0, err
    assert "model opened 2 time(s) for 2 model size(s) (64x64, 64x128)" in out
    assert all(len(list((tmp_path / "o" / f"v{k}").glob("*.flo"))) == 2 for k in (1, 2, 3, 4))


# -------------------------------------------------------------------- a full or read-only output

class SmallDisk:
    """A small file system at `path`: a tmpfs of `size` (root), else a folder whose writes fail with
    ENOSPC after `budget` new files (injected where atomic_write creates its temporary)."""

    def __init__(self, path, size, budget, monkeypatch):
        self.path, self.mounted = Path(path), False
        self.path.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0:
            self.mounted = True
            return
        real, left = fileio.tempfile.mkstemp, [budget]

        def mkstemp(*args, dir=None, **kwargs):
            if dir is not None and str(dir).startswith(str(self.path)) and left[0] is not None:
                left[0] -= 1
                if left[0] < 0:
                    raise OSError(errno.ENOSPC, "No space left on device", dir)
            return real(*args, dir=dir, **kwargs)

        self.left = left
        monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp)

    def grow(self):
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=8m", str(self.path)], check=True)
        else:
            self.left[0] = None

    def close(self):
        if self.mounted:
            subprocess.run(["umount", str(self.path)], check=True)


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    disks = []

    def make(size, budget):
        disks.append(SmallDisk(tmp_path / f"disk{len(disks)}", size, budget, monkeypatch))
        return disks[-1]

    yield make
    for disk in disks:
        disk.close()


def test_a_full_disk_stops_a_collection_at_once_and_the_same_command_resumes(tmp_path, capsys, small_disk):
    model = tiny_model(tmp_path / "m.onnx", size=(64, 128))
    videos = make_collection(tmp_path / "videos", good=GOOD, bad={})
    code, _, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "ref"], capsys)
    assert code == 0, err
    # 256 KiB: the settings, a/v1 (3 flows of 64 KiB, its marker), then a/v2's first flow does not fit
    disk = small_disk("256k", budget=5)
    command = ["--model", model, "--input", videos, "--output", disk.path / "o"]
    code, out, err = run_cli(command, capsys)
    lines = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 3 and len(lines) == 1, err
    assert str(disk.path / "o") in lines[0] and "no space left on the device" in lines[0]
    assert not (disk.path / "o" / "failed.txt").exists()  # no video blamed
    done = [k for k in ("a/v1", "a/v2", "b/v3") if (disk.path / "o" / k / collection.MARKER).exists()]
    assert done == ["a/v1"]
    left = [f for f in files_under(disk.path / "o") if not f.startswith(("a/v1/", "."))]
    assert left == []  # the video in progress cleared, nothing of the others
    disk.grow()
    code, out, err = run_cli(command, capsys)
    assert code == 0, err
    assert "videos: 2 done, 1 skipped (finished before), 0 failed of 3" in out
    assert outputs(disk.path / "o") == outputs(tmp_path / "ref")


def test_a_full_disk_stops_a_single_video_clears_it_and_the_same_command_runs_again(tmp_path, capsys, small_disk):
    model = tiny_model(tmp_path / "m.onnx", size=(64, 128))
    encode_video(tmp_path / "clip.mp4", clip_frames(6, 0), qp="0")
    disk = small_disk("160k", budget=2)
    command = ["--model", model, "--input", tmp_path / "clip.mp4", "--output", disk.path / "o"]
    code, _, err = run_cli(command, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 3 and len(errors) == 1 and "no space left on the device" in errors[0], err
    assert files_under(disk.path / "o") == []
    disk.grow()
    code, _, err = run_cli(command, capsys)
    assert code == 0, err
    assert files_under(disk.path / "o") == [f"clip/frame_{i:04d}.flo" for i in range(1, 6)]


def test_a_read_only_output_is_refused_before_the_model_is_opened(tmp_path, capsys):
    point = tmp_path / "ro"
    point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(point)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a read-only tmpfs needs root")
    try:
        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not a model")  # opening it would fail with exit 2, in other words
        videos = make_collection(tmp_path / "videos", good={"a/v1.mp4": 3}, bad={})
        for source in (videos, videos / "a" / "v1.mp4"):
            code, _, err = run_cli(["--model", broken, "--input", source, "--output", point], capsys)
            assert code == 3 and "read-only file system" in err and str(point) in err, err
            assert len(err.strip().splitlines()) == 1
    finally:
        subprocess.run(["umount", str(point)], check=True)


def test_an_unreadable_input_is_the_videos_fault_not_the_outputs(tmp_path):
    denied = OSError(errno.EACCES, "Permission denied", str(tmp_path / "in" / "v.mp4"))
    assert fileio.output_fault(denied, tmp_path / "out") is None
    inside = OSError(errno.EACCES, "Permission denied", str(tmp_path / "out" / "v" / "frame_0001.flo"))
    assert fileio.output_fault(inside, tmp_path / "out").exit_code == 3
    assert fileio.output_fault(OSError(errno.EIO, "I/O error", str(tmp_path / "out")), tmp_path / "out") is None

"""Inputs as people have them: every depth and mode read at its full range, display orientation
(EXIF, a video's display matrix), inputs never written over, list files from any editor, folder
links in collection trees, hidden files, and a summary that names the files written.

Each case is checked against a reference that does not use the reader: the 8-bit frame a 16-bit one
was made from, a conversion done by hand, OpenCV's own decode, checksums taken before the run.
"""
import hashlib
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from test_collection import clip_frames
from test_predict import files_under, read_flo, run_cli, tiny_model

from flownet2.data import decode, frames
from flownet2.errors import Flownet2Error
from flownet2.runtime import collection

av = pytest.importorskip("av")
SIZE = (48, 64)  # (height, width): not square, so a turn shows in the shape


def real_frames(n=3, seed=0):
    """n real Sintel frames at SIZE (uint8 RGB; random frames when the sample is absent)."""
    return clip_frames(n, seed, SIZE)


def checksums(folder):
    return {p: hashlib.sha256((Path(folder) / p).read_bytes()).hexdigest() for p in files_under(folder)}


# ------------------------------------------------------------------------------ depths and modes

def test_16_bit_grey_and_rgb_read_back_as_the_8_bit_frames_they_were_made_from(tmp_path):
    rgb = real_frames(1)[0]
    grey = rgb[:, :, 1]
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")  # mode I;16
    cv2.imwrite(str(tmp_path / "rgb16.png"), rgb[:, :, ::-1].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "rgb16.tif"), rgb[:, :, ::-1].astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "grey16.tif"), grey.astype(np.uint16) * 257)
    assert Image.open(tmp_path / "grey16.png").mode == "I;16"  # the mode that used to clip to white
    for name, expected in (("grey16.png", np.dstack([grey] * 3)), ("grey16.tif", np.dstack([grey] * 3)),
                           ("rgb16.png", rgb), ("rgb16.tif", rgb)):
        frame = decode.read_frame(tmp_path / name)
        assert frame.dtype == np.float32 and frame.shape == SIZE + (3,), name
        np.testing.assert_array_equal(frame, expected.astype(np.float32), err_msg=name)


def test_16_bit_values_keep_their_precision_instead_of_being_cut_to_8_bits(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, SIZE + (3,), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "rgb16.png"), values[:, :, ::-1])
    Image.fromarray(values[:, :, 0]).save(tmp_path / "grey16.png")
    for name, raw in (("rgb16.png", values), ("grey16.png", np.dstack([values[:, :, 0]] * 3))):
        # 65535 -> 255: v / 257; cutting to 8 bits would be up to 0.5 away
        np.testing.assert_allclose(decode.read_frame(tmp_path / name), raw / 257.0, atol=1e-4, rtol=0)


def test_a_folder_of_16_bit_frames_gives_the_flow_of_its_8_bit_frames(tmp_path, capsys):
    images = real_frames(3)
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64))  # flow = the first frame, normalised
    for depth in (8, 16):
        (tmp_path / f"in{depth}").mkdir()
        for i, img in enumerate(images):
            grey = img[:, :, 0].astype(np.uint16) * (257 if depth == 16 else 1)
            Image.fromarray(grey if depth == 16 else grey.astype(np.uint8)).save(tmp_path / f"in{depth}" / f"f{i}.png")
        code, _, err = run_cli(["--model", model, "--input", tmp_path / f"in{depth}", "--output",
                                tmp_path / f"out{depth}", "--size-mode", "pad", "--rgb", "--format", "flo"], capsys)
        assert code == 0, err
    for name in files_under(tmp_path / "out8"):
        if name.endswith(".flo"):
            np.testing.assert_array_equal(read_flo(tmp_path / "out16" / name), read_flo(tmp_path / "out8" / name))
        else:  # the --rgb frames: 16-bit frames rounded back to the same 8-bit JPEG input
            assert (tmp_path / "out16" / name).read_bytes() == (tmp_path / "out8" / name).read_bytes()


def test_a_16_bit_video_keeps_its_precision(tmp_path):
    values = np.random.default_rng(3).integers(0, 65536, (2,) + SIZE + (3,), dtype=np.uint16)
    with av.open(str(tmp_path / "deep.mkv"), "w") as out:  # FFV1: lossless, 16 bits per channel
        stream = out.add_stream("ffv1", rate=12)
        stream.height, stream.width = SIZE
        stream.pix_fmt = "gbrp16le"
        for v in values:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(v, format="rgb48le")))
        out.mux(stream.encode())
    got = list(frames.open_source([tmp_path / "deep.mkv"]).frames())
    np.testing.assert_allclose(np.stack(got), values / 257.0, atol=1e-4, rtol=0)


def test_grey_palette_alpha_cmyk_and_1_bit_match_conversions_by_hand(tmp_path):
    rgb = real_frames(1)[0]
    grey = rgb[:, :, 0]
    palette = np.random.default_rng(2).integers(0, 256, (256, 3), dtype=np.uint8)
    index = (rgb[:, :, 1] // 16).astype(np.uint8)
    alpha = rgb[:, :, 2]
    cmyk = np.dstack([rgb, grey // 2]).astype(np.uint8)
    p = Image.fromarray(index, "P")
    p.putpalette(palette.tobytes())
    p.save(tmp_path / "p.png")
    p.save(tmp_path / "p_transparent.png", transparency=3)
    Image.fromarray(grey).save(tmp_path / "l.png")
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "cmyk.tif")
    Image.fromarray(grey >= 128).save(tmp_path / "bits.png")
    c, k = cmyk[:, :, :3].astype(np.float64), cmyk[:, :, 3:].astype(np.float64)
    expected = {"p.png": palette[index], "p_transparent.png": palette[index], "l.png": np.dstack([grey] * 3),
                "la.png": np.dstack([grey] * 3), "rgba.png": rgb,  # alpha dropped, never composited
                "cmyk.tif": (255 - c) * (255 - k) / 255,
                "bits.png": np.dstack([np.where(grey >= 128, 255, 0)] * 3)}
    for name, want in expected.items():
        got = decode.read_frame(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == SIZE + (3,), name
        np.testing.assert_allclose(got, want, atol=1 if name.startswith("cmyk") else 0, err_msg=name)


def test_a_16_bit_bmp_is_packed_5_6_5_not_16_bits_per_channel(tmp_path):
    h, w = 4, 6
    rng = np.random.default_rng(4)
    r, g, b = rng.integers(0, 32, (h, w)), rng.integers(0, 64, (h, w)), rng.integers(0, 32, (h, w))
    words = (r << 11 | g << 5 | b).astype("<u2")[::-1]  # bottom-up rows
    rows = b"".join(row.tobytes() + bytes((-2 * w) % 4) for row in words)
    info = (np.array([40, w, h], "<i4").tobytes() + np.array([1, 16], "<u2").tobytes()
            + np.array([3, len(rows), 0, 0, 0, 0, 0xF800, 0x07E0, 0x001F], "<u4").tobytes())  # 3: bit fields
    (tmp_path / "x.bmp").write_bytes(b"BM" + np.array([66 + len(rows), 0, 66], "<u4").tobytes() + info + rows)
    got = decode.read_frame(tmp_path / "x.bmp")
    assert got.dtype == np.uint8
    # 5 or 6 bits to 8: readers differ by how they fill the low bits, never by more than 7 levels
    np.testing.assert_allclose(got, np.dstack([r * 255 / 31, g * 255 / 63, b * 255 / 31]), atol=7)


def test_float_and_wide_integer_images_are_refused_naming_the_file(tmp_path):
    Image.fromarray(np.full(SIZE, 0.5, np.float32)).save(tmp_path / "float.tif")
    Image.fromarray(np.full(SIZE, 70000, np.int32), "I").save(tmp_path / "wide.tif")
    Image.fromarray(np.full(SIZE, 1000, np.int32), "I").save(tmp_path / "narrow.tif")
    for name, message in (("float.tif", "mode F is not read"), ("wide.tif", "outside 16 bits")):
        with pytest.raises(Flownet2Error, match=message) as e:
            decode.read_frame(tmp_path / name)
        assert str(e.value).startswith(str(tmp_path / name)) and "\n" not in str(e.value)
    np.testing.assert_allclose(decode.read_frame(tmp_path / "narrow.tif"), 1000 / 257, rtol=1e-6)


# ------------------------------------------------------------------------------ orientation

@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_shown_as_opencv_shows_it(tmp_path, orientation):
    rgb = real_frames(1)[0]
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(rgb).save(path, quality=95, exif=exif)
    reference = cv2.imread(str(path))[:, :, ::-1]  # default flags: EXIF orientation applied
    got = decode.read_frame(path)
    assert got.shape == reference.shape and decode.header(path).size == reference.shape[:2]
    # two JPEG decoders may differ by a level or two; a wrong turn is tens of levels away
    assert np.abs(got.astype(int) - reference).mean() < 1.5


def _rotated_video(path, images, degrees, hflip=False):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv444p", {"qp": "0"}
        stream.set_display_rotation(degrees, hflip=hflip)
        for img in images:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())


def _opencv_frames(path):
    capture, found = cv2.VideoCapture(str(path)), []  # rotates by the display matrix by default
    while (ok := capture.read())[0]:
        found.append(ok[1][:, :, ::-1])
    return found


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_video_with_display_rotation_is_used_as_opencv_shows_it(tmp_path, degrees):
    _rotated_video(tmp_path / "phone.mp4", real_frames(3), degrees)
    source = frames.open_source([tmp_path / "phone.mp4"])
    reference = _opencv_frames(tmp_path / "phone.mp4")
    got = list(source.frames())
    assert len(got) == len(reference) == 3 and source.size == reference[0].shape[:2]
    for mine, theirs in zip(got, reference):
        assert mine.shape == theirs.shape and np.abs(mine.astype(int) - theirs).mean() < 3
    assert "rotated" in source.orientation_note


def test_rotated_video_gives_flow_rgb_frames_and_video_in_display_orientation(tmp_path, capsys):
    _rotated_video(tmp_path / "phone.mp4", real_frames(3), 90)
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64))
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "phone.mp4", "--output", tmp_path / "o",
                              "--size-mode", "pad", "--rgb", "--format", "flo", "--video", tmp_path / "v.mp4"],
                             capsys)
    assert code == 0, err
    input_line = next(line for line in out.splitlines() if line.startswith("input: "))  # after the engine line
    assert "rotated 90 degrees" in input_line
    portrait = SIZE[::-1]
    assert read_flo(tmp_path / "o" / "phone" / "frame_0001.flo").shape[:2] == portrait
    assert cv2.imread(str(tmp_path / "o" / "phone" / "img_00001.jpg")).shape[:2] == portrait
    with av.open(str(tmp_path / "v.mp4")) as v:
        assert v.streams.video[0].height >= portrait[0]  # the picture: a portrait panel above its caption


def test_a_mirroring_display_matrix_is_refused_not_guessed(tmp_path):
    _rotated_video(tmp_path / "mirror.mp4", real_frames(2), 90, hflip=True)
    with pytest.raises(Flownet2Error, match="mirror.mp4: the display matrix mirrors"):
        frames.open_source([tmp_path / "mirror.mp4"])


# ------------------------------------------------------------------------------ inputs kept

def _frame_folder(folder, n=4):
    folder.mkdir(parents=True)
    for i, img in enumerate(real_frames(n)):
        Image.fromarray(img).save(folder / f"frame_{i + 1:04d}.png")
    return folder


@pytest.mark.parametrize("flags", [["--png"], ["--format", "jpg", "--rgb"]])
def test_output_into_the_input_folder_is_refused_with_force_and_nothing_changes(tmp_path, capsys, flags):
    frames_dir = _frame_folder(tmp_path / "frames")
    before = checksums(tmp_path)
    # a model that does not exist: the refusal must come before any model is opened
    for output in (frames_dir, frames_dir / "flow", frames_dir / ".." / "frames"):
        code, _, err = run_cli(["--model", tmp_path / "none.onnx", "--input", frames_dir, "--output", output,
                                "--force"] + flags, capsys)
        assert code == 2 and "inputs are never written over" in err and "none.onnx" not in err
    assert checksums(tmp_path) == before


def test_a_picture_or_video_that_would_land_on_an_input_is_refused_and_it_is_kept(tmp_path, capsys):
    frames_dir = _frame_folder(tmp_path / "frames", n=2)
    pair = [frames_dir / "frame_0001.png", frames_dir / "frame_0002.png"]
    before = checksums(tmp_path)
    code, _, err = run_cli(["--model", tmp_path / "none.onnx", "--input", *pair, "--output", frames_dir,
                            "--png", "--force"], capsys)
    assert code == 2 and "frame_0001.png: would be written over the input" in err
    assert checksums(tmp_path) == before
    _rotated_video(tmp_path / "clip.mp4", real_frames(2), 0)
    before = checksums(tmp_path)
    code, _, err = run_cli(["--model", tmp_path / "none.onnx", "--input", tmp_path / "clip.mp4", "--output",
                            tmp_path / "o", "--video", tmp_path / "clip.mp4", "--force"], capsys)
    assert code == 2 and "clip.mp4: would be written over the input" in err
    assert checksums(tmp_path) == before


def test_ground_truth_in_the_output_folder_is_never_written_over(tmp_path, capsys):
    frames_dir = _frame_folder(tmp_path / "frames", n=2)
    _rotated_video(tmp_path / "clip.mp4", real_frames(3), 0)
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("frame_0001.flo", "frame_0002.flo"):
        (gt / name).write_bytes(b"PIEH" + np.array([64, 48], "<i4").tobytes() + bytes(64 * 48 * 8))
    (gt / "clip").symlink_to(gt)  # a video's outputs would go to gt/clip/, which is gt itself
    before = checksums(tmp_path)
    for source in (frames_dir, tmp_path / "clip.mp4"):
        code, _, err = run_cli(["--model", tmp_path / "none.onnx", "--input", source, "--output", gt,
                                "--gt", gt, "--force"], capsys)
        assert code == 2 and "inputs are never written over" in err, err
    assert checksums(tmp_path) == before


def test_a_video_collection_into_its_own_tree_is_refused(tmp_path, capsys):
    (tmp_path / "videos" / "a").mkdir(parents=True)
    _rotated_video(tmp_path / "videos" / "a" / "v.mp4", real_frames(2), 0)
    before = checksums(tmp_path)
    for output in (tmp_path / "videos", tmp_path / "videos" / "flow"):
        code, _, err = run_cli(["--model", tmp_path / "none.onnx", "--input", tmp_path / "videos",
                                "--output", output, "--force"], capsys)
        assert code == 2 and "inputs are never written over" in err
    assert checksums(tmp_path) == before


def test_our_jpg_flow_and_hidden_files_in_a_folder_are_never_read_as_frames(tmp_path):
    folder = _frame_folder(tmp_path / "f", n=2)
    flow = np.zeros(SIZE, np.uint8)
    for name in ("flow_x_00001.jpg", "flow_y_00001.jpg", "._frame_0002.png", ".thumb.png"):
        Image.fromarray(flow).save(folder / name, format="JPEG" if name.endswith("jpg") else "PNG")
    source = frames.open_source([folder])
    assert [os.path.basename(f) for f in source.files] == ["frame_0001.png", "frame_0002.png"]


# ------------------------------------------------------------------------------ collections

def test_list_files_with_a_byte_order_mark_and_crlf(tmp_path):
    (tmp_path / "l.txt").write_bytes("\ufeff# my videos\r\na/v1.mp4\r\n\r\nb/v2.mp4\r\n".encode("utf-8"))
    jobs, _ = collection.find_jobs(tmp_path / "l.txt")
    assert [(j.name, j.key, j.video) for j in jobs] == [
        ("a/v1.mp4", "a/v1", str(tmp_path / "a" / "v1.mp4")), ("b/v2.mp4", "b/v2", str(tmp_path / "b" / "v2.mp4"))]
    (tmp_path / "latin1.txt").write_bytes("vid\xe9o.mp4\n".encode("latin-1"))
    with pytest.raises(Flownet2Error, match="latin1.txt: not UTF-8 text"):
        collection.find_jobs(tmp_path / "latin1.txt")


def test_folder_links_are_followed_by_tree_path_loops_are_not_and_hidden_videos_skipped(tmp_path):
    raw, tree = tmp_path / "raw", tmp_path / "tree"
    (raw / "inner").mkdir(parents=True)
    (tree / "a").mkdir(parents=True)
    for video in (raw / "r.mp4", raw / "inner" / "s.mp4", tree / "a" / "v.mp4", tree / "a" / "._v.mp4",
                  tree / "a" / ".v.mp4"):
        video.write_bytes(b"")
    os.symlink(raw, tree / "train")
    os.symlink(raw, tree / "val")  # the same folder twice: once per tree path
    os.symlink(tree, tree / "a" / "up")  # back to the top: a loop
    os.symlink("..", raw / "inner" / "back")  # inside the linked folder, back to it: a loop
    jobs, found = collection.find_jobs(tree)
    assert sorted(j.key for j in jobs) == ["a/v", "train/inner/s", "train/r", "val/inner/s", "val/r"]
    assert {j.video for j in jobs if j.key == "val/r"} == {str(tree / "val" / "r.mp4")}
    assert "3 folder link(s) back into the tree not followed" in found


def test_the_summary_names_the_files_it_wrote(tmp_path, capsys):
    folder = _frame_folder(tmp_path / "f", n=3)
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64))
    for fmt, extra in (("jpg", ["--rgb"]), ("kitti", []), ("flo", ["--png"])):
        output = tmp_path / fmt
        code, out, err = run_cli(["--model", model, "--input", folder, "--output", output, "--size-mode", "pad",
                                  "--format", fmt] + extra, capsys)
        assert code == 0, err
        written = files_under(output)
        line = next(s for s in out.splitlines() if s.startswith("wrote "))
        counts = {"jpg": f"{sum(f.startswith('flow_') for f in written)} .jpg (flow_x, flow_y) + "
                         f"{sum(f.startswith('img_') for f in written)} img_N.jpg frames",
                  "kitti": f"{len(written)} KITTI .png", "flo": f"{sum(f.endswith('.flo') for f in written)} .flo + "
                                                             f"{sum(f.endswith('.png') for f in written)} .png pictures"}
        assert line.startswith(f"wrote {counts[fmt]} in "), line


def test_a_collection_runs_linked_and_rotated_videos_by_tree_path_in_display_orientation(tmp_path, capsys):
    raw, tree = tmp_path / "raw", tmp_path / "tree"
    raw.mkdir()
    (tree / "a").mkdir(parents=True)
    _rotated_video(raw / "phone.mp4", real_frames(3), 270)
    _rotated_video(tree / "a" / "still.mp4", real_frames(2), 0)
    (tree / "a" / "._still.mp4").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # would fail as a video
    os.symlink(raw, tree / "train")
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64))
    code, out, err = run_cli(["--model", model, "--input", tree, "--output", tmp_path / "o", "--size-mode", "pad"],
                             capsys)
    assert code == 0, err
    assert "videos: 2 done, 0 skipped (finished before), 0 failed of 2" in out
    assert "1 video(s) turned to display orientation" in out
    assert read_flo(tmp_path / "o" / "train" / "phone" / "frame_0001.flo").shape[:2] == SIZE[::-1]
    assert read_flo(tmp_path / "o" / "a" / "still" / "frame_0001.flo").shape[:2] == SIZE

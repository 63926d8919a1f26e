"""Flow formats: jpg quantisation by its formula, KITTI to 1/64 px, float16 npy, ONE reader over all
(and --gt through it: KITTI's invalid pixels are not scored)."""
import numpy as np
import pytest
from PIL import Image
from test_predict import run_cli, tiny_model, write_frames

from flownet2.data import flow_formats
from flownet2.data.flow_formats import FlowFormat, read_flow
from flownet2.errors import Flownet2Error


def formula(v, bound):
    """The denseflow / mmaction2 rule, one value at a time: round(255 * (v + b) / (2b)) clipped."""
    return min(255, max(0, round(255 * (v + bound) / (2 * bound))))


@pytest.mark.parametrize("bound", [20.0, 32.0, 1.5])
def test_jpg_quantisation_follows_the_formula_at_the_bounds_and_beyond(bound):
    values = [-1000.0, -bound - 0.1, -bound, -bound / 2, -0.01, 0.0, 0.01, bound / 3, bound, bound + 0.1, 1e6]
    got = flow_formats.quantise(np.array(values), bound)
    assert got.dtype == np.uint8
    assert got.tolist() == [formula(v, bound) for v in values]
    assert got[2] == 0 and got[8] == 255  # -bound and +bound are the ends


def test_jpg_files_are_grey_named_from_the_start_index_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    # flat 8x8 blocks: what JPEG keeps nearly exactly, so the pixel values are the quantised flow
    flow = np.kron(rng.uniform(-25, 25, (4, 6, 2)), np.ones((8, 8, 1))).astype(np.float32)
    fmt = FlowFormat("jpg", bound=20, start_index=0)
    paths = fmt.write(str(tmp_path), "clip/frame_0001", 0, flow)
    assert [p[len(str(tmp_path)) + 1:] for p in paths] == ["clip/flow_x_00000.jpg", "clip/flow_y_00000.jpg"]
    for path, c in zip(paths, (0, 1)):
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "L"
            pixels = np.asarray(img).astype(int)
        expected = np.vectorize(lambda v: formula(v, 20.0))(flow[..., c].astype(np.float64))
        assert np.abs(pixels - expected).max() <= 1  # JPEG at quality 95 on flat blocks
    back, valid = read_flow(paths[1])  # either file of the pair names it
    assert valid is None and back.shape == flow.shape
    step = 40 / 255
    inside = np.abs(flow) < 20
    assert np.abs(back - flow)[inside].max() <= 1.5 * step
    assert np.allclose(back[~inside], np.sign(flow[~inside]) * 20, atol=1.5 * step)  # clipped at the bound


def test_kitti_reads_back_to_1_64_px_and_npy_to_float16(tmp_path):
    rng = np.random.default_rng(1)
    flow = rng.uniform(-300, 300, (7, 9, 2)).astype(np.float32)
    [png] = FlowFormat("kitti").write(str(tmp_path), "frame_0001", 0, flow)
    back, valid = read_flow(png)
    assert png.endswith("frame_0001.png") and valid.all()
    assert np.abs(back - flow).max() <= 1 / 128 + 1e-6  # rounded to the nearest 1/64 px
    [npy] = FlowFormat("npy").write(str(tmp_path), "frame_0001", 0, flow)
    raw = np.load(npy)
    assert raw.dtype == np.float16 and raw.shape == (7, 9, 2)
    back, valid = read_flow(npy)
    assert valid is None and np.abs(back - flow).max() <= 300 * 2 ** -11  # float16: 11 bits of mantissa
    [flo] = FlowFormat("flo").write(str(tmp_path), "frame_0001", 0, flow)
    assert np.array_equal(read_flow(flo)[0], flow)


def test_unreadable_flow_files_get_one_line(tmp_path):
    (tmp_path / "a.npy").write_bytes(b"not numpy")
    (tmp_path / "flow_x_00001.jpg").write_bytes(b"")
    (tmp_path / "b.txt").write_text("")
    for name, words in (("a.npy", "not a readable .npy"), ("flow_x_00001.jpg", "not a readable 8-bit"),
                        ("b.txt", "unknown flow file"), ("missing.flo", "cannot read flow file")):
        with pytest.raises(Flownet2Error, match=words):
            read_flow(tmp_path / name)
    with pytest.raises(Flownet2Error, match="bound must be positive"):
        FlowFormat("jpg", bound=0)


@pytest.mark.parametrize("fmt", ["kitti", "npy", "jpg"])
def test_gt_reads_every_format_and_scores_only_kittis_valid_pixels(tmp_path, capsys, fmt):
    """A model giving a known field; ground truth in `fmt` = the field + 1 px in u on the left half
    and, for KITTI, garbage on invalid pixels in the right half: EPE = 1 px on valid pixels."""
    h, w = 64, 128
    field = np.zeros((2, h, w), np.float32)
    field[0], field[1] = 3.125, -1.875  # exact in float16, KITTI (1/64) and jpg at bound 31.875 (1/4 px steps)
    model = tiny_model(tmp_path / "m.onnx", size=(h, w), field=field)
    frames = [np.full((h, w, 3), v, np.uint8) for v in (10, 20)]
    write_frames(tmp_path / "f", frames)
    gt = field.transpose(1, 2, 0).copy()
    gt[:, : w // 2, 0] += 1.0
    valid = np.ones((h, w), bool)
    if fmt == "kitti":
        valid[:, w // 2:] = False
        gt[:, w // 2:] = 77.0  # unscored
        expected = 1.0
    else:
        expected = 0.5  # half the pixels 1 px off
    if fmt == "jpg":  # exact on the quantisation grid: bound 31.875 makes steps of 1/4 px
        FlowFormat("jpg", bound=31.875).write(str(tmp_path / "gt"), "frame_0001", 0, gt)
    else:
        (tmp_path / "gt").mkdir()
        from flownet2.data.kitti_png import write_kitti_flow
        if fmt == "kitti":
            write_kitti_flow(tmp_path / "gt" / "frame_0001.png", gt, valid)
        else:
            np.save(tmp_path / "gt" / "frame_0001.npy", gt.astype(np.float16))
    argv = ["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o", "--gt", tmp_path / "gt"]
    code, out, err = run_cli(argv + (["--bound", "31.875", "--format", "jpg"] if fmt == "jpg" else []), capsys)
    assert code == 0, err
    [line] = [x for x in out.splitlines() if "mean EPE" in x]
    assert abs(float(line.split("=")[1]) - expected) < 1e-3, out


def test_a_folder_of_frames_as_mmaction2_rawframes(tmp_path, capsys):
    """--format jpg --rgb on a single source: img_N.jpg for every frame (N frames) beside N - 1 flow
    pairs, numbered from --start-index; the frames come back as JPEGs of the originals."""
    rng = np.random.default_rng(3)
    frames = [np.kron(rng.integers(0, 256, (8, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8) for _ in range(3)]
    write_frames(tmp_path / "f", frames)
    model = tiny_model(tmp_path / "m.onnx", size=(64, 96))
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o",
                            "--format", "jpg", "--rgb", "--start-index", "0"], capsys)
    assert code == 0, err
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["flow_x_00000.jpg", "flow_x_00001.jpg", "flow_y_00000.jpg", "flow_y_00001.jpg",
                     "img_00000.jpg", "img_00001.jpg", "img_00002.jpg"]
    for n, frame in enumerate(frames):
        with Image.open(tmp_path / "o" / f"img_{n:05d}.jpg") as img:
            pixels = np.asarray(img).astype(int)
        # JPEG's chroma subsampling blurs the colour blocks' edges; swapped channels would be far off
        error, swapped = np.abs(pixels - frame).mean(), np.abs(pixels - frame[..., ::-1]).mean()
        assert img.mode == "RGB" and error < 12 and error < swapped / 3, (error, swapped)
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o",
                            "--format", "jpg", "--rgb", "--start-index", "0"], capsys)
    assert code == 2 and "already exists" in err  # a rerun without --force touches nothing

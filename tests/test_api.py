"""The Python API (`import flownet2`, docs/python.md): the page's code run as written and compared with
Flownet2_predict.py's files byte for byte, sizes there and back against a model of known flow, batches
against pairs one by one, the video iterator against the CLI's files, torch tensors, bad input, the
bounded set of open sizes, a light import, and the commands of a `pip install .` from another folder."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import flownet2
from flownet2.runtime.flow_model import FlowModel
from flownet2.runtime.sessions import open_model
from sintel_mini import MINI, needs_mini
from test_predict import random_frames, read_flo, run_cli, tiny_model, write_frames
from test_scale import diff_model, hand_scaled, smooth_field

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "python.md"
DEMO = REPO / "demo" / "frames"


def python_blocks(page):
    return [m.group(1) for m in re.finditer(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]


def readme_three_lines():
    [block] = [b for b in python_blocks(REPO / "README.md") if "flownet2.load" in b]
    return block


def cli_flow(tmp_path, capsys, model, first, second, *extra):
    out = tmp_path / "cli"
    code, _, err = run_cli(["--model", model, "--input", first, second, "--output", out, *extra], capsys)
    assert code == 0, err
    return (out / (Path(first).stem + ".flo")).read_bytes()


def flo_bytes(flow):
    h, w = flow.shape[:2]
    return b"PIEH" + np.array([w, h], "<i4").tobytes() + np.ascontiguousarray(flow, "<f4").tobytes()


# ------------------------------------------------------------------ the page as written, against the CLI

def test_the_page_runs_as_written_and_its_flow_is_the_clis_byte_for_byte(tmp_path, capsys, monkeypatch):
    (tmp_path / "demo").symlink_to(REPO / "demo")
    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(PAGE)
    assert blocks[0] == readme_three_lines(), "README's three lines and docs/python.md's first block differ"
    space = {}
    exec(blocks[0], space)  # noqa: S102 - the documented code, exactly
    first = space["flow"]
    assert first.shape == (109, 256, 2) and first.dtype == np.float32
    for block in blocks[1:]:
        exec(block, space)  # noqa: S102
    model = space["model"]
    want = cli_flow(tmp_path, capsys, "stand-in:s:0", DEMO / "frame_0001.jpg", DEMO / "frame_0002.jpg",
                    "--backend", model.backend, "--precision", model.precision, "--streams", "1")
    assert flo_bytes(first) == want
    # what the later blocks made, checked against the first
    assert np.array_equal(space["flows"][0], first) and space["flows"].shape == (2, 109, 256, 2)
    assert np.array_equal(space["flow_t"][0].permute(1, 2, 0).numpy(), first)
    assert np.array_equal(space["again"], space["forward"]) and space["picture"].dtype == np.uint8
    assert np.array_equal(space["occluded"], ~space["consistent"]) and space["mask"].shape == (109, 256)
    assert sorted(os.listdir("out"))[:2] == ["frame_0001.flo", "frame_0001_flow.png"]
    assert read_flo("out/pair_0000.flo").tobytes() == want[12:]


@needs_mini
def test_the_three_lines_on_a_real_sintel_pair_give_the_clis_bytes(tmp_path, capsys):
    scene = Path(MINI) / "training" / "clean" / "alley_1"
    code = readme_three_lines().replace("demo/frames/frame_0001.jpg", str(scene / "frame_0001.png")) \
                               .replace("demo/frames/frame_0002.jpg", str(scene / "frame_0002.png"))
    space = {}
    exec(code, space)  # noqa: S102
    assert space["flow"].shape == (436, 1024, 2)
    want = cli_flow(tmp_path, capsys, "stand-in:s:0", scene / "frame_0001.png", scene / "frame_0002.png",
                    "--streams", "1")
    assert flo_bytes(space["flow"]) == want


# ------------------------------------------------------------------ sizes, batches, streams, tensors

@pytest.fixture(scope="module")
def field_model(tmp_path_factory):
    """A static 64x128 ONNX model whose flow is a fixed smooth field: the answer at any size is known."""
    field = smooth_field()
    return tiny_model(tmp_path_factory.mktemp("m") / "field.onnx", size=(64, 128), field=field), field


@pytest.mark.parametrize("size", [(437, 1023), (65, 67), (64, 128)])
def test_any_size_gives_flow_of_exactly_that_size_with_u_v_in_its_pixels(field_model, size):
    path, field = field_model
    model = flownet2.load(path)
    img1, img2 = random_frames(2, *size)
    flow = model(img1, img2)
    assert flow.shape == size + (2,) and flow.dtype == np.float32
    np.testing.assert_allclose(flow, hand_scaled(field, size), atol=1e-4)


@pytest.fixture(scope="module")
def diff2(tmp_path_factory):
    """A static ONNX model of batch 2 whose flow needs both frames (channels 0, 1 of x2 minus x1)."""
    return diff_model(tmp_path_factory.mktemp("d") / "diff.onnx", batch=2)


def test_a_batch_equals_its_pairs_one_by_one_and_a_list_the_array(diff2):
    model = flownet2.load(diff2)
    frames = random_frames(6, 48, 100, seed=3)
    a, b = np.stack(frames[:3]), np.stack(frames[3:])  # 3 pairs in batches of 2: the last one filled
    batch = model(a, b)
    assert batch.shape == (3, 48, 100, 2)
    for k in range(3):
        assert np.array_equal(batch[k], model(a[k], b[k]))
    assert np.array_equal(model(list(a), list(b)), batch)


def test_the_video_iterator_equals_the_clis_files(diff2, tmp_path, capsys):
    files = write_frames(tmp_path / "frames", random_frames(5, 40, 90, seed=4))
    code, _, err = run_cli(["--model", diff2, "--input", tmp_path / "frames", "--output", tmp_path / "o",
                            "--step", "2"], capsys)
    assert code == 0, err
    model = flownet2.load(diff2)
    from_folder = list(model.video(tmp_path / "frames", step=2))
    from_arrays = list(model.video((np.asarray(Image.open(f)) for f in files), step=2))
    assert [i for i, _ in from_folder] == [0, 1, 2] == [i for i, _ in from_arrays]
    for (i, flow), (_, same) in zip(from_folder, from_arrays):
        assert flo_bytes(flow) == (tmp_path / "o" / f"frame_{i + 1:04d}.flo").read_bytes()
        assert np.array_equal(flow, same)


def test_torch_tensors_in_give_a_tensor_out_equal_to_the_arrays(diff2):
    import torch

    model = flownet2.load(diff2)
    a, b = np.stack(random_frames(2, 30, 70, seed=5)), np.stack(random_frames(2, 30, 70, seed=6))
    t1, t2 = (torch.from_numpy(x).permute(0, 3, 1, 2).float() for x in (a, b))
    out = model(t1, t2)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 30, 70) and out.device == t1.device
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), model(a, b))
    one = model(t1[0], t2[0])
    assert one.shape == (2, 30, 70) and torch.equal(one, out[0])
    assert np.array_equal(model(a[0][:, :, ::-1], b[0][:, :, ::-1], bgr=True), model(a[0], b[0]))


def test_uint16_and_float_images_read_as_the_8_bit_scale(diff2):
    model = flownet2.load(diff2)
    a, b = random_frames(2, 20, 30, seed=7)
    wide = [x.astype(np.uint16) * 257 for x in (a, b)]  # 16-bit of the same picture: v * 257
    assert np.array_equal(model(*wide), model(a, b))
    assert np.array_equal(model(a.astype(np.float32), b.astype(np.float64)), model(a, b))


@pytest.mark.parametrize("img1, img2, words", [
    (np.zeros((2, 3, 4, 5, 3), np.uint8), np.zeros((2, 3, 4, 5, 3), np.uint8), "img1: expected"),
    (np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8), "4 channels"),
    (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9, 3), np.uint8), "img2 is 8x9, img1 is 8x8"),
    (np.full((8, 8, 3), np.nan, np.float32), np.zeros((8, 8, 3), np.float32), "img1: NaN"),
    (np.zeros((0, 8, 8, 3), np.uint8), np.zeros((0, 8, 8, 3), np.uint8), "img1: an empty batch"),
    ([], [], "img1: an empty batch"),
    (np.ones((8, 8, 3), np.float32) * 300, np.zeros((8, 8, 3), np.float32), "0..255 scale"),
    ("no/such/frame.png", "no/such/frame.png", "no/such/frame.png"),
    ([np.zeros((8, 8, 3), np.uint8)] * 2, [np.zeros((8, 8, 3), np.uint8)], "img1 has 2 image(s), img2 1"),
])
def test_bad_input_gets_one_line_naming_the_argument(diff2, img1, img2, words):
    model = flownet2.load(diff2)
    with pytest.raises(flownet2.Flownet2Error) as e:
        model(img1, img2)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_mixed_sizes_open_each_model_size_once_within_the_bound():
    opened = []

    def opener(model, **options):
        opened.append(options["size"])
        return open_model(model, **options)

    model = FlowModel("stand-in:s:0", backend="torch", precision="fp32", opener=opener, keep=2)
    sizes = [(64, 64), (70, 120), (64, 64), (70, 120), (64, 60)]  # model sizes 64x64, 128x128, 64x64, ...
    for size in sizes:
        assert model.session(size).size == model.model_size(size)
    assert opened == [(64, 64), (128, 128)] and model.loads == 2  # the last two sizes stay open
    model.session((128, 200))  # a third size drops the least recently used: 128x128
    model.session((64, 64))
    model.session((70, 120))
    assert opened[2:] == [(128, 256), (128, 128)]


def test_import_is_light():
    code = ("import sys, time; t = time.perf_counter(); import flownet2; t = time.perf_counter() - t; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'cv2', 'av') if m in sys.modules]; "
            "print(t, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout.split(maxsplit=1)
    assert float(out[0]) < 1.0 and out[1].strip() == "[]"


# ------------------------------------------------------------------ pip install . and the commands

def test_pip_install_gives_commands_that_work_from_another_folder(tmp_path):
    """A virtualenv seeing this machine's packages (so no download), the project installed into it
    from a copy of the repository, then the commands run from an unrelated folder."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    bin_ = venv / "bin"
    src = tmp_path / "src"
    _copy_tree(REPO, src)
    subprocess.run([str(bin_ / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", str(src)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = lambda *argv: subprocess.run([str(bin_ / argv[0]), *argv[1:]], cwd=elsewhere, env=env,  # noqa: E731
                                       capture_output=True, text=True)
    start = lambda *argv: subprocess.Popen([str(bin_ / argv[0]), *argv[1:]], cwd=elsewhere, env=env,  # noqa: E731
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    flags = {"flownet2-predict": "--model", "flownet2-preprocess": "--dataset", "flownet2-pth2onnx": "--out_path",
             "flownet2-fix-onnx": "usage", "flownet2-postprocess": "--gt_path", "flownet2-infer": "--model",
             "flownet2-run-all": "--checkpoint", "flownet2-atc": "--soc"}  # a word each one's --help says
    started = {command: start(command, "--help") for command in flags}  # side by side: each one starts Python
    for command, word in flags.items():
        out, err = started[command].communicate(timeout=120)
        assert started[command].returncode == 0 and word in out, (command, out, err)
    done = run("flownet2-predict", "--model", "stand-in:s:0", "--input", str(DEMO / "frame_0001.jpg"),
               str(DEMO / "frame_0002.jpg"), "--output", "out")
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "out" / "frame_0001.flo").is_file()
    where = run("python", "-c", "import flownet2; print(flownet2.__file__)").stdout.strip()
    assert where.startswith(str(venv)), where  # the installed copy, not the repository's


def _copy_tree(src, dst):
    """The files pip builds from: the package, pyproject.toml and the README (no tests, no .git)."""
    import shutil

    dst.mkdir()
    shutil.copytree(src / "flownet2", dst / "flownet2", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(src / name, dst / name)

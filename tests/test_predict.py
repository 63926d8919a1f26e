"""Flownet2_predict.py: frame sources, sizes there and back, streaming, outputs, bad input.

Tiny hand-built ONNX models stand in for the network wherever its numbers are not the point; one
test runs the real network (stand-in weights) against the preprocess -> runner -> postprocess chain.
"""
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sintel_mini import MINI, needs_mini

from flownet2.commands import predict as cli
from flownet2.cli import run_main
from flownet2.data import frames
from flownet2.errors import Flownet2Error
from flownet2.model import provenance
from flownet2.runtime import predict
from flownet2.runtime.outputs import Outputs

av = pytest.importorskip("av")


# ---------------------------------------------------------- helpers (independent of the code under test)

def tiny_model(path, *, batch=1, size=(64, 96), field=None, label=None):
    """A static ONNX model: flow = channels 0 and 1 of x1 (identity), or a fixed (2, H, W) field."""
    h, w = size
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, c, h, w]) for n, c in
          (("x1", 3), ("x2", 3), ("flow", 2))]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("starts", [0]), ("ends", [2]), ("axes", [1]))]
    nodes = [helper.make_node("Slice", ["x1", "starts", "ends", "axes"], ["s1"]),
             helper.make_node("Slice", ["x2", "starts", "ends", "axes"], ["s2"]),
             helper.make_node("Sub", ["s2", "s2"], ["zero"])]  # uses x2, adds exactly 0
    if field is None:
        nodes.append(helper.make_node("Add", ["s1", "zero"], ["flow"]))
    else:
        inits.append(numpy_helper.from_array(np.asarray(field, np.float32)[None], "field"))
        nodes.append(helper.make_node("Add", ["field", "zero"], ["flow"]))
    graph = helper.make_graph(nodes, "tiny", io[:2], io[2:], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    if label:
        model.metadata_props.add(key=provenance.KEY, value=label)
    onnx.save(model, str(path))
    return str(path)


def write_frames(folder, images, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"frame_{i + 1:04d}.png" for i in range(len(images))]
    for name, img in zip(names, images):
        Image.fromarray(img).save(folder / name)
    return [folder / n for n in names]


def random_frames(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def normalised(img1, img2):
    """(2, H, W, 3) float64: each frame minus the per-channel mean over both frames, / 255."""
    both = np.stack([img1, img2]).astype(np.float64)
    return (both - both.mean(axis=(0, 1, 2))) / 255


def read_flo(path):
    raw = Path(path).read_bytes()
    assert raw[:4] == b"PIEH"
    w, h = np.frombuffer(raw[4:12], "<i4")
    return np.frombuffer(raw[12:], "<f4").reshape(h, w, 2)


def write_flo(path, flow):
    h, w = flow.shape[:2]
    Path(path).write_bytes(b"PIEH" + np.array([w, h], "<i4").tobytes() + flow.astype("<f4").tobytes())


def encode_video(path, images, codec="libx264", fps=12, **options):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv444p" if codec == "libx264" else "bgr0"  # ffv1: lossless RGB
        stream.options = options
        for img in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def decoded_frames(path):
    with av.open(str(path)) as f:
        return [frame.to_ndarray(format="rgb24") for frame in f.decode(video=0)]


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of the script's entry point, in this process."""
    with pytest.raises(SystemExit) as done:
        run_main(cli.main, [str(a) for a in argv])
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file()) \
        if Path(folder).exists() else []


# --------------------------------------------------------------------------- sources and names

def test_folder_is_natural_sorted_and_names_pairs_after_first_frames(tmp_path):
    write_frames(tmp_path / "f", random_frames(3, 8, 8), ["frame_10.png", "frame_2.png", "frame_1.jpg"])
    (tmp_path / "f" / "notes.txt").write_text("not a frame")
    source = frames.open_source([tmp_path / "f"])
    assert [os.path.basename(p) for p in source.files] == ["frame_1.jpg", "frame_2.png", "frame_10.png"]
    assert (source.kind, source.size, source.pair_count) == ("folder", (8, 8), 2)
    assert [source.pair_name(i) for i in range(2)] == ["frame_1", "frame_2"]


def test_identity_model_sees_each_pair_normalised_and_padded(tmp_path, capsys):
    """3 pairs, batch 2 (the last batch has a filler), pad mode: each .flo is channels 0, 1 of the
    first frame normalised with its own pair, cropped back from 64x96 to 50x70."""
    imgs = random_frames(4, 50, 70)
    write_frames(tmp_path / "f", imgs)
    model = tiny_model(tmp_path / "m.onnx", batch=2, size=(64, 96))
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o",
                              "--size-mode", "pad"], capsys)
    assert code == 0, err
    assert files_under(tmp_path / "o") == ["frame_0001.flo", "frame_0002.flo", "frame_0003.flo"]
    for i in range(3):
        expected = normalised(imgs[i], imgs[i + 1])[0][..., :2]
        np.testing.assert_allclose(read_flo(tmp_path / "o" / f"frame_{i + 1:04d}.flo"), expected, atol=1e-6)
    assert "3 .flo" in out and "pairs/s end to end" in out


def test_two_images_write_one_flo_named_after_the_first(tmp_path, capsys):
    a, b = write_frames(tmp_path, random_frames(2, 40, 60), ["frame1.png", "frame2.png"])
    code, _, err = run_cli(["--model", tiny_model(tmp_path / "m.onnx"), "--input", a, b,
                            "--output", tmp_path / "o"], capsys)
    assert code == 0, err
    assert files_under(tmp_path / "o") == ["frame1.flo"]
    assert read_flo(tmp_path / "o" / "frame1.flo").shape == (40, 60, 2)


def test_resize_at_an_odd_size_returns_a_known_flow_with_u_v_rescaled(tmp_path, capsys):
    """375x1242 frames, a static 384x1280 model. True motion (original pixels): a zoom plus a shift,
    u = 3 + 0.01 (x - 600), v = -2 - 0.02 (y - 180). Resized frames show the same motion stretched:
    at model pixel X the source pixel is x = (X + 0.5) w / W - 0.5, and a displacement of u source
    pixels is u W / w model pixels. The model returns exactly that field; predict must give back u, v."""
    (h, w), (H, W) = (375, 1242), (384, 1280)
    xs = (np.arange(W) + 0.5) * w / W - 0.5
    ys = (np.arange(H) + 0.5) * h / H - 0.5
    U = np.broadcast_to((3 + 0.01 * (xs - 600)) * W / w, (H, W))
    V = np.broadcast_to(((-2 - 0.02 * (ys - 180)) * H / h)[:, None], (H, W))
    model = tiny_model(tmp_path / "m.onnx", size=(H, W), field=np.stack([U, V]))
    a, b = write_frames(tmp_path, random_frames(2, h, w), ["a.png", "b.png"])
    code, _, err = run_cli(["--model", model, "--input", a, b, "--output", tmp_path / "o"], capsys)
    assert code == 0, err
    flow = read_flo(tmp_path / "o" / "a.flo")
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    np.testing.assert_allclose(flow[..., 0], 3 + 0.01 * (x - 600), atol=1e-4)
    np.testing.assert_allclose(flow[..., 1], -2 - 0.02 * (y - 180), atol=1e-4)
    # pad mode cannot bring 375x1242 frames to a smaller model
    code, _, err = run_cli(["--model", tiny_model(tmp_path / "s.onnx", size=(320, 1280)), "--input", a, b,
                            "--output", tmp_path / "o2", "--size-mode", "pad"], capsys)
    assert code == 2 and "larger than the model's 320x1280" in err and not (tmp_path / "o2").exists()
    assert "--height 384 --width 1280" in err  # the export that fits: 375x1242 up to multiples of 64


@needs_mini
def test_video_gives_one_flo_per_pair_and_one_output_frame_per_pair(tmp_path, capsys):
    scene = Path(MINI) / "training" / "clean" / "alley_1"
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(scene.glob("frame_*.png"))]
    assert len(imgs) == 4 and imgs[0].shape == (436, 1024, 3)
    encode_video(tmp_path / "clip.mp4", imgs, crf="0")  # lossless H.264 (4:4:4 still rounds RGB)
    model = tiny_model(tmp_path / "m.onnx", size=(448, 1024))
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "clip.mp4", "--output", tmp_path / "o",
                              "--size-mode", "pad", "--video", tmp_path / "o" / "flow.mp4", "--png"], capsys)
    assert code == 0, err
    assert files_under(tmp_path / "o") == ["clip/frame_0001.flo", "clip/frame_0001.png", "clip/frame_0002.flo",
                                           "clip/frame_0002.png", "clip/frame_0003.flo", "clip/frame_0003.png",
                                           "flow.mp4"]
    for i in range(3):  # each pair is (frame i, frame i+1) of the clip, in order
        expected = normalised(imgs[i], imgs[i + 1])[0][..., :2]
        got = read_flo(tmp_path / "o" / "clip" / f"frame_{i + 1:04d}.flo")
        assert np.abs(got - expected).mean() < 2 / 255  # colour conversion: ~1 grey level
    video = decoded_frames(tmp_path / "o" / "flow.mp4")
    picture = np.asarray(Image.open(tmp_path / "o" / "clip" / "frame_0001.png"))
    assert len(video) == 3 and video[0].shape == picture.shape and picture.shape[1] == 2 * 1024
    with av.open(str(tmp_path / "o" / "flow.mp4")) as f:
        assert f.streams.video[0].average_rate == 12  # the source's frame rate


def test_one_colour_radius_for_the_whole_sequence(tmp_path, capsys):
    from flownet2.score.visualize import flow_radius, flow_to_color
    imgs = random_frames(3, 32, 48, seed=1)
    imgs[2] = imgs[2] // 4  # a darker third frame: the second pair's flow (identity model) differs
    write_frames(tmp_path / "f", imgs)
    code, out, err = run_cli(["--model", tiny_model(tmp_path / "m.onnx", size=(64, 64)), "--input",
                              tmp_path / "f", "--output", tmp_path / "o", "--png", "--size-mode", "pad"], capsys)
    assert code == 0, err
    first = read_flo(tmp_path / "o" / "frame_0001.flo")
    radius = flow_radius(first)
    assert radius != flow_radius(read_flo(tmp_path / "o" / "frame_0002.flo"))
    for i in (1, 2):
        picture = np.asarray(Image.open(tmp_path / "o" / f"frame_{i:04d}.png"))
        flow = read_flo(tmp_path / "o" / f"frame_{i:04d}.flo")
        assert np.array_equal(picture[:32, 48:96], flow_to_color(flow, radius))


def test_pictures_of_stand_in_weights_say_so_in_the_caption(tmp_path, capsys):
    from flownet2.score.visualize import STAND_IN_RGB
    write_frames(tmp_path / "f", random_frames(2, 64, 96, seed=4))
    pictures = []
    for name, label in (("real", "checkpoint FlowNet2_checkpoint.pth.tar tensors:0123456789abcdef"),
                        ("standin", "stand-in:seed=0 tensors:0123456789abcdef")):
        model = tiny_model(tmp_path / f"{name}.onnx", size=(64, 128), label=label)
        code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / name, "--png",
                                "--size-mode", "pad"], capsys)
        assert code == 0, err
        pictures.append(np.asarray(Image.open(tmp_path / name / "frame_0001.png")).astype(int))
    real, standin = pictures
    changed = (real != standin).any(-1)
    assert changed[64:, 96:].any() and not changed[:64].any() and not changed[:, :96].any()
    reddish = lambda p: np.count_nonzero(np.abs(p - STAND_IN_RGB).sum(-1) < 60)
    assert reddish(standin[64:, 96:]) > reddish(real[64:, 96:])


def test_ground_truth_gives_epe_per_pair_and_the_stand_in_banner(tmp_path, capsys):
    imgs = random_frames(3, 20, 30, seed=2)
    write_frames(tmp_path / "f", imgs)
    rng = np.random.default_rng(3)
    gts = [rng.normal(0, 0.5, (20, 30, 2)).astype(np.float32) for _ in range(2)]
    (tmp_path / "gt").mkdir()
    for i, gt in enumerate(gts):
        write_flo(tmp_path / "gt" / f"frame_{i + 1:04d}.flo", gt)
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64), label="stand-in:seed=0")
    code, out, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o",
                              "--gt", tmp_path / "gt", "--size-mode", "pad"], capsys)
    assert code == 0, err
    epes = [np.sqrt(((normalised(imgs[i], imgs[i + 1])[0][..., :2] - gts[i]) ** 2).sum(-1)).mean()
            for i in range(2)]
    lines = out.splitlines()
    start = lines.index(provenance.STAND_IN_BANNER)
    assert lines[start + 1].startswith("frame_0001.flo  EPE = ")
    assert float(lines[start + 1].split("= ")[1]) == pytest.approx(epes[0], abs=2e-6)
    assert float(lines[start + 2].split("= ")[1]) == pytest.approx(epes[1], abs=2e-6)
    assert lines[start + 3].startswith("2 pairs, mean EPE = ")
    assert float(lines[start + 3].split("= ")[1]) == pytest.approx(np.mean(epes), abs=2e-6)
    assert lines[start + 4] == provenance.STAND_IN_BANNER
    # weights without a stand-in label: EPE, no banner
    model = tiny_model(tmp_path / "n.onnx", size=(64, 64), label="official:FlowNet2_checkpoint.pth.tar")
    code, out, _ = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "o2",
                            "--gt", tmp_path / "gt", "--size-mode", "pad"], capsys)
    assert code == 0 and "mean EPE" in out and provenance.STAND_IN_BANNER not in out


STANDINS = Path(__file__).parent / "standins"


@pytest.fixture
def stand_in_ais_bench(monkeypatch):
    """The stand-in ais_bench package (it runs the ONNX model its stand-in .om names), importable here
    and forgotten afterwards."""
    monkeypatch.syspath_prepend(str(STANDINS))
    yield
    for name in [m for m in sys.modules if m == "ais_bench" or m.startswith("ais_bench.")]:
        del sys.modules[name]


def test_an_ascend_om_runs_through_ais_bench_python_api(tmp_path, capsys, stand_in_ais_bench):
    onnx_path = tiny_model(tmp_path / "m.onnx", batch=2, size=(64, 64))
    subprocess.run([sys.executable, str(STANDINS / "standin_atc.py"), "--framework=5", f"--model={onnx_path}",
                    f"--output={tmp_path / 'm'}", "--input_format=NCHW", "--soc_version=Ascend310P3",
                    "--input_shape=x1:2,3,64,64;x2:2,3,64,64", "--log=debug"], check=True, capture_output=True)
    (tmp_path / "m.om.weights").write_text("stand-in:seed=0\n")
    imgs = random_frames(4, 40, 50, seed=4)
    write_frames(tmp_path / "f", imgs)
    code, out, err = run_cli(["--model", tmp_path / "m.om", "--device", "3", "--input", tmp_path / "f",
                              "--output", tmp_path / "o", "--size-mode", "pad"], capsys)
    from ais_bench.infer.interface import CALLS

    assert code == 0, err
    assert CALLS[0] == ("InferSession", {"device_id": 3, "model_path": str(tmp_path / "m.om")})
    assert [c for c in CALLS if c[0] == "infer"] == [("infer", {"shapes": [(2, 3, 64, 64)] * 2, "mode": "static"})] * 2
    assert "stand-in:seed=0" in out
    for i in range(3):
        expected = normalised(imgs[i], imgs[i + 1])[0][..., :2]
        np.testing.assert_allclose(read_flo(tmp_path / "o" / f"frame_{i + 1:04d}.flo"), expected, atol=1e-6)


# --------------------------------------------------------------------------- streaming

class SlowSession:
    """A session whose runs take a while: counts how far the reader has run ahead of the model."""

    def __init__(self, size, batch_size=1):
        self.size, self.batch_size, self.label = size, batch_size, None
        self.inputs = [("x1", [batch_size, 3, *size], np.dtype(np.float32))] * 2
        self.runs = 0

    def run(self, arrays):
        time.sleep(0.01)
        self.runs += 1
        return [np.zeros((self.batch_size, 2) + self.size, np.float32)], 10.0


class CountingSource(frames.FrameSource):
    def __init__(self, n, size, session):
        super().__init__("made-up", "folder", size, files=[f"f{i}.png" for i in range(n)], frame_count=n)
        self.session = session
        self.decoded = 0
        self.ahead = 0

    def frames(self):
        for _ in range(self.frame_count):
            self.decoded += 1
            self.ahead = max(self.ahead, self.decoded - self.session.runs)
            yield np.zeros(self.size + (3,), np.uint8)


def test_memory_stays_bounded_the_reader_never_runs_far_ahead(tmp_path):
    session = SlowSession((64, 64))
    source = CountingSource(60, (64, 64), session)
    result = predict.predict(session, source, output=tmp_path, size_mode="pad", progress=False)
    assert result.pairs == 59 and session.runs == 59
    # two queues of QUEUED_BATCHES batches, one batch in each stage, one being filled
    assert source.ahead <= 2 * predict.QUEUED_BATCHES + 4


def test_an_error_in_any_stage_stops_all_and_is_raised(tmp_path):
    class Broken(SlowSession):
        def run(self, arrays):
            if self.runs == 3:
                raise Flownet2Error("model fell over")
            return super().run(arrays)

    before = threading.active_count()
    session = Broken((64, 64))
    with pytest.raises(Flownet2Error, match="fell over"):
        predict.predict(session, CountingSource(40, (64, 64), session), output=tmp_path, size_mode="pad",
                        progress=False)
    assert threading.active_count() == before  # no thread left behind


# --------------------------------------------------------------------------- bad input

def _refused(argv, capsys, *names):
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    for name in names:
        assert str(name) in err
    return err


def test_bad_inputs_are_refused_in_one_line_with_nothing_written(tmp_path, capsys):
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64))
    out = tmp_path / "o"
    base = ["--model", model, "--output", out]
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    _refused(base + ["--input", tmp_path / "corrupt.mp4"], capsys, tmp_path / "corrupt.mp4", "cannot read video")
    write_frames(tmp_path / "one", random_frames(1, 8, 8))
    _refused(base + ["--input", tmp_path / "one"], capsys, tmp_path / "one", "1 frame(s) found")
    write_frames(tmp_path / "mixed", random_frames(2, 8, 8) + random_frames(1, 8, 9))
    _refused(base + ["--input", tmp_path / "mixed"], capsys, tmp_path / "mixed" / "frame_0003.png", "8x9")
    (tmp_path / "clip.xyz").write_bytes(b"x")
    _refused(base + ["--input", tmp_path / "clip.xyz"], capsys, tmp_path / "clip.xyz", "unknown extension")
    _refused(base + ["--input", tmp_path / "nope.mp4"], capsys, tmp_path / "nope.mp4", "not found")
    a, b = write_frames(tmp_path / "pair", random_frames(2, 8, 8))
    _refused(base + ["--input", a, b, "--video", out / "flow.gif"], capsys, out / "flow.gif")
    _refused(base + ["--input", a, b, "--gt", tmp_path / "nogt"], capsys, tmp_path / "nogt")
    _refused(base + ["--input", a, b, "--batch_size", "2"], capsys, model, "batches of 1")
    assert files_under(out) == []


def test_existing_outputs_need_force(tmp_path, capsys):
    model = tiny_model(tmp_path / "m.onnx", size=(64, 64))
    a, b = write_frames(tmp_path / "f", random_frames(2, 8, 8))
    argv = ["--model", model, "--input", a, b, "--output", tmp_path / "o"]
    assert run_cli(argv, capsys)[0] == 0
    before = (tmp_path / "o" / "frame_0001.flo").read_bytes()
    _refused(argv, capsys, tmp_path / "o" / "frame_0001.flo", "already exists")
    assert (tmp_path / "o" / "frame_0001.flo").read_bytes() == before
    assert run_cli(argv + ["--force"], capsys)[0] == 0
    # a video's folder: old numbered pairs are refused, and removed under --force
    encode_video(tmp_path / "clip.mkv", random_frames(3, 16, 16), codec="ffv1")
    (tmp_path / "o" / "clip").mkdir()
    (tmp_path / "o" / "clip" / "frame_0009.flo").write_bytes(b"old")
    argv = ["--model", model, "--input", tmp_path / "clip.mkv", "--output", tmp_path / "o"]
    _refused(argv, capsys, tmp_path / "o" / "clip" / "frame_0009.flo")
    assert run_cli(argv + ["--force"], capsys)[0] == 0
    assert files_under(tmp_path / "o" / "clip") == ["frame_0001.flo", "frame_0002.flo"]


def test_a_video_that_breaks_half_way_leaves_complete_flo_files_and_no_output_video(tmp_path):
    class BreaksAtFrame11(frames.FrameSource):
        def frames(self):
            for k in range(10):
                yield np.full((32, 32, 3), 10 * k, np.uint8)
            raise Flownet2Error(f"{self.path}: cannot decode frame 11 (Invalid data found)")

    source = BreaksAtFrame11("clip.mp4", "video", (32, 32), frame_count=None)
    out = tmp_path / "o"
    with pytest.raises(Flownet2Error, match="clip.mp4: cannot decode frame 11"):
        predict.predict(SlowSession((64, 64)), source, output=out, outputs=Outputs(video=out / "flow.mp4", png=True),
                        size_mode="pad", progress=False)
    written = files_under(out)
    assert "flow.mp4" not in written and not any(f.endswith(".tmp") for f in written)
    flos = [f for f in written if f.endswith(".flo")]
    assert flos == [f"clip/frame_{i:04d}.flo" for i in range(1, len(flos) + 1)]
    for f in flos:
        assert read_flo(out / f).shape == (32, 32, 2)


# --------------------------------------------------------------------------- the real network

@needs_mini
def test_same_flow_as_preprocess_runner_postprocess_on_a_real_sintel_pair(tmp_path, capsys):
    """alley_1 frames 1 -> 2 (436x1024), stand-in weights, padded to 448x1024: the .flo from
    Flownet2_predict.py equals the one the three-stage chain writes (postprocess --save-flo).
    About 20 s: two FlowNet2 forwards at Sintel's own size, which is the point (436 rows padded to 448)."""
    from flownet2.commands import postprocess as post
    from flownet2.commands import preprocess as pre
    from flownet2 import infer

    src = Path(MINI) / "training"
    one = tmp_path / "sintel" / "training"  # a one-pair Sintel: the network runs twice, not six times
    for sub, names in (("clean", ["frame_0001.png", "frame_0002.png"]), ("flow", ["frame_0001.flo"])):
        (one / sub / "alley_1").mkdir(parents=True)
        for name in names:
            os.symlink(src / sub / "alley_1" / name, one / sub / "alley_1" / name)
    assert pre.main(["--dataset", str(one), "--output", str(tmp_path / "prep"), "--batch_size", "1"]) == 0
    assert infer.main(["--model", "stand-in:0", "--backend", "torch", "--precision", "fp32", "--torch_mode",
                       "eager", "--model_size", "448,1024", "--input",
                       f"{tmp_path / 'prep' / 'image1'},{tmp_path / 'prep' / 'image2'}",
                       "--output", str(tmp_path / "run"), "--output_dirname", "bs1", "--batchsize", "1"]) == 0
    assert post.main(["--gt_path", str(tmp_path / "prep" / "gt"), "--output_path", str(tmp_path / "run" / "bs1"),
                      "--batch_size", "1", "--save-flo", str(tmp_path / "flo")]) == 0
    capsys.readouterr()
    code, out, err = run_cli(["--model", "stand-in:0", "--input", one / "clean" / "alley_1" / "frame_0001.png",
                              one / "clean" / "alley_1" / "frame_0002.png", "--output", tmp_path / "pred",
                              "--size-mode", "pad", "--backend", "torch", "--precision", "fp32"], capsys)
    assert code == 0, err
    assert "448x1024" in out and "stand-in:seed=0" in out
    ours = read_flo(tmp_path / "pred" / "frame_0001.flo")
    chain = read_flo(tmp_path / "flo" / "clean" / "alley_1" / "frame_0001.flo")
    assert ours.shape == chain.shape == (436, 1024, 2)
    assert np.abs(ours).max() > 0.1  # a real flow, not zeros on both sides
    np.testing.assert_allclose(ours, chain, rtol=0, atol=1e-4)

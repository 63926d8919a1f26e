"""Flow checked without ground truth (flownet2.score.quality), against references built here: a slow
per-pixel bilinear loop, a 4x4 case worked out by hand, and synthetic scenes whose forward and
backward flows and occluded pixels are known exactly."""
import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sintel_mini import MINI, needs_mini
from test_predict import files_under, normalised, random_frames, run_cli, tiny_model, write_frames

from flownet2.data.flo import write_flo
from flownet2.data.flow_formats import read_flow
from flownet2.data.synthetic import moving_object_sequence
from flownet2.score import quality
from flownet2.score.quality import PairScores

REPO = Path(__file__).resolve().parents[1]


def slow_sample(values, flow):
    """Bilinear sampling by its definition, one pixel at a time in Python floats."""
    h, w = flow.shape[:2]
    out = np.zeros(values.shape, np.float64)
    inside = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            px, py = x + float(flow[y, x, 0]), y + float(flow[y, x, 1])
            if not (0 <= px <= w - 1 and 0 <= py <= h - 1):
                continue
            inside[y, x] = True
            x0, y0 = math.floor(px), math.floor(py)
            ax, ay = px - x0, py - y0
            for yy, wy in ((y0, 1 - ay), (y0 + 1, ay)):
                for xx, wx in ((x0, 1 - ax), (x0 + 1, ax)):
                    if wx * wy:
                        out[y, x] += wx * wy * values[yy, xx]
    return out, inside


def test_sample_matches_the_definition():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 255, (5, 7, 3))
    flow = rng.uniform(-3, 3, (5, 7, 2)).astype(np.float32)
    flow[::2, ::3] = np.round(flow[::2, ::3])  # whole-pixel steps, some onto the last row/column
    flow[4, 6] = (0, 0)  # the corner itself
    got, inside = quality.sample(values, flow)
    want, want_inside = slow_sample(values, flow)
    assert inside.tolist() == want_inside.tolist()
    assert 0 < inside.sum() < inside.size  # both kinds of lookup occur
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_hand_computed_4x4():
    # every pixel moves one to the right, and comes back, except where noted
    forward = np.tile(np.array([1.0, 0.0], np.float32), (4, 4, 1))
    backward = -forward
    backward[0, 1] = (-1, 0.8)  # (0,0) reads it: d = (0, 0.8), 0.64 >= 0.01 * (1 + 1.64) + 0.5 = 0.5264
    forward[1, 3] = (-3, 0)  # reads (1,0) ...
    backward[1, 0] = (3, 0)  # ... which brings it back exactly: d = 0
    forward[2, 0] = (0.5, 0)  # reads halfway between (2,0) and (2,1):
    backward[2, 1] = (0, 0)  # (-1 + 0) / 2 = -0.5, so d = 0
    forward[3, 1] = (1, 0.5)  # its target row 3.5 lies below the picture: outside
    forward[3, 0] = (3, 0)  # reads (3,3) on the last column, inside ...
    backward[3, 3] = (-3, 0.75)  # d = (0, 0.75): 0.5625 < 0.01 * (9 + 9.5625) + 0.5 = 0.685625
    # (3,2) reads (3,3) too: d = (-2, 0.75), 4.5625 >= 0.01 * (1 + 9.5625) + 0.5 = 0.605625
    # column 3 moves out of the picture (x = 4), except (1,3)
    want = [[0, 1, 1, 0],
            [1, 1, 1, 1],
            [1, 1, 1, 0],
            [1, 0, 0, 0]]
    assert quality.consistency(forward, backward).astype(int).tolist() == want


def test_true_flows_mark_the_occluded_region():
    for seed in (0, 1):
        scene = moving_object_sequence(pairs=2, height=96, width=160, seed=seed)
        for forward, backward, occluded in zip(scene["forward"], scene["backward"], scene["occluded"]):
            inconsistent = ~quality.consistency(forward, backward)
            iou = (inconsistent & occluded).sum() / (inconsistent | occluded).sum()
            assert iou >= 0.9, (seed, iou)
            # what is left over: a 1 px band where a lookup mixes the object's and the background's motion
            assert inconsistent[~occluded].mean() < 0.01


def test_a_wrong_region_is_marked():
    scene = moving_object_sequence(pairs=1, height=96, width=160, seed=0)
    forward, backward = scene["forward"][0], scene["backward"][0]
    wrong = forward.copy()
    region = (slice(8, 28), slice(10, 40))
    wrong[region] += np.array([4.0, -3.0], np.float32)
    true_mask, wrong_mask = quality.consistency(forward, backward), quality.consistency(wrong, backward)
    assert true_mask[region].mean() > 0.9  # consistent before ...
    assert wrong_mask[region].mean() < 0.05  # ... and marked once wrong
    outside = np.ones(forward.shape[:2], bool)
    outside[region] = False
    assert (wrong_mask[outside] == true_mask[outside]).all()


def test_photometric_error_small_for_true_flow_large_for_wrong():
    scene = moving_object_sequence(pairs=1, height=96, width=160, seed=0)
    (f1, f2), forward, backward = scene["frames"], scene["forward"][0], scene["backward"][0]
    mask = quality.consistency(forward, backward)
    true_error = quality.photometric_error(f1, f2, flow=forward, mask=mask)
    wrong_error = quality.photometric_error(f1, f2, flow=forward + np.float32(2.0), mask=mask)
    # the true flow leaves only uint8 rounding and bilinear interpolation of 6 px fine texture
    assert true_error < 3.5
    assert wrong_error > 5 * true_error
    # scored as a pair (one lookup for the backward flow and the frame): the same mask and error
    scores, pair_mask = quality.score_pair(forward, backward, frames=(f1, f2))
    assert (pair_mask == mask).all() and scores.consistent == mask.mean()
    assert scores.photometric == pytest.approx(true_error, rel=1e-12)
    # a frame against itself with zero flow: exactly 0
    zero = np.zeros_like(forward)
    assert quality.photometric_error(f1, f1, flow=zero, mask=np.ones(zero.shape[:2], bool)) == 0.0
    assert math.isnan(quality.photometric_error(f1, f2, flow=forward, mask=np.zeros(zero.shape[:2], bool)))


def test_mean_magnitude():
    flow = np.zeros((2, 2, 2), np.float32)
    flow[0, 0] = (3, 4)  # 5 px
    flow[1, 1] = (np.nan, 0)  # left out
    assert quality.mean_magnitude(flow) == pytest.approx(5 / 3)


def scores(consistent, photometric):
    return [PairScores(c, p, 1.0) for c, p in zip(consistent, photometric)]


def test_flagging_rule():
    # median consistent 0.9: under 0.45 flags; median photometric 3: over 2 * 3 + 2 = 8 flags
    got = quality.flag_pairs(scores([0.9, 0.92, 0.3, 0.88, 0.91, 0.5], [3, 2.5, 3.1, 8.5, 3, 7.9]))
    assert got == [False, False, True, True, False, False]
    # a near-perfect video: median 0.2, limit 2.4; 2.3 is noise, not a cut
    assert quality.flag_pairs(scores([0.95] * 4, [0.1, 0.2, 2.3, 0.2])) == [False] * 4
    # no frames (photometric unknown): consistency alone; one pair cannot be below its own median
    assert quality.flag_pairs(scores([0.9, 0.1, 0.9], [math.nan] * 3)) == [False, True, False]
    assert quality.flag_pairs(scores([0.1], [50.0])) == [False]


def test_cli_on_files(tmp_path):
    scene = moving_object_sequence(pairs=1, height=96, width=160, seed=1)
    write_flo(tmp_path / "f.flo", scene["forward"][0])
    write_flo(tmp_path / "b.flo", scene["backward"][0])
    for n, frame in enumerate(scene["frames"]):
        Image.fromarray(frame).save(tmp_path / f"{n}.png")
    run = subprocess.run([sys.executable, "-m", "flownet2.score.quality", "--forward", "f.flo", "--backward",
                          "b.flo", "--frames", "0.png", "1.png", "--mask", "occ.png"],
                         cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    mask = np.asarray(Image.open(tmp_path / "occ.png"))
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255}
    occluded = scene["occluded"][0]
    iou = ((mask == 0) & occluded).sum() / ((mask == 0) | occluded).sum()
    assert iou >= 0.9
    assert f"consistent {(mask == 255).mean():.4f}" in run.stdout
    write_flo(tmp_path / "small.flo", scene["forward"][0][:64])
    bad = subprocess.run([sys.executable, "-m", "flownet2.score.quality", "--forward", "f.flo", "--backward",
                          "small.flo"], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO)})
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "small.flo" in bad.stderr


# ------------------------------------------------ end to end: Flownet2_predict.py --quality on a cut

H, W, STEP, REACH = 64, 128, 2, 4  # frames, the content's step per frame (px), the model's search range


def block_matching_model(path, batch=1):
    """An ONNX model that measures flow: u(x) = the d in -REACH..REACH minimising the 7x7 mean of
    sum_c |x1(x) - x2(x + d)| (x2 edge-padded), v = 0. On content moving by a whole-pixel step it gives
    that step forward and its negative backward; across a cut, whatever matches best."""
    inits, nodes, costs = [], [], []

    def const(name, value, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    nodes.append(helper.make_node("Pad", ["x2", const("pads", [0, 0, 0, REACH, 0, 0, 0, REACH])], ["x2p"],
                                  mode="edge"))
    for k, d in enumerate(range(-REACH, REACH + 1)):
        window = [const(f"start{k}", [REACH + d]), const(f"end{k}", [REACH + d + W]), const(f"axis{k}", [3])]
        nodes += [helper.make_node("Slice", ["x2p"] + window, [f"moved{k}"]),
                  helper.make_node("Sub", ["x1", f"moved{k}"], [f"diff{k}"]),
                  helper.make_node("Abs", [f"diff{k}"], [f"abs{k}"]),
                  helper.make_node("ReduceSum", [f"abs{k}", const(f"c{k}", [1])], [f"sum{k}"], keepdims=1),
                  helper.make_node("AveragePool", [f"sum{k}"], [f"cost{k}"], kernel_shape=[7, 7], pads=[3] * 4)]
        costs.append(f"cost{k}")
    nodes += [helper.make_node("Concat", costs, ["costs"], axis=1),
              helper.make_node("ArgMin", ["costs"], ["best"], axis=1, keepdims=1),
              helper.make_node("Cast", ["best"], ["index"], to=TensorProto.FLOAT),
              helper.make_node("Sub", ["index", const("reach", REACH, np.float32)], ["u"]),
              helper.make_node("Mul", ["u", const("zero", 0, np.float32)], ["v"]),
              helper.make_node("Concat", ["u", "v"], ["flow"], axis=1)]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, c, H, W])
          for n, c in (("x1", 3), ("x2", 3), ("flow", 2))]
    graph = helper.make_graph(nodes, "block_matching", io[:2], io[2:], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def cut_sequence():
    """Seven frames: a real Sintel frame moving left by STEP px per frame, with one frame of another
    scene spliced in after the third. Pairs 2 and 3 (0-based) cross the cut."""
    clean = Path(MINI) / "training" / "clean"
    base = np.asarray(Image.open(clean / "alley_1" / "frame_0001.png").convert("RGB"))[200:200 + H, 300:]
    other = np.asarray(Image.open(clean / "market_5" / "frame_0002.png").convert("RGB"))[100:100 + H, 500:500 + W]
    moving = [base[:, k * STEP:k * STEP + W] for k in range(6)]
    return moving[:3] + [other] + moving[3:]


def quality_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@needs_mini
def test_a_cut_is_flagged_end_to_end(tmp_path, capsys):
    frames = cut_sequence()
    folder = tmp_path / "frames"
    folder.mkdir()
    names = [f"f{k}.png" for k in range(len(frames))]
    for name, frame in zip(names, frames):
        Image.fromarray(frame).save(folder / name)
    model = block_matching_model(tmp_path / "bm.onnx")
    code, out, err = run_cli(["--model", model, "--input", folder, "--output", tmp_path / "out", "--quality",
                              "--backward", "--occlusion"], capsys)
    assert code == 0, err
    rows = quality_rows(tmp_path / "out" / "quality.csv")
    assert [r["pair"] for r in rows] == [f"f{k}" for k in range(6)]
    assert [r["flagged"] for r in rows] == ["0", "0", "1", "1", "0", "0"]
    assert "2 of 6 pairs flagged: f2, f3" in out
    # the flows themselves: -STEP forward, +STEP backward, away from the borders the content leaves
    inner = (slice(None), slice(REACH + 4, W - REACH - 4))
    forward = read_flow(tmp_path / "out" / "f0.flo")[0][inner]
    backward = read_flow(tmp_path / "out" / "f0_bwd.flo")[0][inner]
    assert (forward == (-STEP, 0)).all() and (backward == (STEP, 0)).all()
    occ = np.asarray(Image.open(tmp_path / "out" / "f0_occ.png"))
    # the content moves left: the first STEP columns leave the picture (occluded); the inner part consistent
    assert (occ[:, :STEP] == 0).all() and (occ[inner] == 255).all()
    good = [r for r in rows if r["flagged"] == "0"]
    assert all(float(r["photometric"]) == 0 and float(r["magnitude"]) == STEP for r in good)


@needs_mini
def test_a_collection_gets_a_table_per_video_and_one_at_the_top_and_resumes(tmp_path, capsys):
    from test_predict import encode_video
    videos = tmp_path / "videos"
    videos.mkdir()
    cut = cut_sequence()
    encode_video(videos / "cut.mkv", cut, codec="ffv1")  # lossless: the frames come back exactly
    encode_video(videos / "smooth.mkv", cut[:3] + cut[4:], codec="ffv1")
    model = block_matching_model(tmp_path / "bm.onnx")
    argv = ["--model", model, "--input", videos, "--output", tmp_path / "out", "--format", "jpg"]
    checks = ["--quality", "--occlusion", "--backward"]
    code, out, err = run_cli(argv + checks, capsys)
    assert code == 0, err
    assert [r["flagged"] for r in quality_rows(tmp_path / "out" / "cut" / "quality.csv")] == \
        ["0", "0", "1", "1", "0", "0"]
    assert [r["flagged"] for r in quality_rows(tmp_path / "out" / "smooth" / "quality.csv")] == ["0"] * 5
    top = {r["video"]: r for r in quality_rows(tmp_path / "out" / "quality.csv")}
    assert (top["cut"]["pairs"], top["cut"]["flagged"], top["smooth"]["pairs"], top["smooth"]["flagged"]) == \
        ("6", "2", "5", "0")
    assert "quality: 1 of 2 finished video(s) have flagged pairs" in out
    files = sorted(p.name for p in (tmp_path / "out" / "smooth").iterdir())
    assert files == sorted([".flownet2_done.json", "quality.csv"] + [
        f"{prefix}flow_{a}_{i:05d}.jpg" for prefix in ("", "bwd_") for a in "xy" for i in range(1, 6)] + [
        f"frame_{i:04d}_occ.png" for i in range(1, 6)])
    backward = read_flow(tmp_path / "out" / "smooth" / "bwd_flow_x_00001.jpg")[0]
    assert np.abs(backward[:, REACH + 4:W - REACH - 4] - (STEP, 0)).max() < 0.2  # jpg: 40/255 px steps
    # the same command again: both skipped, the table still has both
    code, out, _ = run_cli(argv + checks, capsys)
    assert code == 0 and "2 skipped" in out
    assert len(quality_rows(tmp_path / "out" / "quality.csv")) == 2
    # other settings into the same folder: refused; forced, the checks' files go
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "quality True (now False)" in err
    code, out, _ = run_cli(argv + ["--force"], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "out" / "smooth").iterdir()) == sorted(
        [".flownet2_done.json"] + [f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in range(1, 6)])


def test_the_backward_run_sees_each_pair_swapped_in_every_format(tmp_path, capsys):
    """3 pairs, batch 2 (a filler in the last batch), pad mode, an identity model (flow = channels 0, 1
    of its first input): each backward flow is the SECOND frame normalised with its pair, cropped back."""
    imgs = random_frames(4, 50, 70)
    write_frames(tmp_path / "f", imgs)
    model = tiny_model(tmp_path / "m.onnx", batch=2, size=(64, 96))
    for fmt, tolerance in (("flo", 1e-6), ("npy", 2e-3), ("kitti", 1 / 128 + 1e-6)):
        out_dir = tmp_path / fmt
        code, out, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", out_dir,
                                  "--size-mode", "pad", "--format", fmt, "--backward"], capsys)
        assert code == 0, err
        ext = {"flo": ".flo", "npy": ".npy", "kitti": ".png"}[fmt]
        assert files_under(out_dir) == sorted(f"frame_{i:04d}{s}{ext}" for i in (1, 2, 3) for s in ("", "_bwd"))
        for i in range(3):
            expected = normalised(imgs[i + 1], imgs[i])[0][..., :2]
            got = read_flow(out_dir / f"frame_{i + 1:04d}_bwd{ext}")[0]
            np.testing.assert_allclose(got, expected, atol=tolerance)
        assert "(2 model runs per pair: forward and backward)" in out
    # --quality alone computes the backward flow but writes only its table
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "q",
                            "--size-mode", "pad", "--quality"], capsys)
    assert code == 0, err
    assert files_under(tmp_path / "q") == ["frame_0001.flo", "frame_0002.flo", "frame_0003.flo", "quality.csv"]
    # a second run with more outputs into the same folder: refused without --force
    code, _, err = run_cli(["--model", model, "--input", tmp_path / "f", "--output", tmp_path / "q",
                            "--size-mode", "pad", "--quality", "--occlusion"], capsys)
    assert code == 2 and "already exists" in err

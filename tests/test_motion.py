"""Motion scores for curation (Flownet2_predict.py --motion-score): the scores against their definitions,
recomputed here from an independent decode of each clip, the frames picked by the test's own reading
of each sampling rule and a model whose flow is known in closed form; a CSV table in and its copy out,
failures, resume and shards. Ray: tests/test_collection_ray.py (it shares that module's local Ray).

Clips are real Sintel frames (a window sliding over alley_1, 48x96, 12 fps), scored at 64x128: a
landscape mp4 with a keyframe every 4 frames (so the sampler seeks), a short lossless mkv (25 frames:
shorter than Open-Sora's last index, 30) and a portrait mp4 (96x48, transposed as Open-Sora does).
"""
import csv
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sintel_mini import MINI, needs_mini
from test_predict import decoded_frames, encode_video, normalised, run_cli

from flownet2.data import sampling
from flownet2.score import motion, quality

av = pytest.importorskip("av")
SIZE = (64, 128)  # scored (and model) size
SCALE = 4.0  # the model's flow: u = SCALE * channel 0 of x1, v = SCALE * channel 1 of x2 (normalised frames)
FPS = 12
CLIPS = {"short.mkv": (25, "landscape"), "landscape.mp4": (36, "landscape"), "portrait.mp4": (31, "portrait")}


def uv_model(path, size=SIZE, batch=1):
    """Static ONNX model: flow = SCALE * (x1[:, 0], x2[:, 1]): each pair's two frames reach it, in order."""
    h, w = size
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, c, h, w]) for n, c in
          (("x1", 3), ("x2", 3), ("flow", 2))]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("s0", [0]), ("e0", [1]), ("s1", [1]), ("e1", [2]), ("axes", [1]))]
    inits.append(numpy_helper.from_array(np.array(SCALE, np.float32), "scale"))
    nodes = [helper.make_node("Slice", ["x1", "s0", "e0", "axes"], ["u1"]),
             helper.make_node("Slice", ["x2", "s1", "e1", "axes"], ["v2"]),
             helper.make_node("Concat", ["u1", "v2"], ["uv"], axis=1),
             helper.make_node("Mul", ["uv", "scale"], ["flow"])]
    graph = helper.make_graph(nodes, "uv", io[:2], io[2:], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def sliding_frames(n, shape):
    """n windows of one real Sintel frame, moving 3 px right and 2 px down per frame, at `shape`."""
    big = np.asarray(Image.open(Path(MINI) / "training" / "clean" / "alley_1" / "frame_0001.png").convert("RGB"))
    h, w = 2 * shape[0], 2 * shape[1]
    return [np.ascontiguousarray(cv2.resize(big[40 + 2 * k:40 + 2 * k + h, 100 + 3 * k:100 + 3 * k + w],
                                            shape[::-1], interpolation=cv2.INTER_AREA)) for k in range(n)]


def make_clips(folder):
    folder.mkdir(parents=True, exist_ok=True)
    for name, (count, kind) in CLIPS.items():
        frames = sliding_frames(count, (48, 96) if kind == "landscape" else (96, 48))
        if name.endswith(".mkv"):
            encode_video(folder / name, frames, codec="ffv1", fps=FPS)
        else:
            encode_video(folder / name, frames, fps=FPS, g="4", bf="0")
    (folder / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    return folder


# ------------------------------------------------- the reference: each step by its definition, here

def reference_indices(count, *, fps=None, indices=None):
    if fps is not None:
        step = max(min(round(FPS / fps), count - 1), 1)
        return list(range(0, count, step)), False
    inside = [i for i in indices if i < count]
    short = indices[-1] >= count
    return inside + ([count - 1] if short and inside[-1] != count - 1 else []), short


def reference_scores(path, **rule):
    decoded = decoded_frames(path)  # every frame, straight through
    used, short = reference_indices(len(decoded), **rule)
    picked = []
    for i in used:
        frame = decoded[i]
        if frame.shape[0] > frame.shape[1]:
            frame = frame.transpose(1, 0, 2)  # Open-Sora's "N C H W -> N C W H"
        picked.append(cv2.resize(frame, SIZE[::-1], interpolation=cv2.INTER_LINEAR))  # enlarging: bilinear
    flows = []
    for a, b in zip(picked, picked[1:]):
        n = normalised(a, b)
        flows.append(np.stack([SCALE * n[0][..., 0], SCALE * n[1][..., 1]], axis=-1))
    flows = np.stack(flows)
    magnitude = np.sqrt(flows[..., 0] ** 2 + flows[..., 1] ** 2)
    return {"flow": np.abs(flows).mean(), "motion": magnitude.mean(),
            "motion_relative": magnitude.mean() / math.sqrt(SIZE[0] ** 2 + SIZE[1] ** 2),
            "p90": np.mean([np.percentile(m, 90) for m in magnitude]), "pairs": len(flows),
            "frames_used": " ".join(map(str, used)), "status": "short" if short else "ok", "flows": flows}


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def check_scores(row, want):
    for column in ("flow", "motion", "motion_relative", "p90"):
        assert float(row[column]) == pytest.approx(want[column], abs=1e-6), (row["path"], column)
    assert (int(row["pairs"]), row["frames_used"], row["status"]) == (want["pairs"], want["frames_used"],
                                                                      want["status"])


# ----------------------------------------------------------------------------------------- tests

def test_sums_of_a_hand_built_flow():
    flow = np.zeros((4, 10, 2), np.float32)
    flow[..., 0], flow[..., 1] = 3, -4  # |w| = 5 everywhere ...
    flow[0, :2] = (0, 0)  # ... but two pixels: 38 of 40 at 5, so the 90th percentile is 5
    second = np.zeros((4, 10, 2), np.float32)
    sums = motion.MotionSums()
    sums.add(flow)
    sums.add(second)
    got = sums.scores()
    assert got["flow"] == pytest.approx((38 * 3 + 38 * 4) / (2 * 80), abs=1e-12)
    assert got["motion"] == pytest.approx(38 * 5 / 80, abs=1e-12)
    assert got["motion_relative"] == pytest.approx(38 * 5 / 80 / math.hypot(4, 10), abs=1e-12)
    assert got["p90"] == pytest.approx((5 + 0) / 2, abs=1e-12) and got["pairs"] == 2
    assert math.isnan(got["fb_consistent"])
    broken = flow.copy()
    broken[1, 1, 0] = np.nan
    sums.add(broken)
    assert all(math.isnan(sums.scores()[k]) for k in ("flow", "motion", "p90"))  # never a still clip
    assert (motion.keep(0.25, low=0.25), motion.keep(0.2, low=0.25), motion.keep(3.0, high=2.0)) == (1, 0, 0)


def test_sampling_rules_read_as_the_pipelines_do():
    assert sampling.Sampling(fps=2).step(Fraction(25)) == 12  # round(12.5): Python's round, as data-juicer's
    assert sampling.Sampling(fps=2).step(30, frame_count=10) == 9  # at most frames - 1
    assert sampling.Sampling(fps=50).step(24) == 1  # at least 1
    assert sampling.parse_indices("0,10,20,30") == (0, 10, 20, 30)
    with pytest.raises(Exception, match="increasing"):
        sampling.parse_indices("0,10,10")


def made_clips(tmp_path_factory, name):
    """(a new folder, the clips made in its clips/ folder); skipped without the Sintel sample."""
    if not MINI:
        pytest.skip("needs the Sintel sample")
    root = tmp_path_factory.mktemp(name)
    return root, make_clips(root / "clips")


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """The clips, a table of them (its own columns, not in sorted order) and a run of each rule."""
    root, clips = made_clips(tmp_path_factory, "motion")
    table = clips / "meta.csv"
    table.write_text('path,caption,aes\nshort.mkv,"short, lossless",4.5\nlandscape.mp4,slides,5\n'
                     'corrupt.mp4,broken,1\nportrait.mp4,tall,3.25\n', encoding="utf-8")
    return root, clips, table, uv_model(root / "uv.onnx")


def score(scored, capsys, out, *extra):
    root, clips, table, model = scored
    argv = ["--model", model, "--input", table, "--output", out, "--motion-score", "--new-size", "128x64",
            "--transpose-portrait", "--precision", "fp32", *extra]
    return run_cli(argv, capsys)


@needs_mini
def test_scores_equal_their_definitions_for_both_rules(scored, tmp_path, capsys):
    root, clips, table, _ = scored
    before = table.read_bytes()
    rules = (({"fps": 2}, ["--sample-fps", "2"]), ({"indices": (0, 10, 20, 30)}, ["--frames", "0,10,20,30"]))
    for rule, flags in rules:
        out = tmp_path / "-".join(flags)
        code, text, err = score(scored, capsys, out, *flags, "--min-motion", "1.0")
        assert code == 1, err  # the corrupt clip failed
        got = {r["path"]: r for r in rows(out / "motion.csv")}
        for name in CLIPS:
            want = reference_scores(clips / name, **rule)
            check_scores(got[name], want)
            assert got[name]["keep"] == str(int(want["motion"] >= 1.0))
        assert {r["status"] for r in got.values()} == ({"ok", "failed: cannot read video (Invalid data found when "
                                                        "processing input: 'the video')"} | (
            {"short"} if "indices" in rule else set()))
        assert got["corrupt.mp4"]["flow"] == "" and got["corrupt.mp4"]["keep"] == ""
        assert (out / "failed.txt").read_text().startswith("corrupt.mp4\tcannot read video")
        assert sorted(p.name for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")) == \
            ["failed.txt", "meta_flow.csv", "motion.csv"]  # no flow files
        assert "3 of 4 clip(s) scored" in text and "clips/s" in text and "model busy" in text
    assert table.read_bytes() == before


@needs_mini
def test_the_table_copy_keeps_columns_and_order_and_a_rerun_resumes(scored, tmp_path, capsys):
    root, clips, table, _ = scored
    out = tmp_path / "o"
    code, _, err = score(scored, capsys, out, "--frames", "0,10,20,30", "--quality")
    assert code == 1, err
    copy = rows(out / "meta_flow.csv")
    original = rows(table)
    assert [r["path"] for r in copy] == [r["path"] for r in original]  # the input's order
    assert list(copy[0])[:3] == ["path", "caption", "aes"]
    assert all({k: r[k] for k in ("path", "caption", "aes")} == o for r, o in zip(copy, original))
    motion_rows = {r["path"]: r for r in rows(out / "motion.csv")}
    assert all({k: r[k] for k in motion.COLUMNS} == {k: motion_rows[r["path"]][k] for k in motion.COLUMNS}
               for r in copy)
    # --quality: the fraction of pixels passing the forward-backward rule, over the pairs
    want = reference_scores(clips / "short.mkv", indices=(0, 10, 20, 30))
    backward = [np.stack([SCALE * normalised(b, a)[0][..., 0], SCALE * normalised(b, a)[1][..., 1]], axis=-1)
                for a, b in _pairs(clips / "short.mkv", want["frames_used"])]
    masks = [quality.consistency(f.astype(np.float32), b.astype(np.float32)) for f, b in zip(want["flows"], backward)]
    assert float(motion_rows["short.mkv"]["fb_consistent"]) == pytest.approx(np.mean(masks), abs=2e-3)
    # the same command again: nothing is scored twice, the tables are the same
    first = (out / "motion.csv").read_bytes(), (out / "meta_flow.csv").read_bytes()
    code, text, _ = score(scored, capsys, out, "--frames", "0,10,20,30", "--quality")
    assert code == 1 and "0 done, 3 skipped" in text
    assert ((out / "motion.csv").read_bytes(), (out / "meta_flow.csv").read_bytes()) == first
    # motion.csv (it has a path column) as the input of a run into the same folder: refused, kept
    code, _, err = run_cli(["--model", scored[3], "--input", out / "motion.csv", "--output", out,
                            "--motion-score", "--frames", "0,10,20,30", "--quality", "--force"], capsys)
    assert code == 2 and "would be written over the input" in err
    assert (out / "motion.csv").read_bytes() == first[0]


def _pairs(path, used):
    decoded = decoded_frames(path)
    picked = [cv2.resize(decoded[int(i)], SIZE[::-1], interpolation=cv2.INTER_LINEAR) for i in used.split()]
    return list(zip(picked, picked[1:]))


@needs_mini
def test_shard_halves_cover_the_table_once(scored, tmp_path, capsys):
    out = tmp_path / "o"
    halves = []
    for i in (1, 2):
        code, _, err = score(scored, capsys, out, "--sample-fps", "2", "--shard", f"{i}/2")
        assert code in (0, 1), err
        halves.append({r["path"]: r for r in rows(out / f"motion.shard-{i}-of-2.csv")})
    assert not set(halves[0]) & set(halves[1])
    assert set(halves[0]) | set(halves[1]) == set(CLIPS) | {"corrupt.mp4"}
    whole = {r["path"]: r for r in rows(out / "meta_flow.csv")}  # the copy after both: every row scored
    for half in halves:
        for name, r in half.items():
            assert {k: whole[name][k] for k in motion.COLUMNS} == {k: r[k] for k in motion.COLUMNS}
    assert sum(r["status"] == "ok" for r in whole.values()) == 3


def test_sampled_frames_are_the_frames_a_full_decode_counts(tmp_path):
    """Seeking (a keyframe every 4 frames) and straight decoding give the frames a full decode numbers
    so; a clip without a frame count (mkv) ends the rate rule at its end."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (32, 64, 3), dtype=np.uint8) for _ in range(40)]
    encode_video(tmp_path / "k4.mp4", frames, g="4", bf="0", sc_threshold="0")
    encode_video(tmp_path / "all.mkv", frames, codec="ffv1")
    for name in ("k4.mp4", "all.mkv"):
        decoded = decoded_frames(tmp_path / name)
        for rule in (sampling.Sampling(fps=1), sampling.Sampling(indices=(0, 10, 20, 45))):
            clip = sampling.open_clip(tmp_path / name, rule)
            got = list(clip.frames())
            want, short = reference_indices(40, fps=rule.fps, indices=rule.indices)
            assert clip.used == want and clip.short == short
            assert all((g == decoded[i]).all() for g, i in zip(got, clip.used))
            if name == "k4.mp4" and rule.fps:
                assert clip.seeks >= 3 and clip.decoded < 40 // 2  # sought, not decoded through
    # a clip shorter than one step: its first and last frames (data-juicer's step of at most frames - 1),
    # whether the container says how many frames it has (mp4) or not (mkv)
    for name, codec in (("five.mp4", "libx264"), ("five.mkv", "ffv1")):
        encode_video(tmp_path / name, frames[:5], codec=codec)
        clip = sampling.open_clip(tmp_path / name, sampling.Sampling(fps=1))
        list(clip.frames())
        assert clip.used == reference_indices(5, fps=1)[0] == [0, 4] and not clip.short

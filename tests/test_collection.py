"""Flownet2_predict.py on a video collection: folder trees and lists, one model load, per-video outputs,
markers and resume, bad videos recorded, shards, and Ray (local, for real).

Real short clips are encoded here (Sintel frames at 64x128 when the sample is present, else random
frames); a tiny ONNX model (flow = the first frame's channels 0, 1) stands in for the network where
the plumbing is the point (a slowed copy where a run must last long enough to be killed).
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from sintel_mini import MINI
from test_predict import encode_video, files_under, run_cli, tiny_model

from flownet2.fileio import folder_lock
from flownet2.runtime import collection

av = pytest.importorskip("av")
REPO = Path(__file__).resolve().parents[1]
GOOD = {"a/v1.mp4": 4, "a/v2.avi": 3, "b/v3.mkv": 4}  # video -> frames
BAD = {"b/corrupt.mp4": b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4, "b/empty.avi": b""}


def clip_frames(n, seed, size=(64, 128)):
    """n frames of one Sintel scene resized to `size` (random frames without the sample)."""
    if MINI:
        scenes = sorted((Path(MINI) / "training" / "clean").iterdir())
        files = sorted(scenes[seed % len(scenes)].glob("*.png"))
        return [np.asarray(Image.open(files[i % len(files)]).convert("RGB").resize(size[::-1], Image.BILINEAR))
                for i in range(n)]
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size + (3,), dtype=np.uint8) for _ in range(n)]


def make_collection(root, good=GOOD, bad=BAD):
    for k, (name, count) in enumerate(good.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        codec = {".avi": "ffv1", ".mkv": "ffv1"}.get(Path(name).suffix, "libx264")
        encode_video(root / name, clip_frames(count, k), codec=codec, **({"qp": "0"} if codec == "libx264" else {}))
    for name, data in bad.items():
        (root / name).write_bytes(data)
    return root


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    return make_collection(root / "videos"), tiny_model(root / "m.onnx", size=(64, 128))


def slow_model(path, size=(64, 128), convs=3):
    """tiny_model's identity flow (channels 0, 1 of x1) plus `convs` 64-channel 3x3 convolutions of x1
    multiplied by 0 and added: the flow is unchanged, each run takes ~0.1 s (a model worth killing)."""
    h, w = size
    rng = np.random.default_rng(0)
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, c, h, w]) for n, c in
          (("x1", 3), ("x2", 3), ("flow", 2))]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("starts", [0]), ("ends", [2]), ("axes", [1]))]
    inits.append(numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "zero"))
    nodes = [helper.make_node("Slice", ["x1", "starts", "ends", "axes"], ["s1"])]
    last, channels = "x2", 3
    for k in range(convs):
        inits.append(numpy_helper.from_array(rng.standard_normal((64, channels, 3, 3)).astype(np.float32) * 0.01,
                                             f"w{k}"))
        nodes.append(helper.make_node("Conv", [last, f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]))
        last, channels = f"c{k}", 64
    nodes += [helper.make_node("ReduceMean", [last], ["m"], axes=[1], keepdims=1),
              helper.make_node("Mul", ["m", "zero"], ["nothing"]),
              helper.make_node("Add", ["s1", "nothing"], ["flow"])]
    graph = helper.make_graph(nodes, "slow", io[:2], io[2:], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def outputs(folder):
    """{relative path: bytes} of every output file (markers and settings apart)."""
    return {f: (Path(folder) / f).read_bytes() for f in files_under(folder) if "/." not in "/" + f}


def test_a_folder_tree_gives_each_video_what_a_single_run_gives_and_lists_bad_videos(clips, tmp_path, capsys):
    videos, model = clips
    code, out, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o"], capsys)
    assert code == 1, err  # something failed
    assert "a folder tree of 5 video(s) in 2 folder(s)" in out
    assert "videos: 3 done, 0 skipped (finished before), 2 failed of 5" in out
    assert "model opened 1 time(s)" in out
    failed = dict(line.split("\t") for line in (tmp_path / "o" / "failed.txt").read_text().splitlines())
    assert failed == {"b/corrupt.mp4": "cannot read video (Invalid data found when processing input: 'the video')",
                      "b/empty.avi": "empty file (0 bytes)"}
    assert not (tmp_path / "o" / "b" / "corrupt").exists() and not (tmp_path / "o" / "b" / "empty").exists()
    got = outputs(tmp_path / "o")
    for name, count in GOOD.items():
        key = name.rsplit(".", 1)[0]
        single = tmp_path / "single" / key.replace("/", "_")
        code, _, err = run_cli(["--model", model, "--input", videos / name, "--output", single], capsys)
        assert code == 0, err
        stem = Path(key).name
        expected = {f"{key}/{f.split('/', 1)[1]}": data for f, data in outputs(single).items()}
        assert len(expected) == count - 1 and all(f.startswith(f"{key}/frame_") for f in expected)
        assert {f: d for f, d in got.items() if f.startswith(key + "/")} == expected, stem
        marker = json.loads((tmp_path / "o" / key / collection.MARKER).read_text())
        assert marker["pairs"] == count - 1 and marker["video"] == name
    # a rerun skips the finished videos and tries the failed ones again
    code, out, _ = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o"], capsys)
    assert code == 1 and "videos: 0 done, 3 skipped (finished before), 2 failed of 5" in out
    assert "pairs: 0 computed" in out and outputs(tmp_path / "o") == got


def test_a_list_of_videos_relative_to_its_folder_and_the_same_outputs(clips, tmp_path, capsys):
    videos, model = clips
    listing = videos / "train.txt"
    listing.write_text("# UCF-style list\nb/v3.mkv\n\na/v1.mp4\na/v1.mp4\n")
    try:
        jobs, found = collection.find_jobs(listing)
        assert [j.key for j in jobs] == ["a/v1", "b/v3"] and "a list of 2 video(s)" in found
        code, _, err = run_cli(["--model", model, "--input", listing, "--output", tmp_path / "o",
                                "--format", "npy"], capsys)
    finally:
        listing.unlink()
    assert code == 0, err
    assert files_under(tmp_path / "o") == sorted(
        [".flownet2_collection.json", "a/v1/.flownet2_done.json", "b/v3/.flownet2_done.json"]
        + [f"a/v1/frame_{i:04d}.npy" for i in (1, 2, 3)] + [f"b/v3/frame_{i:04d}.npy" for i in (1, 2, 3)])
    flow = np.load(tmp_path / "o" / "a" / "v1" / "frame_0001.npy")
    assert flow.dtype == np.float16 and flow.shape == (64, 128, 2)


def test_two_videos_that_would_share_a_folder_and_list_paths_outside_are_refused(tmp_path, capsys):
    (tmp_path / "v" / "a").mkdir(parents=True)
    for name in ("a/x.mp4", "a/x.avi"):
        (tmp_path / "v" / name).write_bytes(b"")
    code, _, err = run_cli(["--model", "stand-in:0", "--input", tmp_path / "v", "--output", tmp_path / "o"], capsys)
    assert code == 2 and "would write into one folder (a/x)" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "v" / "l.txt").write_text("../elsewhere.mp4\n")
    code, _, err = run_cli(["--model", "stand-in:0", "--input", tmp_path / "v" / "l.txt", "--output", tmp_path / "o"],
                           capsys)
    assert code == 2 and "outside the list's folder" in err
    assert not (tmp_path / "o").exists()


def test_a_model_that_cannot_be_opened_stops_the_run_in_one_line(clips, tmp_path, capsys):
    videos, _ = clips
    code, _, err = run_cli(["--model", tmp_path / "gone.onnx", "--input", videos, "--output", tmp_path / "o"], capsys)
    assert code == 2 and err.strip().splitlines()[-1].endswith("gone.onnx: model file does not exist")
    assert not (tmp_path / "o" / "failed.txt").exists()  # not five failed videos: one missing model


def test_shards_cover_the_sorted_list_exactly_once(clips, tmp_path, capsys):
    videos, model = clips
    jobs, _ = collection.find_jobs(videos)
    parts = [collection.shard(jobs, i, 3) for i in (1, 2, 3)]
    keys = [j.key for part in parts for j in part]
    assert sorted(keys) == sorted(j.key for j in jobs) and len(keys) == len(set(keys)) == 5
    assert collection.shard(jobs, 2, 3) == collection.shard(collection.find_jobs(videos)[0], 2, 3)  # deterministic
    code, out, _ = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o", "--shard", "2/3"], capsys)
    ran = {j.key for j in parts[1]}
    assert f"shard 2/3: {len(ran)} of them" in out
    assert {os.path.dirname(f) for f in files_under(tmp_path / "o") if "/" in f} == ran - {"b/corrupt", "b/empty"}
    assert code == (1 if ran & {"b/corrupt", "b/empty"} else 0)
    code, _, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o", "--shard", "4/3"], capsys)
    assert code == 2 and "between 1 and N" in err


def test_a_half_done_video_is_redone_without_stale_files_and_a_held_one_is_left_alone(clips, tmp_path, capsys):
    videos, model = clips
    clean = tmp_path / "clean"
    assert run_cli(["--model", model, "--input", videos, "--output", clean], capsys)[0] == 1
    out_dir = tmp_path / "o"
    half = out_dir / "a" / "v1"
    half.mkdir(parents=True)
    (half / "frame_0001.flo").write_bytes(b"half")  # a killed run's leftovers: no marker
    (half / "frame_0009.flo").write_bytes(b"stale")
    (half / ".frame_0002.flo.abcdefgh.tmp").write_bytes(b"tmp")
    with folder_lock(out_dir / "b" / "v3"):  # another run is writing b/v3 now
        code, out, _ = run_cli(["--model", model, "--input", videos, "--output", out_dir], capsys)
    assert code == 1  # the two bad videos
    assert "2 done, 0 skipped (finished before), 2 failed, 1 held by another run of 5" in out
    assert files_under(out_dir / "b" / "v3") == []  # untouched: the other run's
    out = run_cli(["--model", model, "--input", videos, "--output", out_dir], capsys)[1]
    assert "1 done, 2 skipped" in out and f"pairs: {GOOD['b/v3.mkv'] - 1} computed" in out
    assert outputs(out_dir) == outputs(clean)


def test_other_settings_into_the_same_folder_are_refused_unless_forced(clips, tmp_path, capsys):
    videos, model = clips
    assert run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o"], capsys)[0] == 1
    code, _, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o", "--format", "jpg"], capsys)
    assert code == 2 and "made with format 'flo' (now 'jpg')" in err
    code, out, _ = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o", "--format", "jpg",
                            "--rgb", "--start-index", "0", "--force"], capsys)
    assert "3 done" in out
    assert files_under(tmp_path / "o" / "a" / "v2") == [".flownet2_done.json"] + [
        f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in (0, 1)] + [f"img_{i:05d}.jpg" for i in (0, 1, 2)]
    # the forced rerun removed the old format's files: nothing stale
    assert not [f for f in files_under(tmp_path / "o") if f.endswith(".flo")]


def test_kill_9_mid_run_then_rerun_redoes_only_the_unfinished_videos(tmp_path):
    """The CLI in a subprocess with a model worth killing (~0.1 s a pair), killed once the first
    video's marker appears; the rerun computes only the unfinished videos' pairs (its summary), and
    its outputs equal an uninterrupted run's."""
    videos = make_collection(tmp_path / "v", good={f"c/clip{k}.mp4": 5 for k in range(4)}, bad={})
    model = slow_model(tmp_path / "slow.onnx")

    def cli(output, wait_for=None):
        argv = [sys.executable, str(REPO / "Flownet2_predict.py"), "--model", model, "--input", str(videos),
                "--output", str(output)]
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if wait_for is None:
            return proc.communicate()[0], proc.returncode
        deadline = time.monotonic() + 120
        while not wait_for.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    out_dir = tmp_path / "o"
    cli(out_dir, wait_for=out_dir / "c" / "clip0" / collection.MARKER)
    finished = len(list(out_dir.rglob(collection.MARKER)))
    assert 1 <= finished < 4  # killed in the middle
    out, code = cli(out_dir)
    assert code == 0
    assert f"videos: {4 - finished} done, {finished} skipped (finished before), 0 failed of 4" in out
    assert f"pairs: {4 * (4 - finished)} computed" in out  # the model ran only on the unfinished videos
    out, code = cli(tmp_path / "clean")
    assert code == 0 and "pairs: 16 computed" in out
    assert outputs(out_dir) == outputs(tmp_path / "clean")
    assert not [f for f in files_under(out_dir) if f.endswith(".tmp") or "lock" in f]


def test_ctrl_c_drops_the_current_video_and_says_how_to_resume(tmp_path):
    videos = make_collection(tmp_path / "v", good={f"c/clip{k}.mp4": 5 for k in range(3)}, bad={})
    model = slow_model(tmp_path / "slow.onnx")
    argv = [sys.executable, str(REPO / "Flownet2_predict.py"), "--model", model, "--input", str(videos),
            "--output", str(tmp_path / "o")]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = tmp_path / "o" / "c" / "clip0" / collection.MARKER
    deadline = time.monotonic() + 120
    while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate()[1]
    assert proc.returncode == 130 and "Run the same command again to resume" in err
    for folder in (tmp_path / "o" / "c").iterdir():  # each video: complete with its marker, or nothing
        names = os.listdir(folder)
        assert collection.MARKER in names or not names, (folder, names)


def test_the_same_command_twice_at_once_writes_each_video_once(tmp_path):
    """Two CLI processes on one output folder at the same time: every video is done by exactly one of
    them, the other skips it, and the files equal a single run's."""
    videos = make_collection(tmp_path / "v", good={f"c/clip{k}.mp4": 3 for k in range(6)}, bad={})
    model = slow_model(tmp_path / "slow.onnx")

    def start(output):
        argv = [sys.executable, str(REPO / "Flownet2_predict.py"), "--model", model, "--input", str(videos),
                "--output", str(output)]
        return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    both = [start(tmp_path / "o"), start(tmp_path / "o")]
    outs = [p.communicate()[0] for p in both]
    assert [p.returncode for p in both] == [0, 0], outs
    done = [int(next(line for line in out.splitlines() if line.startswith("videos: ")).split()[1]) for out in outs]
    assert sum(done) == 6, outs
    clean = start(tmp_path / "clean")
    clean.communicate()
    assert outputs(tmp_path / "o") == outputs(tmp_path / "clean")

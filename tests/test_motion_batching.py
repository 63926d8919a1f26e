"""Motion scores of a collection at a model batch above 1: the pairs of several clips share model runs
(runtime/motion_groups.py), and motion.csv is the clip-by-clip run's, row for row.

The clips and the model of known flow are test_motion.py's (real Sintel frames; flow = 4 x the first
frame's normalised red, the second's green), the model built here at batch 1 and at batch 4, Open-Sora's
frames 0, 10, 20, 30 (3 pairs a clip). Model runs are counted by a session that counts its calls.
"""
import collections
import math
import os
import shutil

import pytest
from test_motion import check_scores, made_clips, reference_scores, rows, uv_model

from flownet2.data import sampling
from flownet2.errors import Flownet2Error
from flownet2.runtime import collection, curation, sessions
from flownet2.score import motion
from flownet2.sizes import OutputSize

pytest.importorskip("av")
FRAMES = (0, 10, 20, 30)
GOOD = ["landscape.mp4", "landscape2.mp4", "portrait.mp4", "short.mkv", "short2.mkv"]  # the order jobs take


class Counting:
    """An opener (collection.Worker's `opener`) whose sessions count their model runs; `stop_at`: the
    run that raises KeyboardInterrupt instead (a Ctrl-C in the middle of a group), `fail_at`: the run
    that raises an error of the model's run."""

    def __init__(self, stop_at=None, fail_at=None):
        self.runs, self.stop_at, self.fail_at = 0, stop_at, fail_at

    def __call__(self, model, **options):
        session = sessions.open_model(model, **options)
        counter = self

        class Session:
            run_stream = None  # one run at a time, each counted (sessions.run_stream then calls run)

            def __getattr__(self, name):
                return getattr(session, name)

            def run(self, inputs):
                counter.runs += 1
                if counter.runs == counter.stop_at:
                    raise KeyboardInterrupt
                if counter.runs == counter.fail_at:
                    raise RuntimeError("the device lost the batch")
                return session.run(inputs)

        return Session()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root, folder = made_clips(tmp_path_factory, "batching")
    shutil.copy(folder / "landscape.mp4", folder / "landscape2.mp4")
    shutil.copy(folder / "short.mkv", folder / "short2.mkv")
    (folder / "good.txt").write_text("\n".join(GOOD) + "\n")
    (folder / "all.txt").write_text("\n".join(GOOD + ["corrupt.mp4"]) + "\n")
    return folder, uv_model(root / "uv1.onnx"), uv_model(root / "uv4.onnx", batch=4)


def score(model, out, listed, *, opener=None, **extra):
    """(tally, motion.csv rows) of a collection run through the library, as the CLI runs it."""
    jobs = collection.find_jobs(listed)[0]
    asked = {"transpose_portrait": True, "output_size": OutputSize(new_size=(64, 128)), **extra}
    settings = collection.Settings(model, str(out), motion=True, sample_frames=FRAMES, precision="fp32",
                                   flow_files=False, **asked)
    collection.check_settings(settings)
    tally = collection.Tally(len(jobs), collection.failed_list_path(settings.output))
    collection.run_jobs(jobs, collection.Worker(settings, opener), tally)
    curation.write_tables(jobs, str(out), keep=curation.Keep())
    return tally, rows(out / "motion.csv")


def same_rows(got, want):
    assert [r["path"] for r in got] == [r["path"] for r in want]
    for g, w in zip(got, want):
        for column in motion.COLUMNS:
            if column in ("flow", "motion", "motion_relative", "p90", "fb_consistent") and w[column] not in ("", "nan"):
                assert float(g[column]) == pytest.approx(float(w[column]), abs=1e-6), (w["path"], column)
            else:
                assert g[column] == w[column], (w["path"], column)


def leftovers(out):
    """Clip folders without a marker, and files in them other than the markers (lock files included)."""
    marker = collection.MARKER
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if (p.is_dir() and not (p / marker).exists())
                  or (p.is_file() and p.parent != out and p.name != marker))


def test_grouped_clips_share_model_runs_and_give_the_same_rows(clips, tmp_path):
    folder, uv1, uv4 = clips
    one, four = Counting(), Counting()
    tally1, want = score(uv1, tmp_path / "b1", folder / "good.txt", opener=one)
    tally, got = score(uv4, tmp_path / "b4", folder / "good.txt", opener=four)
    same_rows(got, want)
    assert tally1.loads == tally.loads == 1  # the model opened once, counted once, at batch 1 and 4
    pairs = [int(r["pairs"]) for r in want]
    assert pairs == [3] * 5 and one.runs == 15
    # clip by clip a batch of 4 would run each clip's 3 pairs and a repeat: 5 runs; grouped, 4
    assert four.runs == math.ceil(sum(pairs) / 4) == 4 < sum(math.ceil(p / 4) for p in pairs)
    assert tally.counts["done"] == 5 and tally.pairs == 15
    assert tally.model_sizes == {(64, 128)}
    by_path = {r["path"]: r for r in got}  # and against the definitions, from an independent decode
    check_scores(by_path["portrait.mp4"], reference_scores(folder / "portrait.mp4", indices=FRAMES))
    assert leftovers(tmp_path / "b4") == []


def test_with_the_backward_flow_the_consistency_and_the_files_match(clips, tmp_path):
    """--quality, --backward, --occlusion: the consistency column, and each clip's quality.csv, backward
    flow files and occlusion masks byte for byte as at batch 1."""
    folder, uv1, uv4 = clips
    four = Counting()
    checks = {"quality": True, "backward": True, "occlusion": True}
    _, want = score(uv1, tmp_path / "b1", folder / "good.txt", **checks)
    _, got = score(uv4, tmp_path / "b4", folder / "good.txt", opener=four, **checks)
    same_rows(got, want)
    assert all(r["fb_consistent"] not in ("", "nan") for r in got)
    assert four.runs == 2 * 4  # each batch forwards and backwards
    written = sorted(p.relative_to(tmp_path / "b1") for p in (tmp_path / "b1").rglob("*")
                     if p.parent != tmp_path / "b1" and p.name != collection.MARKER)
    assert len(written) == 5 * (1 + 3 + 3)  # quality.csv, 3 backward flows, 3 masks a clip
    assert all((tmp_path / "b4" / f).read_bytes() == (tmp_path / "b1" / f).read_bytes() for f in written)
    assert sorted(p.relative_to(tmp_path / "b4") for p in (tmp_path / "b4").rglob("*")
                  if p.parent != tmp_path / "b4" and p.name != collection.MARKER) == written


def test_a_clip_that_fails_in_a_group_fails_alone(clips, tmp_path, monkeypatch):
    """corrupt.mp4 cannot be opened; portrait.mp4 stops decoding after two frames (one pair already
    sent to the model): both fail with their reasons, the rest of their group is scored."""
    folder, uv1, uv4 = clips
    frames, reads = sampling.SampledClip.frames, collections.Counter()

    def breaking(self):
        reads[os.path.basename(self.path)] += 1
        for n, frame in enumerate(frames(self)):
            if n == 2 and self.path.endswith("portrait.mp4"):
                raise Flownet2Error(f"{self.path}: cannot decode (broken packet)")
            yield frame

    monkeypatch.setattr(sampling.SampledClip, "frames", breaking)
    _, want = score(uv1, tmp_path / "b1", folder / "all.txt")
    four = Counting()
    reads.clear()
    tally, got = score(uv4, tmp_path / "b4", folder / "all.txt", opener=four)
    same_rows(got, want)
    # groups [corrupt, landscape, landscape2, portrait] (3 + 3 + the 1 pair portrait sent), [short, short2];
    # the failure did not stop the group's stream (which would read the clips not finished again, alone)
    assert four.runs == math.ceil(7 / 4) + math.ceil(6 / 4)
    assert reads == dict.fromkeys(GOOD, 1)
    status = {r["path"]: r["status"] for r in got}
    assert status["portrait.mp4"] == "failed: cannot decode (broken packet)"
    assert status["corrupt.mp4"].startswith("failed: cannot read video")
    assert sorted(status.values())[-4:] == ["ok", "ok", "short", "short"]
    assert tally.counts == {"done": 4, "skipped": 0, "busy": 0, "failed": 2}
    failed = (tmp_path / "b4" / "failed.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == ["corrupt.mp4", "portrait.mp4"]
    assert leftovers(tmp_path / "b4") == []  # no folder of a failed clip, no lock file


def test_a_run_stopped_in_a_group_resumes(clips, tmp_path):
    """Ctrl-C during the third model run of the first group (clips 1 and 2 have all their pairs back):
    their markers stay, the rest is cleared; the same run again scores the rest only."""
    folder, uv1, uv4 = clips
    _, want = score(uv1, tmp_path / "b1", folder / "good.txt")
    with pytest.raises(KeyboardInterrupt):
        score(uv4, tmp_path / "b4", folder / "good.txt", opener=Counting(stop_at=3))
    out = tmp_path / "b4"
    assert sorted(p.parent.name for p in out.rglob(collection.MARKER)) == ["landscape", "landscape2"]
    assert leftovers(out) == []
    again = Counting()
    tally, got = score(uv4, out, folder / "good.txt", opener=again)
    assert (tally.counts["done"], tally.counts["skipped"]) == (3, 2)
    assert again.runs == math.ceil(3 * 3 / 4)
    same_rows(got, want)


def test_a_model_run_that_fails_in_a_group_sends_its_clips_to_the_clip_by_clip_run(clips, tmp_path):
    """The group's second model run fails (clip 1 is finished by then): no clip is blamed for the
    batch; clips 2 to 4 run again alone, where a failure would be their own (here none), and every row
    is the clip-by-clip run's."""
    folder, uv1, uv4 = clips
    _, want = score(uv1, tmp_path / "b1", folder / "good.txt")
    four = Counting(fail_at=2)
    tally, got = score(uv4, tmp_path / "b4", folder / "good.txt", opener=four)
    assert tally.counts["done"] == 5 and tally.loads == 1
    same_rows(got, want)
    # group 1: runs 1, 2 (failed); clips 2, 3, 4 alone: one run each; group 2 (short2): one run
    assert four.runs == 2 + 3 + 1


def test_clips_of_another_frame_size_run_in_a_stream_of_their_own(clips, tmp_path):
    """Scored at their own size (no --new-size), the portrait clip (96x48) is not the landscape ones'
    (48x96): within its group it runs in batches of its own; the rows are the clip-by-clip run's."""
    folder, uv1, uv4 = clips
    own = {"transpose_portrait": False, "output_size": OutputSize()}
    _, want = score(uv1, tmp_path / "b1", folder / "good.txt", **own)
    four = Counting()
    _, got = score(uv4, tmp_path / "b4", folder / "good.txt", opener=four, **own)
    same_rows(got, want)
    assert {r["path"]: r["status"] for r in got}["portrait.mp4"] == "ok"
    # group 1: landscape, landscape2, short (9 pairs at 48x96) and portrait (3 at 96x48); group 2: short2
    assert four.runs == math.ceil(9 / 4) + 1 + 1

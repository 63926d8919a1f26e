"""--ray on a real local Ray (no mock): CPU actors and a logical NPU resource give the plain run's files.

One local Ray for the module (started once, ~7-10 s: most of this file's time; no dashboard, a
small object store), shut down at the end.
"""
import sys

import pytest
from test_collection import make_collection, outputs
from test_predict import run_cli, tiny_model

from flownet2.runtime import collection, ray_pool

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, resources={"NPU": 2}, include_dashboard=False, object_store_memory=80 * 2 ** 20,
             log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """The collection, its tiny model and the plain one-process run's outputs."""
    root = tmp_path_factory.mktemp("ray")
    videos, model = make_collection(root / "videos"), tiny_model(root / "m.onnx", size=(64, 128))
    settings = collection.Settings(model, str(root / "plain"))
    jobs = collection.find_jobs(videos)[0]
    tally = collection.Tally(len(jobs), collection.failed_list_path(settings.output))
    collection.run_jobs(jobs, collection.Worker(settings), tally)
    assert tally.counts["done"] == 3 and tally.counts["failed"] == 2
    return videos, model, outputs(root / "plain"), (root / "plain" / "failed.txt").read_text()


@pytest.mark.parametrize("accelerator", ["cpu", "npu"])
def test_ray_actors_give_the_plain_runs_files(local_ray, plain, tmp_path, capsys, accelerator):
    videos, model, expected, failed = plain
    argv = ["--model", model, "--input", videos, "--output", tmp_path / "o", "--ray", "--accelerator", accelerator]
    code, out, err = run_cli(argv + (["--workers", "2"] if accelerator == "cpu" else []), capsys)
    assert code == 1, err
    assert "videos: 3 done, 0 skipped (finished before), 2 failed of 5" in out
    assert "model opened 2 time(s)" in out  # one per actor: two actors, each took a good video first
    assert outputs(tmp_path / "o") == expected
    assert sorted((tmp_path / "o" / "failed.txt").read_text().splitlines()) == sorted(failed.splitlines())
    # a retry, or a second submission of the same collection, skips what is finished
    code, out, _ = run_cli(argv, capsys)
    assert "0 done, 3 skipped" in out and outputs(tmp_path / "o") == expected


def test_npu_actors_see_their_device_as_0(local_ray):
    """Ray hands each of two NPU actors its own device through ASCEND_RT_VISIBLE_DEVICES (CANN then
    numbers it 0 inside the actor, which is why the workers run with device 0)."""
    kind, options, count = ray_pool._resources(local_ray, None, None)
    assert (kind, options["resources"], count) == ("npu", {"NPU": 1}, 2)

    @local_ray.remote(**options)
    class Probe:
        def visible(self):
            import os
            return os.environ.get("ASCEND_RT_VISIBLE_DEVICES")

    probes = [Probe.remote() for _ in range(2)]  # both alive at once: each holds one NPU
    assert sorted(local_ray.get([p.visible.remote() for p in probes])) == ["0", "1"]
    for p in probes:
        local_ray.kill(p)


def test_without_ray_one_line_names_the_install_command(monkeypatch, tmp_path, capsys, plain):
    videos, model, _, _ = plain
    monkeypatch.setitem(sys.modules, "ray", None)
    code, _, err = run_cli(["--model", model, "--input", videos, "--output", tmp_path / "o", "--ray"], capsys)
    assert code == 2 and err.strip() == 'error: --ray needs Ray: pip install "ray[default]>=2.9"'


def test_a_full_disk_stops_the_ray_run_and_the_same_command_resumes(local_ray, plain, tmp_path, capsys, monkeypatch):
    from test_scale import SmallDisk

    videos, model, expected, failed = plain
    disk = SmallDisk(tmp_path / "disk", "256k", budget=0, monkeypatch=monkeypatch)
    if not disk.mounted:  # the actors are other processes: only a real small file system reaches them
        pytest.skip("mounting a tmpfs needs root")
    try:
        argv = ["--model", model, "--input", videos, "--output", disk.path / "o", "--ray", "--accelerator", "cpu",
                "--workers", "1"]
        code, out, err = run_cli(argv, capsys)
        errors = [line for line in err.splitlines() if line.startswith("error")]
        assert code == 3 and len(errors) == 1 and "no space left on the device" in errors[0], err
        assert not (disk.path / "o" / "failed.txt").exists()
        disk.grow()
        code, out, err = run_cli(argv, capsys)
        assert code == 1 and "2 failed of 5" in out, err  # the two bad videos, as in the plain run
        assert outputs(disk.path / "o") == expected
    finally:
        disk.close()


def test_motion_scores_on_ray_are_the_one_process_rows(local_ray, tmp_path, capsys):
    from sintel_mini import MINI
    from test_motion import make_clips, rows, uv_model

    if not MINI:
        pytest.skip("needs the Sintel sample")
    clips, model = make_clips(tmp_path / "clips"), uv_model(tmp_path / "uv.onnx")
    argv = ["--model", model, "--input", clips, "--motion-score", "--sample-fps", "2", "--new-size", "128x64",
            "--transpose-portrait", "--precision", "fp32"]
    code, _, err = run_cli(argv + ["--output", tmp_path / "plain"], capsys)
    assert code == 1, err  # the corrupt clip
    code, out, err = run_cli(argv + ["--output", tmp_path / "ray", "--ray", "--accelerator", "cpu", "--workers", "2"],
                             capsys)
    assert code == 1 and "3 of 4 clip(s) scored" in out, err
    assert rows(tmp_path / "ray" / "motion.csv") == rows(tmp_path / "plain" / "motion.csv")
    # a model of batch 4: each actor call runs a group of clips in shared batches (runtime/motion_groups.py)
    model4 = uv_model(tmp_path / "uv4.onnx", batch=4)
    argv[1] = model4
    code, out, err = run_cli(argv + ["--output", tmp_path / "ray4", "--ray", "--accelerator", "cpu", "--workers", "2"],
                             capsys)
    assert code == 1 and "3 of 4 clip(s) scored" in out, err
    assert "model opened 1 time(s)" in out  # the 4 clips are one group: one call, on one actor
    assert rows(tmp_path / "ray4" / "motion.csv") == rows(tmp_path / "plain" / "motion.csv")

"""flownet2.stages: run_all.sh skips a stage only when its command and the content of what it reads
and wrote are as last time. Times are never compared, only contents (and a folder's listing)."""
import os
import subprocess
import sys

import pytest

from flownet2 import stages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def recorded(tmp_path):
    ck, data, out = tmp_path / "ck.pth.tar", tmp_path / "data", tmp_path / "out.onnx"
    ck.write_bytes(b"weights A" * 100)
    data.mkdir()
    (data / "frame_0001.png").write_bytes(b"png 1")
    out.write_bytes(b"model")
    command = ["python", "export.py", "--input_path", str(ck)]
    stamp = tmp_path / ".stamps" / "export"
    stages.record(stamp, command, [str(ck), str(data)], [str(out)])
    return stamp, command, ck, data, out


def test_same_content_same_command_is_skipped(recorded):
    stamp, command, ck, data, out = recorded
    assert stages.why_run(stamp, command, [str(ck), str(data)], [str(out)]) is None
    ck.write_bytes(ck.read_bytes())  # rewritten, same bytes, a newer time: still the same weights
    assert stages.why_run(stamp, command, [str(ck), str(data)], [str(out)]) is None


def test_other_weights_with_an_older_time_are_seen(recorded):
    stamp, command, ck, data, out = recorded
    before = ck.stat().st_mtime
    ck.write_bytes(b"weights B" * 100)  # same size, other content
    os.utime(ck, (before - 3600, before - 3600))  # older, as `cp -p`, `mv`, `tar x` can leave it
    assert stages.why_run(stamp, command, [str(ck), str(data)], [str(out)]) == f"{ck} changed since its last run"


def test_folder_listing_command_and_outputs(recorded):
    stamp, command, ck, data, out = recorded
    ins = [str(ck), str(data)]
    assert stages.why_run(stamp, command + ["--batch_size", "2"], ins, [str(out)]) == "its command changed"
    (data / "frame_0002.png").write_bytes(b"png 2")
    assert stages.why_run(stamp, command, ins, [str(out)]) == f"{data} changed since its last run"
    (data / "frame_0002.png").unlink()
    assert stages.why_run(stamp, command, ins, [str(out)]) is None
    out.write_bytes(b"other model")  # an output clobbered since: redo the stage
    assert stages.why_run(stamp, command, ins, [str(out)]) == f"{out} changed since its last run"
    out.unlink()
    assert stages.why_run(stamp, command, ins, [str(out)]) == f"{out} is missing"
    assert stages.why_run(stamp.parent / "never", command, ins, [str(out)]) == "no record of an earlier successful run"


def test_command_line_check_and_record(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a")
    args = [str(tmp_path / "st"), "--in", str(src), "", "--out", "--", "echo", "hi"]
    run = lambda *a: subprocess.run([sys.executable, "-m", "flownet2.stages", *a], cwd=REPO,
                                    capture_output=True, text=True)
    first = run("check", *args)
    assert first.returncode == 1 and first.stdout.strip() == "no record of an earlier successful run"
    assert run("record", *args).returncode == 0
    assert run("check", *args).returncode == 0
    src.write_text("b")
    assert run("check", *args).stdout.strip() == f"{src} changed since its last run"


def test_tools_are_the_engines(monkeypatch):
    from flownet2.runtime import engines

    monkeypatch.setattr(engines, "find_atc", lambda: None)
    assert stages.missing_tools("ascend")[0].startswith("atc not found (not on PATH, no CANN set_env.sh)")
    assert stages.missing_tools("torch") == []
    monkeypatch.setattr(engines, "find_atc", lambda: "/opt/atc")
    assert not any(line.startswith("atc") for line in stages.missing_tools("ascend"))

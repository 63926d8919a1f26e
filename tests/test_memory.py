"""flownet2.memory: what is available (meminfo and cgroups, from fake trees), the estimate's arithmetic
(from a hand-set table row), the largest short side that fits (against a loop over every side), and
open_model refusing a model too big for the machine before anything heavy is imported or exported."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from flownet2 import memory
from flownet2.errors import Flownet2Error
from flownet2.sizes import OutputSize, model_size

GIB = 2 ** 30


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.fixture
def meminfo(tmp_path):
    return write(tmp_path / "meminfo", "MemTotal:       24683772 kB\nMemFree:   100 kB\nMemAvailable:    2000 kB\n")


def available(tmp_path, meminfo, cgroup_lines):
    return memory.available_bytes(meminfo=meminfo, proc_cgroup=write(tmp_path / "cgroup", cgroup_lines),
                                  cgroup_root=str(tmp_path / "fs"))


def test_available_is_meminfo_without_a_cgroup_limit(tmp_path, meminfo):
    write(tmp_path / "fs" / "job" / "memory.max", "max\n")  # v2, no limit
    write(tmp_path / "fs" / "job" / "memory.current", "5000\n")
    assert available(tmp_path, meminfo, "0::/job\n") == 2000 * 1024


def test_available_is_the_tightest_cgroup_v2_limit_along_the_path(tmp_path, meminfo):
    fs = tmp_path / "fs"
    write(fs / "a" / "memory.max", "10000000\n")
    write(fs / "a" / "memory.current", "9000000\n")   # 1_000_000 left: tighter than meminfo's 2_048_000
    write(fs / "a" / "b" / "memory.max", "max\n")
    write(fs / "a" / "b" / "memory.current", "8000000\n")
    assert available(tmp_path, meminfo, "0::/a/b\n") == 1_000_000
    write(fs / "a" / "b" / "memory.max", "8300000\n")  # the job's own limit: 300_000 left
    assert available(tmp_path, meminfo, "0::/a/b\n") == 300_000


def test_available_reads_cgroup_v1_and_a_container_root(tmp_path, meminfo):
    v1 = tmp_path / "fs" / "memory"
    write(v1 / "memory.limit_in_bytes", "1500000\n")  # the container's root: its path below is not mounted
    write(v1 / "memory.usage_in_bytes", "1000000\n")
    lines = "4:memory:/process_api/873b\n3:cpuset:/\n0::/\n"
    assert available(tmp_path, meminfo, lines) == 500_000
    write(v1 / "memory.limit_in_bytes", "9223372036854771712\n")  # v1's "no limit"
    assert available(tmp_path, meminfo, lines) == 2000 * 1024
    write(v1 / "memory.usage_in_bytes", "9223372036854771712\n")  # usage over the limit: nothing left, not < 0
    write(v1 / "memory.limit_in_bytes", "1000\n")
    assert available(tmp_path, meminfo, lines) == 0


def test_available_is_none_where_nothing_is_readable(tmp_path):
    assert memory.available_bytes(meminfo=str(tmp_path / "none"), proc_cgroup=str(tmp_path / "none"),
                                  cgroup_root=str(tmp_path)) is None


FAKE = {("openvino", "bf16", "flownet2", "convert"): memory.Cost(3 * GIB, 1000.0, 0.5, 2.0),
        ("torch", "fp32", "flownet2", "run"): memory.Cost(2 * GIB, 3000.0)}


def fake_convert_peak(pixels):
    """Converting: the larger of its own line and PyTorch fp32's (the export's trace), by hand."""
    return max(3 * GIB + 1000 * pixels, 2 * GIB + 3000 * pixels)


@pytest.fixture
def fake_table(monkeypatch):
    monkeypatch.setattr(memory, "TABLE", FAKE)


def test_estimate_is_fixed_plus_per_pixel_times_batch_and_size(fake_table):
    est = memory.estimate(engine="torch", precision="fp32", member="flownet2", batch=2, size=(128, 192))
    assert est.peak == 2 * GIB + 3000 * 2 * 128 * 192 and est.seconds is None
    # a smaller member and another precision without a row of their own: bounded by FlowNet2 fp32's
    bounded = memory.estimate(engine="torch", precision="bf16", member="FlowNet2-CSS", batch=1, size=(64, 64))
    assert bounded.peak == 2 * GIB + 3000 * 64 * 64 and "bounded" in bounded.basis
    assert memory.estimate(engine="ascend", precision="fp32", member="flownet2", batch=1, size=(64, 64)) is None


@pytest.mark.parametrize("size", [(128, 192), (1024, 1024)])  # below and above where the two lines cross
def test_converting_costs_at_least_the_exports_pytorch_pass(fake_table, size):
    est = memory.estimate(engine="openvino", precision="bf16", member="flownet2", batch=2, size=size,
                          stage="convert")
    assert est.peak == fake_convert_peak(2 * size[0] * size[1])
    assert est.seconds == pytest.approx((0.5 + 2.0 * 2 * size[0] * size[1] / 1e6) / 2)


def brute_force_short_side(fits, frame):
    """The largest S in 1 .. short side whose model size fits, by trying every one."""
    best = None
    for short in range(1, min(frame) + 1):
        h, w = frame
        if min(h, w) > short:
            long = max(h, w)
            scaled = (2 * long * short + min(h, w)) // (2 * min(h, w))  # half up, in integers
            h, w = (short, scaled) if frame[0] <= frame[1] else (scaled, short)
        if fits(model_size(h, w)):
            best = short
    return best


@pytest.mark.parametrize("frame", [(3024, 4032), (6000, 8000), (1365, 1024), (437, 1001)])
@pytest.mark.parametrize("limit", [0, 64 * 64, 300 * 500, 1024 * 1408, 2000 * 2700])
def test_largest_short_side_matches_trying_every_side(frame, limit):
    def fits(size):
        return size[0] * size[1] <= limit

    assert memory.largest_short_side(fits, frame) == brute_force_short_side(fits, frame)


def test_refusal_names_the_estimate_what_is_available_and_the_side_that_fits(fake_table):
    size, frame = model_size(6000, 8000), (6000, 8000)
    with pytest.raises(Flownet2Error) as e:
        memory.check_fits(engine="openvino", precision="bf16", member="flownet2", batch=1, size=size,
                          stage="convert", frame_size=frame, available=4 * GIB, what="stand-in:0")
    line = str(e.value)
    assert "\n" not in line and line.startswith("stand-in:0: ")
    need, have = (float(v) for v in re.findall(r"([\d.]+) GiB", line))
    assert need == pytest.approx(fake_convert_peak(size[0] * size[1]) / GIB, abs=0.05)
    assert have == 4.0
    short = brute_force_short_side(lambda s: fake_convert_peak(s[0] * s[1]) <= 4 * GIB, frame)
    assert f"new_short={short} (--new-short {short})" in line
    h, w = OutputSize(new_short=short).of(frame)
    assert f"({w}x{h})" in line
    # what fits is not refused, and comes back as the estimate
    est = memory.check_fits(engine="openvino", precision="bf16", member="flownet2", batch=1,
                            size=model_size(h, w), stage="convert", available=4 * GIB)
    assert est.peak <= 4 * GIB


def test_describe_speaks_only_when_the_estimate_is_large(fake_table):
    est = memory.estimate(engine="openvino", precision="bf16", member="flownet2", batch=1, size=(1024, 1408),
                          stage="convert")
    assert memory.describe(est, available=100 * GIB) is None
    peak = fake_convert_peak(1024 * 1408) / GIB
    line = memory.describe(est, available=8 * GIB)
    assert line == f"estimated peak {peak:.1f} GiB of 8.0 GiB available, ~{0.5 + 2.0 * 1024 * 1408 / 1e6:.1f} s/pair"


def test_checkpoint_member_is_read_only_when_flownet2s_bound_is_large(fake_table, monkeypatch, tmp_path):
    from flownet2.runtime import engines, sessions

    checkpoint = write(tmp_path / "member.pth.tar", "x")
    monkeypatch.setattr(memory, "TABLE", {("torch", "fp32", "flownet2", "run"): memory.Cost(2 * GIB, 3000.0),
                                          ("torch", "fp32", "s", "run"): memory.Cost(GIB // 2, 500.0)})
    monkeypatch.setattr(memory, "available_bytes", lambda: 10 * GIB)
    monkeypatch.setattr(sessions, "_cuda_visible", lambda kind: False)
    read = []
    monkeypatch.setattr(sessions, "_checkpoint_member", lambda model, unsafe: read.append(model) or "s")
    torch_engine = engines.ENGINES["torch"]
    est = sessions.check_model_memory(checkpoint, torch_engine, batch_size=1, size=(64, 128), precision="fp32")
    assert est.peak == 2 * GIB + 3000 * 64 * 128 and read == []  # FlowNet2's bound: 2.02 of 10 GiB, not read
    est = sessions.check_model_memory(checkpoint, torch_engine, batch_size=1, size=(1024, 1024), precision="fp32")
    assert est.peak == GIB // 2 + 500 * 1024 * 1024 and read == [checkpoint]  # FlowNet2's: 4.9 GiB, large


def test_open_model_refuses_a_huge_stand_in_at_once_without_exporting(tmp_path):
    """An 8000x6000 pair on the CPU default (OpenVINO bf16, FlowNet2): refused within a second, before
    torch is imported or anything is written to the cache, on a machine said to have 16 GiB free."""
    code = textwrap.dedent("""
        import os, sys, time
        from flownet2 import memory
        from flownet2.runtime.sessions import open_model
        memory.available_bytes = lambda: 16 * 2 ** 30
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            open_model("stand-in:0", backend="openvino", size=(6016, 8000), precision="bf16",
                       frame_size=(6000, 8000))
        except Exception as e:
            print(type(e).__name__, time.process_time() - c0, time.perf_counter() - t0, "torch" in sys.modules)
            print(e)
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "FLOWNET2_CACHE": str(tmp_path / "cache")})
    head, line = done.stdout.strip().splitlines()
    kind, cpu, wall, torch_imported = head.split()
    # CPU seconds: what the check costs, whatever else shares the machine; wall, loosely, for a loaded CI
    assert kind == "Flownet2Error" and float(cpu) < 1.0 and float(wall) < 5.0 and torch_imported == "False"
    assert not (tmp_path / "cache" / "openvino").exists() or not os.listdir(tmp_path / "cache" / "openvino")
    assert "of memory available" in line and "16.0 GiB" in line and "--new-short" in line


def test_a_model_of_fixed_size_is_told_the_size_to_export_at(fake_table):
    """An .onnx runs at its own size whatever the frames: the hint is an export size that fits, the
    largest of that shape (one short side more does not)."""
    with pytest.raises(Flownet2Error) as e:
        memory.check_fits(engine="openvino", precision="bf16", member="flownet2", batch=1, size=(3072, 4032),
                          stage="convert", available=4 * GIB, what="m.onnx", fixed_size=True)
    width, height = (int(v) for v in re.search(r"export it at (\d+)x(\d+) or smaller", str(e.value)).groups())
    assert height % 64 == 0 and width % 64 == 0 and fake_convert_peak(height * width) <= 4 * GIB
    short = brute_force_short_side(lambda s: fake_convert_peak(s[0] * s[1]) <= 4 * GIB, (3072, 4032))
    assert (height, width) == model_size(*OutputSize(new_short=short).of((3072, 4032)))
    assert "--new-short" not in str(e.value)


def test_onnx_header_reads_what_onnx_load_reads(tmp_path):
    """The first input's dims and the metadata, past an initializer, against onnx's own parser; a
    truncated file and a text file are one-line errors."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from flownet2.onnx.header import read_header

    weights = numpy_helper.from_array(np.arange(300_000, dtype=np.float32), "w")  # 1.2 MB before the inputs
    x1 = helper.make_tensor_value_info("x1", TensorProto.FLOAT, [2, 3, 448, 1024])
    x2 = helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["batch", 3, 64, 128])
    flow = helper.make_tensor_value_info("flow", TensorProto.FLOAT, [2, 3, 448, 1024])
    graph = helper.make_graph([helper.make_node("Identity", ["x1"], ["flow"])], "g", [x1, x2], [flow], [weights])
    model = helper.make_model(graph)
    model.metadata_props.add(key="flownet2.weights", value="stand-in:seed=0 arch:FlowNet2-CSS tensors:ab")
    model.metadata_props.add(key="other", value="ü")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    loaded = onnx.load(str(path))
    expected = [d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim]
    dims, metadata = read_header(path)
    assert dims == expected == [2, 3, 448, 1024]
    assert metadata == {p.key: p.value for p in loaded.metadata_props}
    x2_only = helper.make_model(helper.make_graph([], "g", [x2], [x2]))
    onnx.save(x2_only, str(tmp_path / "symbolic.onnx"))
    assert read_header(tmp_path / "symbolic.onnx") == ([0, 3, 64, 128], {})  # "batch": symbolic
    (tmp_path / "cut.onnx").write_bytes(path.read_bytes()[:1000])
    (tmp_path / "text.onnx").write_text("not a model\n")
    for bad in ("cut.onnx", "text.onnx"):
        with pytest.raises(Flownet2Error, match=bad):
            read_header(tmp_path / bad)

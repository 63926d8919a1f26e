"""Reading the official checkpoint format safely, and clear errors for everything else."""
import collections
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from flownet2.errors import Flownet2Error
from flownet2.model.checkpoint import (
    check_state_dict,
    extract_state_dict,
    load_flownet2,
    load_raw,
    save_checkpoint,
    stand_in_state_dict,
)
from flownet2.model.networks import FlowNet2

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A stand-in checkpoint written in the official layout, plus the weights it holds."""
    model = FlowNet2()
    state = stand_in_state_dict(model, 7)
    path = tmp_path_factory.mktemp("ckpt") / "FlowNet2_checkpoint.pth.tar"
    save_checkpoint(path, state, epoch=3, best_epe=2.15)
    return path, state


def test_official_layout_is_legacy_pickle_and_round_trips(official):
    path, state = official
    head = path.read_bytes()[:2]
    assert head == b"\x80\x02"  # legacy torch pickle (protocol 2), not a zip archive
    model = FlowNet2()
    extras = load_flownet2(model, path)
    assert extras == {"epoch": 3, "best_EPE": 2.15}
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_stand_in_weights_are_seeded():
    model = torch.nn.Module()  # one FlowNet2 tensor is enough: each has a generator of its own (next test)
    model.flownetc = torch.nn.Module()
    model.flownetc.conv1 = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 7))
    a, b, c = (stand_in_state_dict(model, s) for s in (1, 1, 2))
    key = "flownetc.conv1.0.weight"
    assert torch.equal(a[key], b[key]) and not torch.equal(a[key], c[key])


def test_accepts_bare_zip_state_dict_with_module_prefix(tmp_path):
    state = {"module.conv.weight": torch.ones(2, 3), "module.conv.bias": torch.zeros(2)}
    path = tmp_path / "dp.pth"
    torch.save(state, path)  # zip format, DataParallel prefix, no wrapping dict
    loaded = extract_state_dict(load_raw(path), path)
    assert sorted(loaded) == ["conv.bias", "conv.weight"]


def _expected():
    return collections.OrderedDict((f"layer{i}.weight", torch.zeros(i + 1, 2)) for i in range(8))


def test_mismatch_error_lists_counts_and_first_keys():
    state = dict(_expected())
    del state["layer0.weight"]
    state["layer1.weight"] = torch.zeros(5, 5)
    state.update({f"extra{i}": torch.zeros(1) for i in range(7)})
    with pytest.raises(Flownet2Error) as err:
        check_state_dict(state, _expected(), "x.pth")
    msg = str(err.value)
    assert "expected 8 tensors, got 14" in msg
    assert "1 missing (layer0.weight)" in msg
    assert "7 unexpected (extra0, extra1, extra2, extra3, extra4, ... 2 more)" in msg
    assert "1 mis-shaped (layer1.weight (5, 5) != (2, 2))" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("content,needle", [
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
    (b"", "empty"),
    (b"hello world, not a model", "not a torch checkpoint"),
])
def test_non_checkpoints_are_named(tmp_path, content, needle):
    path = tmp_path / "FlowNet2_checkpoint.pth.tar"
    path.write_bytes(content)
    with pytest.raises(Flownet2Error, match=needle):
        load_raw(path)


def test_real_tar_archive_is_named(tmp_path):
    inner = tmp_path / "weights.pth"
    inner.write_bytes(b"x" * 10)
    path = tmp_path / "download.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(inner, arcname="weights.pth")
    with pytest.raises(Flownet2Error, match="tar archive"):
        load_raw(path)


def test_truncated_checkpoint(tmp_path, official):
    src, _ = official
    path = tmp_path / "cut.pth.tar"
    with open(src, "rb") as f:
        path.write_bytes(f.read(4096))
    with pytest.raises(Flownet2Error, match="cut.pth.tar"):
        load_flownet2(FlowNet2(), path)


class Custom:  # an arbitrary object: weights_only unpickling must refuse it
    pass


def test_unsafe_objects_need_the_explicit_flag(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": Custom()}, path)
    with pytest.raises(Flownet2Error, match="--unsafe-pickle"):
        load_raw(path)
    assert "state_dict" in load_raw(path, unsafe_pickle=True)


def test_cli_bad_checkpoint_one_line_no_output(tmp_path):
    bad = tmp_path / "FlowNet2_checkpoint.pth.tar"
    bad.write_bytes(b"<html>404</html>")
    out = tmp_path / "m.onnx"
    run = subprocess.run([sys.executable, str(REPO / "Flownet2_pth2onnx.py"), "--input_path", str(bad),
                          "--out_path", str(out)], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "HTML page" in run.stderr
    assert "Traceback" not in run.stderr
    assert list(tmp_path.iterdir()) == [bad]


# --------------------------------------------------------------------------- weights identity by content

def _fingerprint_here(state):
    """The fingerprint written out from its definition: sha256 over key, dtype, shape, bytes; keys sorted."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].contiguous()
        h.update(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.numpy().tobytes())
    return "tensors:" + h.hexdigest()[:16]


def test_labels_carry_a_fingerprint_of_the_tensors_not_of_the_name(tmp_path):
    """On FlowNet2-S, a quarter of FlowNet2's tensors (the labels are built the same way for every
    member; FlowNet2's own carry no arch tag, as test_export.py checks)."""
    from flownet2.model.checkpoint import load_model

    model, label = load_model("stand-in:s:3")
    state = model.state_dict()
    assert label == f"stand-in:seed=3 arch:FlowNet2-S {_fingerprint_here(state)}"
    # the same tensors under two names, in a bare (non-stand-in) checkpoint: same fingerprint, no "official"
    bare = {k: v.clone() for k, v in reversed(list(state.items()))}  # other key order in the file too
    for name in ("FlowNet2_checkpoint.pth.tar", "renamed.pth"):
        torch.save({"state_dict": bare}, tmp_path / name, _use_new_zipfile_serialization=False)
        _, got = load_model(str(tmp_path / name))
        assert got == f"checkpoint {name} arch:FlowNet2-S {_fingerprint_here(state)}"
    # other weights under the official file name: another fingerprint
    bare["conv1.0.bias"][0] += 1e-3
    torch.save({"state_dict": bare}, tmp_path / "FlowNet2_checkpoint.pth.tar", _use_new_zipfile_serialization=False)
    _, other = load_model(str(tmp_path / "FlowNet2_checkpoint.pth.tar"))
    assert other.startswith("checkpoint FlowNet2_checkpoint.pth.tar arch:FlowNet2-S tensors:") and other != got


def test_is_stand_in_reads_every_label_format():
    from flownet2.model.provenance import is_stand_in, stand_in_seed

    for label, stand_in, seed in [("stand-in:seed=4", True, 4), ("stand-in:seed=4 tensors:0123456789abcdef", True, 4),
                                  ("stand-in:seed=4,changed-after-saving tensors:ab", True, 4),
                                  ("official:FlowNet2_checkpoint.pth.tar", False, None),
                                  ("checkpoint FlowNet2_checkpoint.pth.tar tensors:0123456789abcdef", False, None),
                                  (None, False, None)]:
        assert is_stand_in(label) is stand_in and stand_in_seed(label) == seed, label


def test_stand_in_weights_are_seeded_per_key():
    """Reordering (or adding) modules leaves every other tensor's stand-in values as they were."""
    class Reordered:
        def __init__(self, state):
            self._state = collections.OrderedDict(reversed(list(state.items())))

        def state_dict(self):
            return self._state

    full = FlowNet2().state_dict()
    fusion = collections.OrderedDict((k, v) for k, v in full.items() if k.startswith("flownetfusion"))
    more = collections.OrderedDict((k, v) for k, v in full.items() if k.startswith("flownetc.conv1"))
    more.update(fusion)  # modules added in front of the fusion network
    a = stand_in_state_dict(Reordered(fusion), 5)
    b = stand_in_state_dict(Reordered(Reordered(more).state_dict()), 5)
    assert all(torch.equal(a[k], b[k]) for k in a) and len(b) > len(a)
    assert not torch.equal(stand_in_state_dict(Reordered(fusion), 6)[next(iter(a))], a[next(iter(a))])

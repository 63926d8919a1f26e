"""flownet2.patch: well-formed and minimal; applied to NVIDIA/flownet2-pytorch at 2e9e010 it gives our flow.

The upstream tests need NVIDIA/flownet2-pytorch at 2e9e010: the shared tarball (found by
tests/upstream.py), or a git checkout of your own:
    FLOWNET2_UPSTREAM=/path/to/flownet2-pytorch python -m pytest tests/test_patch.py
The source itself is never modified: it is cloned into a temporary folder first.
"""
import argparse
import contextlib
import os
import re
import sys

import pytest
import torch
from upstream import PATCH, ROOT, frame_batches, imported_models, patched_checkout, run

import flownet2.model.ops
from flownet2.model.checkpoint import stand_in_state_dict
from flownet2.model.networks import FlowNet2

PATCHED_FILES = {"models.py", "networks/FlowNetC.py"}
CRLF_FILES = {"models.py"}  # upstream's models.py has CRLF line ends; the patch must keep them
TOL_PX = 1e-4
SEED = 5

HUNK = re.compile(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(?: .*)?")


# ---------------------------------------------------------------- the patch file alone (no upstream)

def parse_patch(data):
    """{path: [hunk, ...]}, hunk = list of (tag, text) lines; asserts every header and count."""
    lines = data.split(b"\n")
    assert lines[-1] == b"", "patch must end with a newline"
    files, i = {}, 0
    while i < len(lines) - 1:
        line = lines[i].decode()
        if line.startswith(("diff --git ", "index ")):
            i += 1
            continue
        assert line.startswith("--- a/"), f"line {i + 1}: expected '--- a/<path>', got {line!r}"
        new = lines[i + 1].decode()
        assert new == "+++ b/" + line[6:], f"line {i + 2}: {new!r} does not match {line!r}"
        hunks = files.setdefault(line[6:], [])
        i += 2
        while i < len(lines) - 1 and lines[i].startswith(b"@@"):
            m = HUNK.fullmatch(lines[i].decode())
            assert m, f"line {i + 1}: malformed hunk header {lines[i]!r}"
            old_n = int(m[2]) if m[2] is not None else 1
            new_n = int(m[4]) if m[4] is not None else 1
            body, i = [], i + 1
            while old_n > 0 or new_n > 0:
                tag, text = lines[i][:1], lines[i][1:]
                assert tag in (b" ", b"-", b"+"), f"line {i + 1}: hunk shorter than its header says"
                old_n -= tag in (b" ", b"-")
                new_n -= tag in (b" ", b"+")
                body.append((tag.decode(), text))
                i += 1
            assert old_n == 0 and new_n == 0, f"line {i}: hunk longer than its header says"
            hunks.append(body)
        assert hunks, f"{line[6:]}: file header without hunks"
    return files


@pytest.fixture(scope="module")
def patch_files():
    return parse_patch(PATCH.read_bytes())


def test_patch_touches_only_models_and_flownetc(patch_files):
    assert set(patch_files) == PATCHED_FILES


def test_patch_hunks_carry_minimal_context(patch_files):
    # `git apply` needs one context line on each side of a hunk (unless at a file end); no more.
    for path, hunks in patch_files.items():
        for hunk in hunks:
            tags = "".join(tag for tag, _ in hunk)
            lead, trail = len(tags) - len(tags.lstrip(" ")), len(tags) - len(tags.rstrip(" "))
            assert lead <= 1 and trail <= 1, f"{path}: hunk with {lead}/{trail} context lines: {tags}"


def test_patch_keeps_upstream_line_ends(patch_files):
    # A CRLF lost on the way (editor, git autocrlf) makes every models.py hunk fail to apply.
    for path, hunks in patch_files.items():
        for hunk in hunks:
            for tag, text in hunk:
                assert text.endswith(b"\r") == (path in CRLF_FILES), f"{path}: line end of {tag}{text!r}"


def test_patch_takes_layers_from_toolkit_and_drops_compiled_packages(patch_files):
    added = [t.decode().strip() for hunks in patch_files.values() for h in hunks for tag, t in h if tag == "+"]
    removed = [t.decode().strip() for hunks in patch_files.values() for h in hunks for tag, t in h if tag == "-"]
    imports = [line for line in added if re.match(r"(from|import) ", line)]
    assert imports and all(line.startswith("from flownet2.model.ops import ") for line in imports)
    assert not any("_package" in line or "_cuda" in line for line in added)
    assert sum("_package" in line for line in removed) == 5  # 2 in each models.py branch, 1 in FlowNetC
    assert not any(line.startswith("class ") for line in added)  # no second copy of any layer


# ---------------------------------------------------------------- applied to an upstream checkout

@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return patched_checkout(tmp_path_factory)


def _python(code, cwd, pythonpath):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return run([sys.executable, "-c", code], cwd=cwd, env=env, timeout=120)


def test_import_models_needs_no_compiled_extension(checkout):
    # As a user runs it: from the checkout, toolkit on PYTHONPATH, no *_cuda module anywhere.
    code = ("import sys, models\n"
            "compiled = [m for m in sys.modules if m.endswith('_cuda') or m.startswith('networks.')\n"
            "            and '_package' in m]\n"
            "assert not compiled, compiled\n"
            "print(models.FlowNet2.__module__, models.Resample2d.__module__)")
    r = _python(code, checkout, str(ROOT))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["models", "flownet2.model.ops"]


def test_import_models_without_toolkit_says_how_to_install(checkout):
    # None in sys.modules blocks the import even where the toolkit is pip-installed.
    r = _python("import sys\nsys.modules['flownet2'] = None\nimport models", checkout, None)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode != 0
    assert last.startswith("ImportError: flownet2.patch needs the FlowNet2 toolkit")
    assert "pip install -e" in last and "PYTHONPATH" in last


@pytest.fixture(scope="module")
def models(checkout):
    with imported_models(checkout) as upstream_models:
        yield upstream_models


def test_layers_are_the_toolkits(models):
    assert models.Resample2d is flownet2.model.ops.Resample2d
    assert models.ChannelNorm is flownet2.model.ops.ChannelNorm
    assert models.FlowNetC.Correlation is flownet2.model.ops.Correlation


def _devices():
    cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    return ["cpu", pytest.param("cuda", marks=cuda)]


@contextlib.contextmanager
def _exact_fp32():
    # TF32 convolutions/matmuls on Ampere+ would differ by far more than 1e-4 px between the two graphs.
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def two_models(models):
    ours = FlowNet2().eval()
    state = stand_in_state_dict(ours, SEED)
    ours.load_state_dict(state)
    with torch.random.fork_rng(devices=[]):  # upstream's init draws from the global RNG
        theirs = models.FlowNet2(argparse.Namespace(rgb_max=255.0, fp16=False)).eval()
    theirs.load_state_dict(state, strict=True)  # same keys as the official checkpoint, nothing else
    return ours, theirs


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("h,w,batch", [(64, 128, 1), (64, 128, 2), (128, 192, 1), (128, 192, 2)])
def test_patched_upstream_gives_our_flow(two_models, device, h, w, batch):
    ours, theirs = (m.to(device) for m in two_models)
    # (a) upstream's own call: raw 0..255 frames, B x 3 x 2 x H x W; it normalises them itself.
    # Ours takes frames normalised by the toolkit's preprocessing.
    raw, x1, x2 = (t.to(device) for t in frame_batches(h, w, batch))
    with torch.no_grad(), _exact_fp32():
        want = ours(x1, x2)
        got_raw = theirs(raw)
        got_pair = theirs(x1, x2)  # (b) the export path added by the patch
    assert want.shape == got_raw.shape == got_pair.shape == (batch, 2, h, w)
    assert want.abs().max().item() > 2.0  # flows of pixels: the warps really move things
    err_raw = (got_raw - want).abs().max().item()
    err_pair = (got_pair - want).abs().max().item()
    print(f"{device} {batch}x{h}x{w}: max |flow diff| 5-D call {err_raw:.2e} px, (x1, x2) {err_pair:.2e} px")
    assert err_raw <= TOL_PX and err_pair <= TOL_PX

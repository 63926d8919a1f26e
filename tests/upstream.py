"""NVIDIA's flownet2-pytorch at 2e9e010 with flownet2.patch applied, for the tests that compare with it.

The source is $FLOWNET2_UPSTREAM (a git checkout of NVIDIA/flownet2-pytorch holding 2e9e010), else the
tarball shared/upstream/flownet2-pytorch-2e9e010.tar.gz inside the repository or beside it (a git
checkout packed). It is cloned into pytest's temporary folder, reset to 2e9e010 and patched there,
once per test session; the source itself is never modified. Tests skip with the reason when neither
is present.
"""
import contextlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from sintel_mini import MINI_DIR

from flownet2.data.images import normalise_pair, read_rgb

ROOT = Path(__file__).resolve().parents[1]
PATCH = ROOT / "flownet2.patch"
UPSTREAM_COMMIT = "2e9e010c98931bc7cef3eb063b195f1e0ab470ba"
TARBALL_NAME = "flownet2-pytorch-2e9e010.tar.gz"
TARBALLS = [ROOT / "shared" / "upstream" / TARBALL_NAME, ROOT.parent / "shared" / "upstream" / TARBALL_NAME]
SINTEL = MINI_DIR / "training" / "clean"
PAIRS = [("alley_1", 1), ("market_5", 2)]  # (scene, first frame): batch item 0 and 1
_CHECKOUT = {}  # the patched checkout of this test session


def run(cmd, cwd, **kw):
    return subprocess.run(cmd, check=False, cwd=cwd, capture_output=True, text=True, **kw)


def _source(tmp_path_factory):
    src = os.environ.get("FLOWNET2_UPSTREAM")
    if src:
        return src
    tarball = next((p for p in TARBALLS if p.is_file()), None)
    if tarball is None:
        pytest.skip("NVIDIA's flownet2-pytorch not found: set FLOWNET2_UPSTREAM to a git checkout, or put "
                    f"{TARBALL_NAME} in shared/upstream/")
    dst = tmp_path_factory.mktemp("upstream-source")
    with tarfile.open(tarball) as tar:
        tar.extractall(dst, filter="data")
    found = [p.parent for p in dst.glob("*/.git")]
    assert len(found) == 1, f"{tarball}: expected one git checkout inside, found {len(found)}"
    return str(found[0])


def patched_checkout(tmp_path_factory):
    """A fresh clone of the upstream source at 2e9e010, patched exactly as the docs say (cached)."""
    if "path" in _CHECKOUT:
        return _CHECKOUT["path"]
    for tool in ("git", "patch"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed")
    src = _source(tmp_path_factory)
    dst = tmp_path_factory.mktemp("upstream") / "flownet2-pytorch"
    r = run(["git", "clone", "--quiet", "--no-checkout", src, str(dst)], cwd=None)
    assert r.returncode == 0, f"{src}: not a git checkout ({r.stderr.strip()})"
    r = run(["git", "reset", "--quiet", "--hard", UPSTREAM_COMMIT], cwd=dst)
    assert r.returncode == 0, (f"{src}: has no commit {UPSTREAM_COMMIT[:7]} "
                               f"(a shallow clone? `git fetch --unshallow`): {r.stderr.strip()}")
    r = run(["git", "apply", "--check", str(PATCH)], cwd=dst)
    assert r.returncode == 0, f"git apply --check: {r.stderr}"
    with open(PATCH, "rb") as f:
        r = run(["patch", "-p1", "--batch"], cwd=dst, stdin=f)
    assert r.returncode == 0, f"patch -p1: {r.stdout}{r.stderr}"
    # Exact application only: no "Hunk #n succeeded at ... (offset/fuzz)".
    assert all(line.startswith("patching file ") for line in r.stdout.splitlines()), r.stdout
    _CHECKOUT["path"] = dst
    return dst


@contextlib.contextmanager
def imported_models(checkout):
    """Upstream's patched models.py imported in this process (and unloaded afterwards)."""
    names = ("models", "networks")
    saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in names}
    for k in saved:
        del sys.modules[k]
    sys.path.insert(0, str(checkout))
    try:
        import models as upstream_models
        yield upstream_models
    finally:
        sys.path.remove(str(checkout))
        for k in [k for k in sys.modules if k.split(".")[0] in names]:
            del sys.modules[k]
        sys.modules.update(saved)


def _frames(h, w, batch):
    """uint8 frame pairs, batch x 2 x (h, w, 3): Sintel crops where available, else seeded noise."""
    pairs = []
    for scene, n in PAIRS[:batch]:
        paths = [SINTEL / scene / f"frame_{n + k:04d}.png" for k in (0, 1)]
        if all(p.exists() for p in paths):
            # Crop from the middle of the 436 x 1024 frame: textured, with real motion.
            pairs.append([read_rgb(p)[150:150 + h, 400:400 + w] for p in paths])
        else:
            rng = np.random.default_rng(len(pairs))
            img = rng.integers(0, 256, (h + 4, w + 4, 3), dtype=np.uint8)
            pairs.append([img[2:2 + h, 2:2 + w], img[1:1 + h, 4:4 + w]])
    return pairs


def frame_batches(h, w, batch):
    """(raw, x1, x2): raw 0..255 frames as upstream's models take them (B x 3 x 2 x H x W), and the same
    frames normalised by the toolkit's preprocessing (B x 3 x H x W each), as our models take them."""
    pairs = _frames(h, w, batch)
    raw = torch.from_numpy(np.stack([np.stack(p) for p in pairs]).astype(np.float32))  # B,2,H,W,3
    norm = [normalise_pair(*p) for p in pairs]
    x1 = torch.from_numpy(np.stack([n[0] for n in norm]))
    x2 = torch.from_numpy(np.stack([n[1] for n in norm]))
    return raw.permute(0, 4, 1, 2, 3), x1, x2

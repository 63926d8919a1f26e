"""Where the real Sintel sample (sintel-mini: a few MPI-Sintel training scenes) lives, for every test.

$FLOWNET2_SINTEL_MINI, else shared/data/sintel-mini inside the repository or beside it. Tests that need
it are marked `@needs_mini` and skip with that reason when it is absent.
"""
import os
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
_CANDIDATES = [Path(p) for p in (os.environ.get("FLOWNET2_SINTEL_MINI"),) if p] + [
    _REPO / "shared" / "data" / "sintel-mini", _REPO.parent / "shared" / "data" / "sintel-mini"]
MINI_DIR = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[-1])  # a Path; not a folder when absent
MINI = str(MINI_DIR) if MINI_DIR.is_dir() else None  # the sample folder as a string, or None
needs_mini = pytest.mark.skipif(MINI is None, reason="sintel-mini sample not found (set FLOWNET2_SINTEL_MINI)")

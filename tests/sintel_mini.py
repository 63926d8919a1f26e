"""Where the real Sintel sample lives: $FLOWNET2_SINTEL_MINI, or shared/ inside or beside the repo."""
import os

import pytest

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CANDIDATES = [os.environ.get("FLOWNET2_SINTEL_MINI", ""),
               os.path.join(_REPO, "shared", "data", "sintel-mini"),
               os.path.join(_REPO, "..", "shared", "data", "sintel-mini")]
MINI = next((p for p in _CANDIDATES if p and os.path.isdir(p)), None)
needs_mini = pytest.mark.skipif(MINI is None, reason="sintel-mini sample not found (set FLOWNET2_SINTEL_MINI)")

"""The .flo reader/writer: byte-exact round trips, the real Sintel files, every kind of bad file."""
import os
import struct

import numpy as np
import pytest
from sintel_mini import MINI, needs_mini

from flownet2.data.flo import read_flo, read_flo_size, unknown_mask, write_flo
from flownet2.errors import Flownet2Error


def _hand_made_flo(path, flow):
    """Independent writer: the Middlebury layout spelled out with struct, value by value."""
    h, w, _ = flow.shape
    with open(path, "wb") as f:
        f.write(struct.pack("<f", 202021.25))
        f.write(struct.pack("<ii", w, h))
        for y in range(h):
            for x in range(w):
                f.write(struct.pack("<ff", flow[y, x, 0], flow[y, x, 1]))


def test_write_matches_hand_made_bytes_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.normal(0, 10, (5, 7, 2)).astype(np.float32)
    _hand_made_flo(tmp_path / "ref.flo", flow)
    write_flo(tmp_path / "ours.flo", flow)
    assert (tmp_path / "ours.flo").read_bytes() == (tmp_path / "ref.flo").read_bytes()
    back = read_flo(tmp_path / "ref.flo")
    assert back.shape == (5, 7, 2) and back.dtype == np.float32
    assert np.array_equal(back, flow)
    assert read_flo_size(tmp_path / "ref.flo") == (5, 7)


@needs_mini
def test_real_sintel_files_read_and_rewrite_byte_identical(tmp_path):
    folder = os.path.join(MINI, "training", "flow")
    paths = sorted(os.path.join(folder, s, f) for s in os.listdir(folder)
                   for f in os.listdir(os.path.join(folder, s)))
    assert len(paths) == 5
    for p in paths:
        flow = read_flo(p)
        assert flow.shape == (436, 1024, 2)
        assert os.path.getsize(p) == 3571724
        assert np.isfinite(flow).all() and not unknown_mask(flow).any()
        # independent check of the first pixel and the last from the raw bytes
        raw = open(p, "rb").read()
        assert struct.unpack("<ff", raw[12:20]) == tuple(flow[0, 0])
        assert struct.unpack("<ff", raw[-8:]) == tuple(flow[-1, -1])
        write_flo(tmp_path / "copy.flo", flow)
        assert (tmp_path / "copy.flo").read_bytes() == raw


def _write_raw(path, magic=202021.25, w=4, h=3, values=None):
    values = np.zeros(w * h * 2, "<f4") if values is None else values
    path.write_bytes(struct.pack("<fii", magic, w, h) + values.tobytes())
    return str(path)


def test_truncated_file_names_file_expected_and_actual(tmp_path):
    p = _write_raw(tmp_path / "t.flo", values=np.zeros(4 * 3 * 2 - 1, "<f4"))
    with pytest.raises(Flownet2Error) as e:
        read_flo(p)
    msg = str(e.value)
    assert p in msg and "truncated" in msg and str(12 + 96) in msg and str(12 + 92) in msg


def test_oversized_file_rejected(tmp_path):
    p = _write_raw(tmp_path / "o.flo", values=np.zeros(4 * 3 * 2 + 2, "<f4"))
    with pytest.raises(Flownet2Error, match="expected 108 bytes, actual 116"):
        read_flo(p)


def test_bad_magic_and_sizes(tmp_path):
    with pytest.raises(Flownet2Error, match="not a .flo file"):
        read_flo(_write_raw(tmp_path / "m.flo", magic=1.0))
    with pytest.raises(Flownet2Error, match="invalid .flo size"):
        read_flo(_write_raw(tmp_path / "z.flo", w=0, h=3, values=np.zeros(0, "<f4")))
    with pytest.raises(Flownet2Error, match="invalid .flo size"):
        read_flo(_write_raw(tmp_path / "n.flo", w=-4, h=3, values=np.zeros(24, "<f4")))
    (tmp_path / "short.flo").write_bytes(b"PIEH\x01")
    with pytest.raises(Flownet2Error, match="expected at least 12 bytes, actual 5"):
        read_flo(tmp_path / "short.flo")
    with pytest.raises(Flownet2Error, match="cannot read"):
        read_flo(tmp_path / "absent.flo")


def test_unknown_values_survive_and_are_flagged(tmp_path):
    flow = np.zeros((2, 3, 2), np.float32)
    flow[0, 1, 0] = 1e10
    flow[1, 2, 1] = -2e9
    write_flo(tmp_path / "u.flo", flow)
    back = read_flo(tmp_path / "u.flo")
    assert back[0, 1, 0] == np.float32(1e10)
    assert unknown_mask(back).tolist() == [[False, True, False], [False, False, True]]


def test_write_refuses_wrong_shape(tmp_path):
    with pytest.raises(ValueError):
        write_flo(tmp_path / "bad.flo", np.zeros((3, 4)))
    assert not os.listdir(tmp_path)

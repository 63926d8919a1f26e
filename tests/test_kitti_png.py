"""KITTI 16-bit PNG flow: read bytes built here from the PNG spec, write and decode them back by the spec."""
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from flownet2.data.kitti_png import read_kitti_flow, write_kitti_flow
from flownet2.errors import Flownet2Error


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png16(rgb):
    """A 48-bit RGB PNG of (H, W, 3) uint16, filter 0 on every row, big-endian samples (PNG spec)."""
    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _decode_png16(data):
    """The (H, W, 3) uint16 samples of a non-interlaced 48-bit PNG, unfiltered byte by byte (slow, by the spec)."""
    pos, idat = 8, b""
    while pos < len(data):
        (n,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (16, 2, 0)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, bpp, stride = zlib.decompress(idat), 6, w * 6
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            line[i] = (line[i] + (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]) & 0xFF
        out += line
        prev = line
    return np.frombuffer(bytes(out), ">u2").reshape(h, w, 3).astype(np.uint16)


def test_reads_hand_built_bytes(tmp_path):
    rgb = np.array([[[2 ** 15, 2 ** 15, 1], [2 ** 15 + 64, 2 ** 15 - 128, 1], [0, 65535, 1]],
                    [[2 ** 15 + 1, 2 ** 15 - 1, 7], [12345, 54321, 0], [65535, 0, 65535]]], np.uint16)
    path = tmp_path / "000000_10.png"
    path.write_bytes(_png16(rgb))
    flow, valid = read_kitti_flow(path)
    expect_u = (rgb[:, :, 0].astype(np.float64) - 32768) / 64
    expect_v = (rgb[:, :, 1].astype(np.float64) - 32768) / 64
    assert flow.dtype == np.float32 and flow.shape == (2, 3, 2)
    assert np.array_equal(flow[:, :, 0], expect_u) and np.array_equal(flow[:, :, 1], expect_v)
    assert valid.tolist() == [[True, True, True], [True, False, True]]
    assert flow[0, 1].tolist() == [1.0, -2.0] and flow[0, 2].tolist() == [-512.0, 65535 / 64 - 512]


def test_a_reader_that_drops_to_8_bits_would_fail_here(tmp_path):
    """Pillow opens the same file as 8-bit RGB: the fine steps of u vanish (why this reader uses OpenCV)."""
    rgb = np.full((1, 2, 3), 2 ** 15, np.uint16)
    rgb[0, 1, 0] += 1  # u = 1/64 px
    path = tmp_path / "f.png"
    path.write_bytes(_png16(rgb))
    assert np.asarray(Image.open(path).convert("RGB"))[0, 0, 0] == np.asarray(Image.open(path).convert("RGB"))[0, 1, 0]
    assert read_kitti_flow(path)[0][0, 1, 0] == pytest.approx(1 / 64)


def test_written_bytes_decode_by_the_spec(tmp_path):
    flow = np.array([[[0.0, 0.0], [1 / 64, -1 / 64], [511.98, -512.0]],
                     [[3.3, -7.01], [600.0, -600.0], [np.nan, 1.0]]], np.float32)
    valid = np.array([[True, True, True], [True, True, True]])
    path = tmp_path / "out.png"
    write_kitti_flow(path, flow, valid)
    samples = _decode_png16(path.read_bytes())
    u = np.clip(np.rint(np.nan_to_num(flow[:, :, 0].astype(np.float64)) * 64) + 32768, 0, 65535)
    v = np.clip(np.rint(flow[:, :, 1].astype(np.float64) * 64) + 32768, 0, 65535)
    finite = np.isfinite(flow).all(axis=2)
    assert np.array_equal(samples[:, :, 2], finite.astype(np.uint16))  # NaN -> invalid
    assert np.array_equal(samples[:, :, 0][finite], u[finite]) and np.array_equal(samples[:, :, 1][finite], v[finite])
    assert samples[1, 2, :2].tolist() == [0, 0]
    back, ok = read_kitti_flow(path)
    assert np.abs(back[finite] - flow[finite])[np.abs(flow[finite]) < 511].max() <= 1 / 128


def test_round_trip_keeps_1_64_px(tmp_path):
    rng = np.random.default_rng(0)
    flow = rng.uniform(-500, 500, (40, 70, 2)).astype(np.float32)
    write_kitti_flow(tmp_path / "r.png", flow)
    back, valid = read_kitti_flow(tmp_path / "r.png")
    assert valid.all() and np.abs(back - flow).max() <= 1 / 128 + 1e-6


def test_bad_files_get_one_line(tmp_path):
    with pytest.raises(Flownet2Error, match="not found"):
        read_kitti_flow(tmp_path / "none.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(Flownet2Error, match="junk.png: not a readable PNG"):
        read_kitti_flow(tmp_path / "junk.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb8.png")
    with pytest.raises(Flownet2Error, match="rgb8.png: a KITTI flow PNG has 3 channels of 16 bits, this one has 3 channel"):
        read_kitti_flow(tmp_path / "rgb8.png")
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "grey16.png")
    with pytest.raises(Flownet2Error, match="grey16.png: .* 1 channel"):
        read_kitti_flow(tmp_path / "grey16.png")

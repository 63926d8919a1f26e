"""The three custom layers against slow per-pixel references written from the spec, not from ops.py."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flownet2.model.ops import FLOW_NORM_SCALE, channel_norm, correlation, upsample_nearest, warp


def slow_correlation(f1, f2, max_disp, stride2):
    """out[b, iy*D + ix, y, x] = mean_c f1[b,c,y,x] * f2[b,c,y+dy,x+dx], f2 = 0 outside."""
    f1, f2 = f1.double().numpy(), f2.double().numpy()
    b, c, h, w = f1.shape
    offs = list(range(-max_disp, max_disp + 1, stride2))
    out = np.zeros((b, len(offs) ** 2, h, w))
    for iy, dy in enumerate(offs):
        for ix, dx in enumerate(offs):
            for y in range(h):
                for x in range(w):
                    y2, x2 = y + dy, x + dx
                    if 0 <= y2 < h and 0 <= x2 < w:
                        out[:, iy * len(offs) + ix, y, x] = (f1[:, :, y, x] * f2[:, :, y2, x2]).sum(1) / c
    return out


def slow_warp(img, flow):
    """Resample2d per pixel: weights from the unclamped point, each neighbour clamped on its own."""
    img, flow = img.double().numpy(), flow.double().numpy()
    b, c, h, w = img.shape
    out = np.zeros_like(img)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                xf, yf = x + flow[n, 0, y, x], y + flow[n, 1, y, x]
                a, bb = xf - math.floor(xf), yf - math.floor(yf)
                xl = min(max(math.floor(xf), 0), w - 1)
                xr = min(max(math.floor(xf) + 1, 0), w - 1)
                yt = min(max(math.floor(yf), 0), h - 1)
                yb = min(max(math.floor(yf) + 1, 0), h - 1)
                out[n, :, y, x] = ((1 - a) * (1 - bb) * img[n, :, yt, xl] + a * (1 - bb) * img[n, :, yt, xr]
                                   + (1 - a) * bb * img[n, :, yb, xl] + a * bb * img[n, :, yb, xr])
    return out


@pytest.mark.parametrize("mode", ["matmul", "slices"])
def test_correlation_channel_order_hand_built(mode):
    # One lit pixel in f1 at (5, 30); f2 lit at (5+2, 30-4): only channel iy*21+ix with
    # dy = 2 -> iy = 11, dx = -4 -> ix = 8, i.e. k = 239, may respond, with value 1*3/C.
    c = 4
    f1 = torch.zeros(1, c, 12, 48)
    f2 = torch.zeros(1, c, 12, 48)
    f1[0, :, 5, 30] = 1.0
    f2[0, :, 7, 26] = 3.0
    out = correlation(f1, f2, mode)
    assert out.shape == (1, 441, 12, 48)
    nz = torch.nonzero(out)
    assert nz.tolist() == [[0, 239, 5, 30]]
    assert out[0, 239, 5, 30].item() == pytest.approx(3.0)


@pytest.mark.parametrize("mode", ["matmul", "slices"])
def test_correlation_matches_slow_loop_with_zero_border(mode):
    # A map smaller than the 20 px reach: most displacements fall outside and must read zeros.
    g = torch.Generator().manual_seed(0)
    f1 = torch.randn(2, 5, 9, 13, generator=g)
    f2 = torch.randn(2, 5, 9, 13, generator=g)
    ref = slow_correlation(f1, f2, 20, 2)
    np.testing.assert_allclose(correlation(f1, f2, mode).numpy(), ref, atol=1e-5)


def test_correlation_modes_agree_at_flownet_scale():
    # FlowNetC's real shape class: 256 channels at 1/8 of 128x192.
    g = torch.Generator().manual_seed(1)
    f1 = torch.randn(2, 256, 16, 24, generator=g)
    f2 = torch.randn(2, 256, 16, 24, generator=g)
    diff = (correlation(f1, f2, "matmul") - correlation(f1, f2, "slices")).abs().max().item()
    assert diff <= 1e-5


def test_correlation_small_reach_interior():
    g = torch.Generator().manual_seed(2)
    f1 = torch.randn(1, 3, 10, 11, generator=g)
    f2 = torch.randn(1, 3, 10, 11, generator=g)
    ref = slow_correlation(f1, f2, 4, 2)
    for mode in ("matmul", "slices"):
        np.testing.assert_allclose(correlation(f1, f2, mode, max_disp=4, stride2=2).numpy(), ref, atol=1e-5)


def test_correlation_rejects_unknown_mode():
    with pytest.raises(ValueError, match="slices"):
        correlation(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), "fft")


def _flows_out_of_image(h, w):
    """Per-pixel flows: fractional and integer, pointing past every side and corner."""
    g = torch.Generator().manual_seed(3)
    flow = (torch.rand(2, 2, h, w, generator=g) - 0.5) * 4 * max(h, w)  # far outside often
    flow[0, :, 0, :] = torch.tensor([-3.0, -2.0]).view(2, 1)  # integer, up-left
    flow[0, :, -1, :] = torch.tensor([2.5, 1.25]).view(2, 1)  # fractional, down-right
    flow[1, 0, :, 0] = -0.25  # just left of the image
    flow[1, 1, 0, :] = -0.75  # just above
    flow[1, 0, :, -1] = 0.5  # between the last column and beyond
    return flow


def test_warp_matches_slow_loop_inside_and_outside():
    h, w = 7, 9
    g = torch.Generator().manual_seed(4)
    img = torch.randn(2, 3, h, w, generator=g)
    flow = _flows_out_of_image(h, w)
    np.testing.assert_allclose(warp(img, flow).numpy(), slow_warp(img, flow), atol=1e-5)


def test_warp_integer_shift_is_edge_replicated_roll():
    img = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    flow = torch.zeros(1, 2, 5, 6)
    flow[:, 0] = 2.0  # sample two pixels to the right
    flow[:, 1] = -1.0  # and one up
    expect = img.clone()
    for y in range(5):
        for x in range(6):
            expect[0, :, y, x] = img[0, :, max(y - 1, 0), min(x + 2, 5)]
    assert torch.equal(warp(img, flow), expect)


def test_warp_far_left_above_returns_edge_pixel_not_extrapolation():
    # The Ascend example clamps before weighting and extrapolates here; upstream returns the edge.
    img = torch.tensor([[[[1.0, 5.0], [3.0, 7.0]]]])
    flow = torch.full((1, 2, 2, 2), -2.5)
    assert torch.allclose(warp(img, flow), torch.ones(1, 1, 2, 2))


def test_warp_equals_border_grid_sample():
    # Independent formulation named in the spec: grid_sample(border, align_corners=True).
    h, w = 16, 24
    g = torch.Generator().manual_seed(5)
    img = torch.randn(2, 3, h, w, generator=g)
    flow = (torch.rand(2, 2, h, w, generator=g) - 0.5) * 40
    gy, gx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                            indexing="ij")
    grid = torch.stack((2 * (gx + flow[:, 0].double()) / (w - 1) - 1,
                        2 * (gy + flow[:, 1].double()) / (h - 1) - 1), dim=-1)
    ref = F.grid_sample(img.double(), grid, mode="bilinear", padding_mode="border", align_corners=True)
    assert (warp(img, flow).double() - ref).abs().max().item() < 1e-5


def test_channel_norm():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, 4, 3, generator=g)
    ref = np.linalg.norm(x.numpy(), axis=1, keepdims=True)
    np.testing.assert_allclose(channel_norm(x).numpy(), ref, rtol=1e-6)
    assert channel_norm(torch.tensor([[[[3.0]], [[4.0]]]])).item() == 5.0


def test_channel_norm_scaled_is_bit_identical_in_fp32():
    # Scaling by a power of two commutes with every rounding (no overflow or underflow here).
    g = torch.Generator().manual_seed(8)
    flow = torch.randn(2, 2, 16, 24, generator=g) * 300
    assert torch.equal(channel_norm(flow, FLOW_NORM_SCALE), channel_norm(flow))


def test_upsample_nearest_equals_floor_resize():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(2, 2, 5, 7, generator=g)
    ref = torch.empty(2, 2, 20, 28)
    for i in range(20):
        for j in range(28):
            ref[:, :, i, j] = x[:, :, i // 4, j // 4]  # out[i] = in[floor(i / 4)]
    assert torch.equal(upsample_nearest(x, 4), ref)
    assert torch.equal(upsample_nearest(x, 4), F.interpolate(x, scale_factor=4.0, mode="nearest"))


def test_warp_with_flows_of_hundreds_of_px_matches_slow_loop():
    # Wider than 512 px and flows past the border on both sides: the integer index path and the
    # clip of the flow offset to +-1024 (a power of two >= W) change nothing.
    h, w = 3, 600
    g = torch.Generator().manual_seed(10)
    img = torch.randn(1, 2, h, w, generator=g)
    flow = (torch.rand(1, 2, h, w, generator=g) - 0.5) * 3000
    flow[0, 1] /= 300
    np.testing.assert_allclose(warp(img, flow).numpy(), slow_warp(img, flow), atol=1e-5)

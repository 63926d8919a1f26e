"""FlowNet2's three custom layers in plain, ONNX-exportable PyTorch (no CUDA extension, no GridSample).

Semantics follow the NVIDIA port's CUDA kernels (flownet2-pytorch, networks/*_package) exactly:
- correlation: out[k] = mean_c f1[c, y, x] * f2[c, y+dy, x+dx], f2 zero outside, k = iy*21 + ix.
- warp (Resample2d): bilinear, weights from the unclamped sample point, each neighbour clamped.
- channel norm: sqrt(sum_c x^2), no epsilon.
The nn.Module wrappers at the bottom take the upstream constructor arguments so that
flownet2.patch can swap them in for the compiled layers.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_DISPLACEMENT = 20
STRIDE2 = 2
CORRELATION_MODES = ("matmul", "slices")


def _offsets(max_disp, stride2):
    return list(range(-max_disp, max_disp + 1, stride2))


def correlation(f1, f2, mode="matmul", max_disp=MAX_DISPLACEMENT, stride2=STRIDE2):
    """Cost volume of two B x C x H x W maps -> B x D*D x H x W, D = 2*max_disp/stride2 + 1."""
    if mode == "matmul":
        return _correlation_matmul(f1, f2, max_disp, stride2)
    if mode == "slices":
        return _correlation_slices(f1, f2, max_disp, stride2)
    raise ValueError(f"correlation mode must be one of {CORRELATION_MODES}, got {mode!r}")


def _correlation_slices(f1, f2, max_disp, stride2):
    # One shifted window of the zero-padded f2 per displacement: the form Ascend's ATC accepts.
    # The 1/C of the mean is folded into f1 once, before the products, so no product or partial sum
    # is C times larger than the result (fp16 headroom); with C a power of two this is exact in fp32.
    _, c, h, w = f1.shape
    p = max_disp
    f1s = f1 / c
    f2p = F.pad(f2, (p, p, p, p))
    out = []
    for dy in _offsets(max_disp, stride2):
        for dx in _offsets(max_disp, stride2):
            win = f2p[:, :, p + dy : p + dy + h, p + dx : p + dx + w]
            out.append((f1s * win).sum(dim=1, keepdim=True))
    return torch.cat(out, dim=1)


def _correlation_matmul(f1, f2, max_disp, stride2):
    # Per vertical offset: every row of f1 against the whole zero-padded row of f2 (one batched
    # MatMul), then pick the D diagonals x' = x + dx with one Gather. ~5 nodes per offset instead
    # of ~4 per displacement, and BLAS instead of 441 elementwise passes.
    b, c, h, w = f1.shape
    p = max_disp
    wp = w + 2 * p
    offsets = _offsets(max_disp, stride2)
    f1r = f1.permute(0, 2, 3, 1) / c  # B,H,W,C; the 1/C of the mean folded in once (fp16 headroom)
    f2p = F.pad(f2, (p, p, p, p)).permute(0, 2, 1, 3)  # B,H+2p,C,W+2p
    # Flat index into the W x (W+2p) product of one row: column x + p + dx of row x.
    # Built on f1's device: a host-to-device copy here would break CUDA graph capture.
    xs = torch.arange(w, device=f1.device).unsqueeze(1)
    cols = xs + p + torch.arange(-max_disp, max_disp + 1, stride2, device=f1.device).unsqueeze(0)
    index = xs * wp + cols  # W x D
    rows = []
    for dy in offsets:
        f2row = f2p[:, p + dy : p + dy + h]  # B,H,C,W+2p
        prod = torch.matmul(f1r, f2row).reshape(b, h, w * wp)  # B,H,W*(W+2p)
        rows.append(prod[:, :, index])  # B,H,W,Dx
    d = len(offsets)
    vol = torch.cat(rows, dim=3).reshape(b, h, w, d, d)  # ..., Dy, Dx: dy slow, dx fast
    return vol.permute(0, 3, 4, 1, 2).reshape(b, d * d, h, w)


def _reach(size):
    # Smallest power of two >= size: exact in fp16 and bf16, so a Clip to +-reach means the same there.
    return 1 << max(size - 1, 0).bit_length()


def _clamped_positions(step, size, shape, stride=1):
    """Integer grid + step, clamped to [0, size-1], and the next positions (+1) clamped: two int32
    tensors of B*H*W positions along one axis (`shape` puts the grid on that axis), times `stride`.

    `step` is floor(flow) as a float; it is clipped to +-reach (a power of two >= size, exact in
    every float format; beyond it every neighbour clamps to the same edge anyway) and cast to int32.
    The clamp itself is a lookup in a small constant table: opset 11 has no integer Clip/Max/Min, and
    a float clamp would hold an absolute pixel coordinate. Python scalars stay out of the integer
    arithmetic so the exporter adds no int64 casts.
    """
    size = int(size)  # static under ONNX tracing (where shapes are tensors)
    reach = _reach(size)
    shift = torch.clamp(step, -reach, reach).to(torch.int32)  # a flow offset, |shift| <= reach
    grid = torch.arange(reach, size + reach, dtype=torch.int32, device=step.device).view(shape)
    # table[k] = clamp(k - reach, 0, size - 1) * stride, for k in [0, size + 2 * reach] (a constant)
    table = torch.arange(-reach, size + reach + 1, dtype=torch.int32, device=step.device).clamp(0, size - 1) * stride
    pos = (grid + shift).reshape(-1)  # in [0, size - 1 + 2 * reach]
    return torch.index_select(table[:-1], 0, pos), torch.index_select(table[1:], 0, pos)


def warp(img, flow):
    """Sample img (B,C,H,W) at (x+u, y+v) like Resample2d: border-replicate bilinear.

    Safe in reduced precision: no float ever holds an absolute pixel coordinate. Neighbour indices
    are integer pixel grid + integer part of the flow (int32); the bilinear weights come from the
    fractional part of the flow alone (u - floor(u), exact in any float format). This is Resample2d's
    rule (weights from the unclamped point x + u, each neighbour clamped on its own) without the
    rounding of x + u to a float. The four neighbours are columns of one (C, B*H*W) table (the
    flattened frame), fetched with one Gather.
    """
    b, c, h, w = img.shape
    u, v = flow[:, 0], flow[:, 1]  # B,H,W
    fu, fv = torch.floor(u), torch.floor(v)
    a, bw = u - fu, v - fv  # B,H,W: fractional parts in [0, 1)
    xl, xr = _clamped_positions(fu, w, (1, 1, w))  # B*H*W each
    hw = int(h) * int(w)
    yt, yb = _clamped_positions(fv, h, (1, h, 1), stride=int(w))  # row offsets y*W
    # Column of pixel (n, y, x) in the table: n*H*W + y*W + x; int32 constants, no Python scalars.
    top, bottom = yt.view(b, hw), yb.view(b, hw)
    if b > 1:
        base = torch.arange(0, int(b) * hw, hw, dtype=torch.int32, device=img.device).view(b, 1)
        top, bottom = base + top, base + bottom
    left, right = xl.view(b, hw), xr.view(b, hw)
    index = torch.stack((top + left, top + right, bottom + left, bottom + right))  # 4,B,HW
    # Channel-first table (C, B*H*W): one Gather along its columns. At batch 1 it is a plain Reshape,
    # so the export has no Transpose there (not among the ops flownet2/data lists as compiled for the 310P).
    table = img.reshape(c, hw) if b == 1 else img.reshape(b, c, hw).transpose(0, 1).reshape(c, b * hw)
    vals = torch.index_select(table, 1, index.reshape(-1)).reshape(c, 4, b, h, w)
    weights = torch.stack(((1 - a) * (1 - bw), a * (1 - bw), (1 - a) * bw, a * bw))  # 4,B,H,W
    out = (vals * weights).sum(dim=1)  # C,B,H,W
    return out.reshape(1, c, h, w) if b == 1 else out.transpose(0, 1)


# Flows in px are divided by this before squaring: fp16 then holds norms up to ~2900 px instead of
# 181 px (sqrt(65504 / 2)). A power of two, so fp32 results are bit-identical to the unscaled form.
FLOW_NORM_SCALE = 1.0 / 16


def channel_norm(x, scale=1.0):
    """L2 norm over channels, keepdim: B x 1 x H x W. No epsilon, as upstream.

    `scale` (a power of two) multiplies x before squaring and divides the root after: same result,
    but the squares stay in range of a reduced-precision float (pass FLOW_NORM_SCALE for flows in px).
    """
    if scale == 1.0:
        return torch.sqrt((x * x).sum(dim=1, keepdim=True))
    xs = x * scale
    return torch.sqrt((xs * xs).sum(dim=1, keepdim=True)) / scale


def upsample_nearest(x, factor=4):
    """Nearest-neighbour upsampling by an integer factor: out[i] = in[i // factor].

    Same values as F.interpolate(mode="nearest"), but no Resize node whose nearest_mode a runtime
    could read differently (round_prefer_ceil would shift the result by a pixel).
    """
    b, c, h, w = x.shape
    # A broadcast Mul by ones: exact in every float format (x * 1 == x, inf and NaN included), and it
    # exports as Reshape, Mul, Reshape (an Expand drags in a shape subgraph the exporter does not fold).
    ones = torch.ones(1, 1, 1, factor, 1, factor, dtype=x.dtype, device=x.device)
    return (x.reshape(b, c, h, 1, w, 1) * ones).reshape(b, c, h * factor, w * factor)


class Correlation(nn.Module):
    """Drop-in for upstream's compiled Correlation (FlowNet2 settings only)."""

    def __init__(self, pad_size=20, kernel_size=1, max_displacement=20, stride1=1, stride2=2,
                 corr_multiply=1, mode="matmul"):
        super().__init__()
        if (kernel_size, stride1, corr_multiply) != (1, 1, 1) or pad_size != max_displacement:
            raise ValueError("only FlowNet2's correlation (kernel 1, stride1 1, pad = max displacement) "
                             f"is implemented; got pad {pad_size}, kernel {kernel_size}, stride1 {stride1}")
        self.max_displacement = max_displacement
        self.stride2 = stride2
        self.mode = mode

    def forward(self, f1, f2):
        return correlation(f1, f2, self.mode, self.max_displacement, self.stride2)


class Resample2d(nn.Module):
    """Drop-in for upstream's compiled Resample2d (kernel_size 1, bilinear)."""

    def __init__(self, kernel_size=1, bilinear=True):
        super().__init__()
        if kernel_size != 1 or not bilinear:
            raise ValueError("only Resample2d(kernel_size=1, bilinear=True) is implemented")

    def forward(self, img, flow):
        return warp(img, flow)


class ChannelNorm(nn.Module):
    """Drop-in for upstream's compiled ChannelNorm (L2)."""

    def __init__(self, norm_deg=2):
        super().__init__()
        if norm_deg != 2:
            raise ValueError("only ChannelNorm(norm_deg=2) is implemented")

    def forward(self, x):
        return channel_norm(x)

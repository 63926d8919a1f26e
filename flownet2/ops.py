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
    _, _, h, w = f1.shape
    p = max_disp
    f2p = F.pad(f2, (p, p, p, p))
    out = []
    for dy in _offsets(max_disp, stride2):
        for dx in _offsets(max_disp, stride2):
            win = f2p[:, :, p + dy : p + dy + h, p + dx : p + dx + w]
            out.append((f1 * win).mean(dim=1, keepdim=True))
    return torch.cat(out, dim=1)


def _correlation_matmul(f1, f2, max_disp, stride2):
    # Per vertical offset: every row of f1 against the whole zero-padded row of f2 (one batched
    # MatMul), then pick the D diagonals x' = x + dx with one Gather. ~5 nodes per offset instead
    # of ~4 per displacement, and BLAS instead of 441 elementwise passes.
    b, c, h, w = f1.shape
    p = max_disp
    wp = w + 2 * p
    offsets = _offsets(max_disp, stride2)
    f1r = f1.permute(0, 2, 3, 1) / c  # B,H,W,C; the 1/C of the mean folded in once
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


def warp(img, flow):
    """Sample img (B,C,H,W) at (x+u, y+v) like Resample2d: border-replicate bilinear."""
    b, c, h, w = img.shape
    gy = torch.arange(h, dtype=img.dtype, device=img.device).view(1, 1, h, 1)
    gx = torch.arange(w, dtype=img.dtype, device=img.device).view(1, 1, 1, w)
    xf = gx + flow[:, 0:1]  # B,1,H,W: kept 4-D so the cats below need no Unsqueeze nodes
    yf = gy + flow[:, 1:2]
    x0 = torch.floor(xf)
    y0 = torch.floor(yf)
    # Weights from the UNCLAMPED point; clamping happens per neighbour below. Clamping first would
    # extrapolate left of / above the image (the Ascend example's defect).
    a = xf - x0
    bw = yf - y0
    # Clamp in float (opset 11 Clip is float-only), then one cast per coordinate.
    xl = torch.clamp(x0, 0, w - 1).long()
    xr = torch.clamp(x0 + 1, 0, w - 1).long()
    yt = torch.clamp(y0, 0, h - 1).long()
    yb = torch.clamp(y0 + 1, 0, h - 1).long()
    # All four neighbours in one GatherElements: index B x C x 4HW into the flattened image.
    corners = torch.cat((yt * w + xl, yt * w + xr, yb * w + xl, yb * w + xr), dim=1)  # B,4,H,W
    index = corners.reshape(b, 1, 4 * h * w).repeat(1, c, 1)
    vals = torch.gather(img.reshape(b, c, h * w), 2, index).reshape(b, c, 4, h, w)
    weights = torch.cat(((1 - a) * (1 - bw), a * (1 - bw), (1 - a) * bw, a * bw), dim=1)  # B,4,H,W
    return (vals * weights.unsqueeze(1)).sum(dim=2)


def channel_norm(x):
    """L2 norm over channels, keepdim: B x 1 x H x W. No epsilon, as upstream."""
    return torch.sqrt((x * x).sum(dim=1, keepdim=True))


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

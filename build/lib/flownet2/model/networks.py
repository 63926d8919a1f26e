"""FlowNet2 (Ilg et al. 2017) in plain PyTorch, with the NVIDIA port's parameter names.

`FlowNet2()(x1, x2)` takes two normalised B x 3 x H x W frames (H, W multiples of 64) and returns
B x 2 x H x W flow in pixels (u right, v down). state_dict() keys and shapes match the official
checkpoint (the key list is tests/data/flownet2_state_dict.tsv).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..sizes import check_input_size
from .ops import FLOW_NORM_SCALE, channel_norm, correlation, upsample_nearest, warp

DIV_FLOW = 20.0  # the network predicts flow / 20 (the Caffe training scale)


def conv(cin, cout, k=3, s=1):
    # Sequential so parameters are named `<name>.0.*`, as in the checkpoint.
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, bias=True), nn.LeakyReLU(0.1, inplace=True))


def i_conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=True))


def deconv(cin, cout):
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=True), nn.LeakyReLU(0.1, inplace=True))


def predict_flow(cin):
    return nn.Conv2d(cin, 2, 3, 1, 1, bias=True)


def upsample_flow(bias=True):
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=bias)


class _FlowNetTail(nn.Module):
    """What FlowNetC/S/SD share: encoder levels 4-6 and the decoder 6 -> 2, which concats
    [skip, deconv, upsampled flow] at each level. With `inter` (FlowNetSD) each concat passes through
    inter_convN before predict_flowN.
    """

    def _build_tail(self, skip2, inter, flow_bias):
        self.conv4 = conv(256, 512, 3, 2)
        self.conv4_1 = conv(512, 512)
        self.conv5 = conv(512, 512, 3, 2)
        self.conv5_1 = conv(512, 512)
        self.conv6 = conv(512, 1024, 3, 2)
        self.conv6_1 = conv(1024, 1024)
        chans = {6: 1024, 5: 512 + 512 + 2, 4: 512 + 256 + 2, 3: 256 + 128 + 2, 2: skip2 + 64 + 2}
        outs = {5: 512, 4: 256, 3: 128, 2: 64}
        self.inter = inter
        for lvl in (5, 4, 3, 2):
            setattr(self, f"deconv{lvl}", deconv(chans[lvl + 1], outs[lvl]))
            if inter:
                setattr(self, f"inter_conv{lvl}", i_conv(chans[lvl], outs[lvl]))
        for lvl in (6, 5, 4, 3, 2):
            pred_in = outs[lvl] if inter and lvl < 6 else chans[lvl]
            setattr(self, f"predict_flow{lvl}", predict_flow(pred_in))
        for lvl in (6, 5, 4, 3):
            setattr(self, f"upsampled_flow{lvl}_to_{lvl - 1}", upsample_flow(flow_bias))

    def _tail(self, c2, c3):
        """Level-2 and level-3 features (256 ch at 1/8) -> flow at 1/4."""
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        feat = self.conv6_1(self.conv6(c5))
        skips = {5: c5, 4: c4, 3: c3, 2: c2}
        flow = self.predict_flow6(feat)
        for lvl in (5, 4, 3, 2):
            up = getattr(self, f"upsampled_flow{lvl + 1}_to_{lvl}")(flow)
            feat = torch.cat((skips[lvl], getattr(self, f"deconv{lvl}")(feat), up), 1)
            pred_in = getattr(self, f"inter_conv{lvl}")(feat) if self.inter else feat
            flow = getattr(self, f"predict_flow{lvl}")(pred_in)
        return flow


class FlowNetC(_FlowNetTail):
    def __init__(self, corr_mode="matmul"):
        super().__init__()
        self.corr_mode = corr_mode
        self.conv1 = conv(3, 64, 7, 2)
        self.conv2 = conv(64, 128, 5, 2)
        self.conv3 = conv(128, 256, 5, 2)
        self.conv_redir = conv(256, 32, 1, 1)
        self.conv3_1 = conv(32 + 441, 256)
        self._build_tail(skip2=128, inter=False, flow_bias=True)

    def forward(self, x):
        # Both frames go through the same conv1-3 (shared weights): one pass over a doubled batch.
        b = x.shape[0]
        both = torch.cat((x[:, :3], x[:, 3:]), 0)
        c2 = self.conv2(self.conv1(both))
        c3 = self.conv3(c2)
        c2a, c3a, c3b = c2[:b], c3[:b], c3[b:]
        corr = F.leaky_relu(correlation(c3a, c3b, self.corr_mode), 0.1)
        c3_1 = self.conv3_1(torch.cat((self.conv_redir(c3a), corr), 1))
        return self._tail(c2a, c3_1)


class FlowNetS(_FlowNetTail):
    def __init__(self, input_channels=12):
        super().__init__()
        self.conv1 = conv(input_channels, 64, 7, 2)
        self.conv2 = conv(64, 128, 5, 2)
        self.conv3 = conv(128, 256, 5, 2)
        self.conv3_1 = conv(256, 256)
        self._build_tail(skip2=128, inter=False, flow_bias=False)

    def forward(self, x):
        c2 = self.conv2(self.conv1(x))
        c3 = self.conv3_1(self.conv3(c2))
        return self._tail(c2, c3)


class _Encoder:
    """What FlowNetSD and FlowNetFusion share: conv0 at full resolution, then two stride-2 levels
    (conv1, conv1_1, conv2, conv2_1). Built first, so parameter names and order stay the checkpoint's."""

    def _build_encoder(self, input_channels):
        self.conv0 = conv(input_channels, 64)
        self.conv1 = conv(64, 64, 3, 2)
        self.conv1_1 = conv(64, 128)
        self.conv2 = conv(128, 128, 3, 2)
        self.conv2_1 = conv(128, 128)

    def _encode(self, x):
        """Features at full, 1/2 and 1/4 resolution."""
        c0 = self.conv0(x)
        c1 = self.conv1_1(self.conv1(c0))
        return c0, c1, self.conv2_1(self.conv2(c1))


class FlowNetSD(_Encoder, _FlowNetTail):
    def __init__(self):
        super().__init__()
        self._build_encoder(6)
        self.conv3 = conv(128, 256, 3, 2)
        self.conv3_1 = conv(256, 256)
        self._build_tail(skip2=128, inter=True, flow_bias=True)

    def forward(self, x):
        _, _, c2 = self._encode(x)
        c3 = self.conv3_1(self.conv3(c2))
        return self._tail(c2, c3)


class FlowNetFusion(_Encoder, nn.Module):
    def __init__(self):
        super().__init__()
        self._build_encoder(11)
        self.deconv1 = deconv(128, 32)
        self.deconv0 = deconv(162, 16)
        self.inter_conv1 = i_conv(162, 32)
        self.inter_conv0 = i_conv(82, 16)
        self.predict_flow2 = predict_flow(128)
        self.predict_flow1 = predict_flow(32)
        self.predict_flow0 = predict_flow(16)
        self.upsampled_flow2_to_1 = upsample_flow()
        self.upsampled_flow1_to_0 = upsample_flow()

    def forward(self, x):
        c0, c1, c2 = self._encode(x)
        flow2 = self.predict_flow2(c2)
        concat1 = torch.cat((c1, self.deconv1(c2), self.upsampled_flow2_to_1(flow2)), 1)
        flow1 = self.predict_flow1(self.inter_conv1(concat1))
        concat0 = torch.cat((c0, self.deconv0(concat1), self.upsampled_flow1_to_0(flow1)), 1)
        return self.predict_flow0(self.inter_conv0(concat0))


def check_frames(x1):
    """The size rule on a model's input, except while tracing or compiling (shapes are static there)."""
    if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
        check_input_size(x1.shape[-2], x1.shape[-1])


def up4(flow, mode):
    """x4 upsampling of a flow: "bilinear" (align_corners=False, as nn.Upsample) or "nearest"."""
    if mode == "bilinear":
        return F.interpolate(flow, scale_factor=4.0, mode="bilinear", align_corners=False)
    return upsample_nearest(flow, 4)


class StackedFlowNet(nn.Module):
    """What FlowNet2 and its stacked members (FlowNet2-CS, -CSS) share: FlowNetC, then FlowNetS
    refinements that each see frame 2 warped by the flow so far, with the mixed-precision hook."""

    def __init__(self, corr_mode="matmul"):
        super().__init__()
        self.flownetc = FlowNetC(corr_mode)
        # torch_backend.py sets this to run the sub-networks in fp16/bf16; the glue between them (warps,
        # channel norms, upsampling) always stays float32. None: everything in the input's dtype.
        self.subnet_dtype = None

    def _subnet(self, net, inp):
        if self.subnet_dtype is None:
            return net(inp)
        return net(inp.to(self.subnet_dtype)).float()

    @property
    def corr_mode(self):
        return self.flownetc.corr_mode

    @corr_mode.setter
    def corr_mode(self, mode):
        self.flownetc.corr_mode = mode

    def _chain(self, x1, x2, refinements):
        """(x1|x2, flow): FlowNetC, then each (FlowNetS name, upsampling mode) of `refinements` in turn."""
        check_frames(x1)
        x = torch.cat((x1, x2), 1)
        flow = up4(self._subnet(self.flownetc, x) * DIV_FLOW, "bilinear")
        for name, mode in refinements:
            # Warp frame 2 by the current estimate and feed the residual to the next FlowNetS.
            warped = warp(x2, flow)
            err = channel_norm(x1 - warped)
            refined = self._subnet(getattr(self, name), torch.cat((x, warped, flow / DIV_FLOW, err), 1))
            flow = up4(refined * DIV_FLOW, mode)
        return x, flow


class FlowNet2(StackedFlowNet):
    """The full stack: C -> S -> S, SD in parallel, fused at full resolution."""

    # the last conv of each sub-network: its output leaves the sub-network as a flow (or flow / 20)
    flow_heads = ("flownetc.predict_flow2", "flownets_1.predict_flow2", "flownets_2.predict_flow2",
                  "flownets_d.predict_flow2", "flownetfusion.predict_flow0")

    def __init__(self, corr_mode="matmul"):
        super().__init__(corr_mode)
        self.flownets_1 = FlowNetS()
        self.flownets_2 = FlowNetS()
        self.flownets_d = FlowNetSD()
        self.flownetfusion = FlowNetFusion()

    def forward(self, x1, x2):
        img0, img1 = x1, x2
        x, fs2 = self._chain(x1, x2, (("flownets_1", "bilinear"), ("flownets_2", "nearest")))
        # Divided, not multiplied: mirrors the Caffe model; the trained fusion weights expect it.
        fsd = up4(self._subnet(self.flownets_d, x) / DIV_FLOW, "nearest")
        err_sd = channel_norm(img0 - warp(img1, fsd))
        err_s2 = channel_norm(img0 - warp(img1, fs2))
        fused_in = torch.cat((img0, fsd, fs2, channel_norm(fsd, FLOW_NORM_SCALE),
                              channel_norm(fs2, FLOW_NORM_SCALE), err_sd, err_s2), 1)
        return self._subnet(self.flownetfusion, fused_in)

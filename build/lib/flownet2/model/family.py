"""The FlowNet2 family: FlowNet2 and its smaller members, as NVIDIA's flownet2-pytorch defines them.

NVIDIA publishes a checkpoint for each member (FlowNet2-CSS-ft-sd has the CSS architecture):

    arch      class          what it runs                                       checkpoint
    flownet2  FlowNet2       C -> S -> S, SD beside them, fused                  620 MB
    c         FlowNet2C      FlowNetC alone                                     149 MB
    s         FlowNet2S      FlowNetS alone, on the two frames (6 channels)     148 MB
    sd        FlowNet2SD     FlowNetSD alone                                    173 MB
    cs        FlowNet2CS     C -> S                                             297 MB
    css       FlowNet2CSS    C -> S -> S                                        445 MB

Every member takes the same two normalised B x 3 x H x W frames as FlowNet2 (NVIDIA's classes
normalise raw frames themselves, with FlowNet2's rule) and returns B x 2 x H x W flow in pixels: its
last flow (at 1/4 size, in px / 20) times 20, upsampled x4. C, S and SD are one sub-network each, so
their checkpoint keys carry no prefix (`conv1.0.weight`); CS and CSS keep FlowNet2's prefixes
(`flownetc.`, `flownets_1.`, `flownets_2.`). A checkpoint's keys say which member it holds.
"""
import functools

import torch

from ..errors import Flownet2Error
from .networks import (
    DIV_FLOW,
    FlowNet2,
    FlowNetC,
    FlowNetS,
    FlowNetSD,
    StackedFlowNet,
    check_frames,
    up4,
)

DEFAULT_ARCH = "flownet2"


class _OneNetwork:
    """Members that are one sub-network: flow = x4 bilinear(network(x1 | x2) * 20), as NVIDIA's
    FlowNet2C/S/SD do in eval mode. Mixed in before the sub-network's class, so the member *is* that
    network (unprefixed keys) and `super().forward` is its forward."""

    flow_heads = ("predict_flow2",)
    subnet_dtype = None  # torch_backend.py sets it per model to run the network in fp16/bf16

    def forward(self, x1, x2):
        check_frames(x1)
        x = torch.cat((x1, x2), 1)
        if self.subnet_dtype is None:
            flow = super().forward(x)
        else:  # torch_backend's mixed precision: the network in fp16/bf16, the x4 upsampling in float32
            flow = super().forward(x.to(self.subnet_dtype)).float()
        return up4(flow * DIV_FLOW, "bilinear")


class FlowNet2C(_OneNetwork, FlowNetC):
    pass


class FlowNet2S(_OneNetwork, FlowNetS):
    corr_mode = None  # no correlation

    def __init__(self, corr_mode=None):  # corr_mode: accepted so every member is built alike; unused
        super().__init__(input_channels=6)


class FlowNet2SD(_OneNetwork, FlowNetSD):
    corr_mode = None  # no correlation

    def __init__(self, corr_mode=None):  # corr_mode: accepted so every member is built alike; unused
        super().__init__()


class FlowNet2CS(StackedFlowNet):
    flow_heads = ("flownetc.predict_flow2", "flownets_1.predict_flow2")

    def __init__(self, corr_mode="matmul"):
        super().__init__(corr_mode)
        self.flownets_1 = FlowNetS()

    def forward(self, x1, x2):
        return self._chain(x1, x2, (("flownets_1", "bilinear"),))[1]


class FlowNet2CSS(StackedFlowNet):
    flow_heads = ("flownetc.predict_flow2", "flownets_1.predict_flow2", "flownets_2.predict_flow2")

    def __init__(self, corr_mode="matmul"):
        super().__init__(corr_mode)
        self.flownets_1 = FlowNetS()
        self.flownets_2 = FlowNetS()

    def forward(self, x1, x2):
        # NVIDIA's CSS upsamples the last flow with nearest (upsample3), as FlowNet2 does its S2.
        return self._chain(x1, x2, (("flownets_1", "bilinear"), ("flownets_2", "nearest")))[1]


# arch -> (name users know, class)
MEMBERS = {
    "flownet2": ("FlowNet2", FlowNet2),
    "c": ("FlowNet2-C", FlowNet2C),
    "s": ("FlowNet2-S", FlowNet2S),
    "sd": ("FlowNet2-SD", FlowNet2SD),
    "cs": ("FlowNet2-CS", FlowNet2CS),
    "css": ("FlowNet2-CSS", FlowNet2CSS),
}


def arch_key(text):
    """The arch key ("css") for "css", "CSS", "FlowNet2-CSS", "flownet2css" or "FlowNet2CSS"."""
    t = str(text).lower().replace("-", "").replace("_", "")
    if t.startswith("flownet2") and t != "flownet2":
        t = t[len("flownet2"):]
    if t not in MEMBERS:
        names = ", ".join(f"{k} ({name})" for k, (name, _) in MEMBERS.items())
        raise Flownet2Error(f"unknown FlowNet2 family member {text!r}: one of {names}")
    return t


def member_name(arch):
    return MEMBERS[arch_key(arch)][0]


def build(arch=DEFAULT_ARCH, corr_mode="matmul"):
    """A member (random init, train mode, as nn.Module builds it) by arch key or name."""
    return MEMBERS[arch_key(arch)][1](corr_mode)


@functools.cache
def member_shapes(arch):
    """{key: shape} of a member's state dict, from a model built on the meta device (no memory)."""
    with torch.device("meta"):
        model = build(arch)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def identify(state, path="checkpoint"):
    """The arch whose state-dict keys are exactly `state`'s keys; one clear error when none is."""
    keys = set(state)
    for arch in MEMBERS:
        if keys == set(member_shapes(arch)):
            return arch
    raise Flownet2Error(f"{path}: its keys fit no FlowNet2 family member ({describe_keys(keys)})")


def describe_keys(keys):
    """What a key set looks like, in a few words: its top-level names and the nearest member."""
    groups = {}
    for k in keys:
        top = k.split(".")[0]
        groups[top] = groups.get(top, 0) + 1
    shown = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0]))[:6]  # most keys first, then by name
    more = f", ... {len(groups) - len(shown)} more" if len(groups) > len(shown) else ""
    tops = ", ".join(f"{name}.* x{n}" for name, n in shown) + more

    def distance(arch):
        ref = set(member_shapes(arch))
        return len(ref - keys), len(keys - ref)

    near = min(MEMBERS, key=lambda a: sum(distance(a)))
    missing, unexpected = distance(near)
    return (f"{len(keys)} tensors: {tops}; nearest {member_name(near)}, {missing} of its keys missing, "
            f"{unexpected} unexpected")

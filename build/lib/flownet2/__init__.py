"""FlowNet2 offline inference toolkit: optical flow from NVIDIA's FlowNet2 checkpoints on ONNX Runtime,
OpenVINO, PyTorch or an Ascend NPU.

    import flownet2
    model = flownet2.load("stand-in:0")                  # a checkpoint, an .onnx, an .om, stand-in:SEED
    flow = model("frame_0001.png", "frame_0002.png")     # (H, W, 2) float32, u and v in pixels
    flownet2.write_flow("frame_0001.flo", flow)

The names below load their modules on first use: `import flownet2` imports no torch, ONNX Runtime or
OpenVINO (docs/python.md).
"""
import importlib

from .errors import Flownet2Error

_FACE = {
    "load": "flownet2.api", "Model": "flownet2.api",
    "read_flow": "flownet2.api", "write_flow": "flownet2.api", "flow_to_image": "flownet2.api",
    "consistency": "flownet2.api", "occlusion": "flownet2.api", "score_pair": "flownet2.api",
}
__all__ = ["Flownet2Error", *_FACE]


def __getattr__(name):
    if name in _FACE:
        value = getattr(importlib.import_module(_FACE[name]), name)
        globals()[name] = value  # once found, an ordinary attribute
        return value
    raise AttributeError(f"module 'flownet2' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_FACE])

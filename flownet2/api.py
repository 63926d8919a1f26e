"""FlowNet2 in your own code: `load` a model, call it on two images, get flow.

    import flownet2
    model = flownet2.load("stand-in:0")       # a checkpoint, an .onnx, an .om, stand-in:SEED
    flow = model("frame_0001.png", "frame_0002.png")   # (H, W, 2) float32, u and v in pixels

Images are RGB: numpy (H, W, 3) uint8, uint16 (16-bit: value / 257, as the frame reader reads 16-bit
files) or float in 0..255; (H, W) grey; PIL images; paths (read by the toolkit's one frame reader, EXIF
orientation applied); torch tensors (3, H, W) / (N, 3, H, W) on the same 0..255 scale. `bgr=True` for
OpenCV's channel order. Any size: frames reach the model's size by the same rule as Flownet2_predict.py
(flow_model.FlowModel), and the flow comes back at the frames' size. The CLI and this object run the
same code: the same model, engine and precision give the same bytes.
"""
import os
from dataclasses import dataclass

import numpy as np

from .data import decode, frames
from .errors import Flownet2Error
from .runtime.flow_model import FlowModel, flow_back, frame_pairs, stream


def load(model, *, backend="auto", precision="auto", device=None, batch_size=None, size_mode="resize", streams=1):
    """A Model for `model`: a checkpoint of any FlowNet2 member, an .onnx, an .om, "stand-in:SEED" or
    "stand-in:MEMBER:SEED". backend: "auto" (as Flownet2_predict.py: OpenVINO on a CPU, ONNX Runtime or
    PyTorch on a CUDA GPU, ais_bench for an .om), "onnxruntime", "openvino", "torch" or "ascend";
    precision: "auto" (bf16 on a CPU with bf16 units, else fp32), "fp32", "bf16", "fp16", "tf32";
    device: the GPU / NPU id (default 0); batch_size: pairs per model run (an exported model has its
    own); size_mode: "resize" (bilinear, u and v rescaled) or "pad"; streams: model runs kept in flight
    by OpenVINO for batches and video (1: one at a time, all cores on each, the fastest single call;
    "auto": OpenVINO's optimal number, the most pairs per second over many)."""
    return Model(FlowModel(model, backend=backend, precision=None if precision == "auto" else precision,
                           device=device or 0, batch_size=batch_size, size_mode=size_mode, streams=streams))


@dataclass(frozen=True)
class _Images:
    """Frames as the model takes them: a list of (H, W, 3) uint8 or float32 0..255 RGB, and how they came."""
    frames: list
    batched: bool  # given as a batch: the flow keeps a batch axis
    torch_device: object = None  # the device of a torch tensor given, else None


class Model:
    """A loaded FlowNet2 model: call it on two images (or two batches) for flow; `video()` for a stream.

    Attributes: `engine` (its name in messages), `backend`, `precision`, `weights` (the weights label:
    file, digest, or a stand-in's seed), `batch_size` (None until first use where the size decides),
    `model` (what was loaded)."""

    def __init__(self, flow_model):
        self._model = flow_model

    model = property(lambda self: self._model.model)
    backend = property(lambda self: self._model.backend)
    precision = property(lambda self: self._model.precision)
    engine = property(lambda self: self._model.engine.display)
    weights = property(lambda self: self._model.label)

    @property
    def batch_size(self):
        return self._model.batch_size

    @property
    def flow_model(self):
        """The runtime object underneath (flownet2.runtime.flow_model.FlowModel)."""
        return self._model

    def __repr__(self):
        return (f"flownet2.Model({self.model!r}, engine={self.engine!r}, precision={self.precision!r}, "
                f"weights={self.weights!r})")

    def __call__(self, img1, img2, *, bgr=False, backward=False):
        """Flow from img1 to img2, (H, W, 2) float32 at their size; for batches (N, H, W, 2); for torch
        tensors a tensor (N, 2, H, W) (or (2, H, W)) on their device. `backward=True`: (forward, backward),
        the backward flow being img2 to img1."""
        first, second = _images(img1, "img1", bgr=bgr), _images(img2, "img2", bgr=bgr)
        if len(first.frames) != len(second.frames):
            raise Flownet2Error(f"img1 has {len(first.frames)} image(s), img2 {len(second.frames)}; give one per pair")
        size = first.frames[0].shape[:2]
        for name, given in (("img1", first), ("img2", second)):
            for k, frame in enumerate(given.frames):
                if frame.shape[:2] != size:
                    where = f"{name}[{k}]" if given.batched else name
                    raise Flownet2Error(f"{where} is {frame.shape[0]}x{frame.shape[1]}, img1"
                                        f"{'[0]' if first.batched else ''} is {size[0]}x{size[1]}; "
                                        "the images of a call must share one size")
        flows = self._run(list(zip(first.frames, second.frames)), size, backward=backward)
        return tuple(_shaped(f, first) for f in flows) if backward else _shaped(flows[0], first)

    def _run(self, pairs, size, *, backward):
        session = self._model.session(size)
        padder = self._model.padder(size, session, name="the images")
        forward, back = [], []
        for batch in stream(session, padder, iter(pairs), two_way=backward):
            for s in range(batch.count):
                forward.append(flow_back(padder, batch.flow[s], size))
                if backward:
                    back.append(flow_back(padder, batch.back[s], size))
        return (np.stack(forward), np.stack(back)) if backward else (np.stack(forward),)

    def video(self, source, *, step=1, bgr=False, backward=False):
        """Yield (pair index, flow) for pairs (frame i, frame i + step) of a video file, a folder of
        frames or an iterable of images, streaming: only step + 1 frames are held. With `backward=True`
        each item is (index, (forward, backward))."""
        if isinstance(source, (str, os.PathLike)):
            opened = frames.open_source([source], step=step)
            size, images = opened.frame_size, opened.frames()
        else:
            images = (_one(frame, f"frame {n}", bgr=bgr) for n, frame in enumerate(source))
            first = next(images, None)
            if first is None:
                raise Flownet2Error("video: the frames are empty")
            size = first.shape[:2]
            images = _chain(first, images, size)
        session = self._model.session(size)
        padder = self._model.padder(size, session, name="the video")
        for batch in stream(session, padder, frame_pairs(images, step), two_way=backward):
            for s in range(batch.count):
                flow = flow_back(padder, batch.flow[s], size)
                yield batch.first + s, (flow, flow_back(padder, batch.back[s], size)) if backward else flow


def _chain(first, rest, size):
    yield first
    for n, frame in enumerate(rest, start=1):
        if frame.shape[:2] != size:
            raise Flownet2Error(f"video: frame {n} is {frame.shape[0]}x{frame.shape[1]}, frame 0 is "
                                f"{size[0]}x{size[1]}")
        yield frame


# ------------------------------------------------------------------------------ images in, flow out

def _is_torch(x):
    return type(x).__module__.split(".")[0] == "torch"


def _images(x, name, *, bgr):
    """_Images for one argument: one image, a batch array or tensor, or a list of images."""
    if isinstance(x, (list, tuple)):
        if not x:
            raise Flownet2Error(f"{name}: an empty batch")
        return _Images([_one(item, f"{name}[{k}]", bgr=bgr) for k, item in enumerate(x)], batched=True)
    if _is_torch(x):
        device = x.device
        x = x.detach().cpu().numpy()
        if x.ndim not in (3, 4) or x.shape[-3] != 3:
            raise Flownet2Error(f"{name}: a tensor must be (3, H, W) or (N, 3, H, W) RGB, got {tuple(x.shape)}")
        if x.ndim == 4 and len(x) == 0:
            raise Flownet2Error(f"{name}: an empty batch")
        hwc = np.moveaxis(x, -3, -1)
        items = list(hwc) if x.ndim == 4 else [hwc]
        return _Images([_one(i, f"{name}[{k}]" if x.ndim == 4 else name, bgr=bgr) for k, i in enumerate(items)],
                       batched=x.ndim == 4, torch_device=device)
    if isinstance(x, np.ndarray) and x.ndim == 4:
        if len(x) == 0:
            raise Flownet2Error(f"{name}: an empty batch")
        return _Images([_one(item, f"{name}[{k}]", bgr=bgr) for k, item in enumerate(x)], batched=True)
    return _Images([_one(x, name, bgr=bgr)], batched=False)


def _one(x, name, *, bgr):
    """One image as (H, W, 3) RGB, uint8 or float32 on the 8-bit scale; one line naming `name` if not."""
    if isinstance(x, (str, os.PathLike)):
        return decode.read_frame(os.fspath(x))
    if type(x).__module__.split(".")[0] == "PIL":
        return decode.from_pil(x, name=name)
    if _is_torch(x):
        x = np.moveaxis(x.detach().cpu().numpy(), 0, -1) if x.ndim == 3 else x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise Flownet2Error(f"{name}: expected an image (numpy array, PIL image, path or torch tensor), "
                            f"got {type(x).__name__}")
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    if x.ndim != 3 or x.shape[2] != 3:
        got = f"{x.shape[2]} channels" if x.ndim == 3 else f"{x.ndim} dimensions"
        raise Flownet2Error(f"{name}: expected (H, W, 3) RGB or (H, W) grey, got shape {x.shape} ({got})"
                            + ("; drop the alpha channel first" if x.ndim == 3 and x.shape[2] == 4 else ""))
    if min(x.shape[:2]) < 1:
        raise Flownet2Error(f"{name}: an empty image {x.shape[0]}x{x.shape[1]}")
    x = x[:, :, ::-1] if bgr else x
    return np.ascontiguousarray(_eight_bit_scale(x, name))


def _eight_bit_scale(x, name):
    if x.dtype == np.uint8:
        return x
    if x.dtype == np.uint16:
        return x.astype(np.float32) / np.float32(decode.SIXTEEN_BIT_STEP)
    if x.dtype.kind != "f":
        raise Flownet2Error(f"{name}: pixels of type {x.dtype}; give uint8, uint16 or float (0..255)")
    if not np.isfinite(x).all():
        raise Flownet2Error(f"{name}: NaN or infinite pixels")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 255:
        raise Flownet2Error(f"{name}: float pixels must be on the 0..255 scale, got {low:g}..{high:g}")
    return x.astype(np.float32, copy=False)


def _shaped(flows, given):
    """(N, H, W, 2) flows as the caller gave the images: one (H, W, 2), a batch, or torch (N, 2, H, W)."""
    out = flows if given.batched else flows[0]
    if given.torch_device is None:
        return out
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(out, -1, -3))).to(given.torch_device)


# ------------------------------------------------------------------------------ flows: files, pictures, checks

def read_flow(path, *, valid=False):
    """(H, W, 2) float32 flow from a .flo, a KITTI 16-bit .png, an .npy or a flow_x_N.jpg / flow_y_N.jpg
    pair (either name; 8-bit, the jpg bound of 20 px); `valid=True`: (flow, (H, W) bool), False where
    a KITTI file marks a pixel invalid (every pixel of the other formats is valid)."""
    from .data.flow_formats import read_flow as read

    flow, mask = read(path)
    if not valid:
        return flow
    return flow, np.ones(flow.shape[:2], bool) if mask is None else mask


def write_flow(path, flow):
    """Write (H, W, 2) flow by the extension of `path`: .flo (float32), .png (KITTI 16-bit, 1/64 px),
    .npy (float16), or a flow_x_N.jpg name (with its flow_y_N.jpg: 8-bit, +-20 px, as mmaction2 reads);
    atomically (a file appears whole or not at all)."""
    from .data import flow_formats
    from .data.flo import write_flo
    from .data.kitti_png import write_kitti_flow

    path = os.fspath(path)
    flow = _flow_array(flow, "flow")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".flo":
        write_flo(path, flow)
    elif ext == ".png":
        write_kitti_flow(path, flow)
    elif ext == ".npy":
        flow_formats.write_npy(path, flow)
    elif ext in (".jpg", ".jpeg") and "flow_x" in os.path.basename(path):
        head, tail = os.path.split(path)
        flow_formats.write_jpg_pair(path, os.path.join(head, tail.replace("flow_x", "flow_y", 1)), flow)
    else:
        raise Flownet2Error(f"{path}: write .flo, .png (KITTI), .npy or flow_x_<N>.jpg")


def flow_to_image(flow, radius=None):
    """(H, W, 3) uint8 colour picture of (H, W, 2) flow on the toolkit's colour wheel (the pictures'):
    hue is the direction, saturation the magnitude, full at `radius` px (default: the largest)."""
    from .score import visualize

    flow = _flow_array(flow, "flow")
    if radius is not None and not radius > 0:
        raise Flownet2Error(f"radius must be positive, got {radius}")
    return visualize.flow_to_color(flow, radius or visualize.flow_radius(flow))


def consistency(forward, backward, *, alpha1=None, alpha2=None):
    """(H, W) bool, True where forward and backward flow agree (the rule of --occlusion and --quality:
    |wf + wb(x + wf)|^2 < alpha1 (|wf|^2 + |wb(x + wf)|^2) + alpha2; defaults 0.01 and 0.5 px^2)."""
    from .score import quality

    return quality.consistency(_flow_array(forward, "forward"), _flow_array(backward, "backward"),
                               alpha1=quality.ALPHA1 if alpha1 is None else alpha1,
                               alpha2=quality.ALPHA2 if alpha2 is None else alpha2)


def occlusion(forward, backward, *, alpha1=None, alpha2=None):
    """(H, W) bool, True where the consistency check fails: occluded (or wrong) pixels."""
    return ~consistency(forward, backward, alpha1=alpha1, alpha2=alpha2)


def score_pair(forward, backward, *, frames=None):
    """The --quality scores of one pair (consistent fraction, photometric error with `frames`, mean
    magnitude) and its consistency mask: (quality.PairScores, (H, W) bool)."""
    from .score import quality

    if frames is not None:
        frames = [_one(f, f"frames[{k}]", bgr=False) for k, f in enumerate(frames)]
    return quality.score_pair(_flow_array(forward, "forward"), _flow_array(backward, "backward"), frames=frames)


def _flow_array(flow, name):
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2 or min(flow.shape[:2]) < 1 or flow.dtype.kind != "f":
        raise Flownet2Error(f"{name}: expected (H, W, 2) float flow, got {flow.dtype} {flow.shape}")
    return flow

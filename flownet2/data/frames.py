"""Frames from your own files, and flows back at their size.

A source is two image files, a folder of frames (natural sort: frame_2 before frame_10) or a video
decoded as a stream (PyAV, FFmpeg's libraries); frames i and i + step make pair i (step 1: consecutive
frames; N frames give N - step pairs, numbered as for step 1). Frames reach the
model's size through `images.InputPadder` (pad, or bilinear resize with u, v rescaled on the way
back), so there is one rule for sizes across the toolkit. The flow video is written here too.
"""
import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..errors import Flownet2Error
from ..fileio import atomic_write, natural_sorted
from . import decode
from .flow_formats import is_flow_jpg

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".pnm", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
# output video: extension -> (container format, codec); H.264 where the container takes it
VIDEO_OUT = {".mp4": ("mp4", "libx264"), ".mov": ("mov", "libx264"), ".mkv": ("matroska", "libx264"),
             ".avi": ("avi", "mpeg4")}
DEFAULT_FPS = Fraction(24)  # a folder or two images have no frame rate of their own


def _ext(path):
    return os.path.splitext(path)[1].lower()


def require_av():
    try:
        import av
    except ImportError:
        raise Flownet2Error("reading or writing video needs PyAV: pip install av") from None
    return av


@dataclass
class FrameSource:
    """Frames in order; pair i is frames (i, i + step). `pair_name(i)` is pair i's output name
    (folder-relative, no extension): its first frame's stem, or `<stem>/frame_0001`... for a video."""

    path: str
    kind: str  # "images", "folder" or "video"
    size: tuple  # (height, width) of every frame, as displayed
    files: list | None = None  # images / folder: the frame files
    fps: Fraction = DEFAULT_FPS
    frame_count: int | None = None  # None where a video does not say
    rotation: int = 0  # video: degrees counter-clockwise its display matrix turns the coded frames
    oriented: int = 0  # images / folder: frames turned or mirrored by their EXIF orientation
    step: int = 1
    resize_to: tuple | None = None  # (height, width) the frames are resized to as they are read

    @property
    def frame_size(self):
        """(height, width) of the frames frames() yields: what the model is given."""
        return tuple(self.resize_to or self.size)

    @property
    def orientation_note(self):
        """What was turned into display orientation, for the run's first line ("" if nothing)."""
        if self.rotation:
            return f"rotated {self.rotation} degrees counter-clockwise by the video's display matrix"
        if self.oriented:
            return f"{self.oriented} frame(s) turned by their EXIF orientation"
        return ""

    @property
    def pair_count(self):
        return None if self.frame_count is None else max(self.frame_count - self.step, 0)

    def pair_name(self, i):
        if self.kind == "video":
            return os.path.join(os.path.splitext(os.path.basename(self.path))[0], f"frame_{i + 1:04d}")
        return os.path.splitext(os.path.basename(self.files[i]))[0]

    def frames(self):
        """Yield (height, width, 3) RGB frames as displayed, one at a time, at frame_size: uint8, or
        float32 on the 8-bit scale from a 16-bit file (decode.read_frame)."""
        if self.kind == "video":
            decoded = _video_frames(self.path, self.size, self.rotation)
        else:
            decoded = (decode.read_frame(path) for path in self.files)
        if self.resize_to is None or tuple(self.resize_to) == tuple(self.size):
            yield from decoded
            return
        for frame in decoded:
            yield resize_frame(frame, self.resize_to, antialias=True)


def open_source(inputs, step=1, size=None):
    """A FrameSource for [image, image], [folder] or [video], pairing frames i and i + `step`; with
    `size` (a sizes.OutputSize) its frames are resized to where the model runs (OutputSize.frames_of);
    checks what it can before any work."""
    source = _open(inputs, step)
    if size is not None and size.frames_of(source.size) != tuple(source.size):
        source.resize_to = size.frames_of(source.size)
    return source


def _open(inputs, step):
    inputs = [os.fspath(p) for p in inputs]
    if not isinstance(step, int) or step < 1:
        raise Flownet2Error(f"the frame step must be a whole number of at least 1, got {step}")
    for path in inputs:
        if not os.path.exists(path):
            raise Flownet2Error(f"{path}: not found")
    if len(inputs) == 2:
        for path in inputs:
            if os.path.isdir(path) or _ext(path) not in IMAGE_EXTS:
                raise Flownet2Error(f"{path}: two inputs must be image files ({' '.join(IMAGE_EXTS)})")
        return _image_source(inputs[0], inputs, "images", step)
    if len(inputs) != 1:
        raise Flownet2Error(f"{inputs[2]}: give two images, one folder of frames or one video")
    path = inputs[0]
    if os.path.isdir(path):
        return _folder_source(path, step)
    if _ext(path) in VIDEO_EXTS:
        return _video_source(path, step)
    if _ext(path) in IMAGE_EXTS:
        raise Flownet2Error(f"{path}: one image is not a pair; give two images, a folder or a video")
    raise Flownet2Error(f"{path}: unknown extension {_ext(path) or '(none)'}; "
                        f"images: {' '.join(IMAGE_EXTS)}; videos: {' '.join(VIDEO_EXTS)}")


def _image_source(path, files, kind, step=1):
    if len(files) <= step:
        raise Flownet2Error(f"{path}: {len(files)} frame(s), a step of {step} needs at least {step + 1}")
    headers = [decode.header(f) for f in files]  # a mismatch is found before any pixel is decoded
    size = headers[0].size
    for f, other in zip(files[1:], [h.size for h in headers[1:]]):
        if other != size:
            raise Flownet2Error(f"{f}: frame is {other[0]}x{other[1]}, {files[0]} is "
                                f"{size[0]}x{size[1]}; all frames must have one size")
    stems = {}
    for f in files[:-step]:
        stem = os.path.splitext(os.path.basename(f))[0]
        if stem in stems:  # frame_1.png and frame_1.jpg would write one frame_1.flo
            raise Flownet2Error(f"{f}: same name as {stems[stem]}; flows are named after the first frame")
        stems[stem] = f
    return FrameSource(path, kind, size, files=list(files), frame_count=len(files), step=step,
                       oriented=sum(h.orientation != 1 for h in headers))


def is_hidden(name):
    """Dot files and folders, macOS's AppleDouble `._name` among them: never frames or videos."""
    return name.startswith(".")


def frame_files(folder):
    """A folder's frames, natural sort: image files, not hidden, and not our jpg flow."""
    return natural_sorted([os.path.join(folder, f) for f in os.listdir(folder)
                           if _ext(f) in IMAGE_EXTS and not is_hidden(f) and not is_flow_jpg(f)
                           and os.path.isfile(os.path.join(folder, f))])


def _folder_source(folder, step=1):
    files = frame_files(folder)
    if len(files) < 2:
        raise Flownet2Error(f"{folder}: {len(files)} frame(s) found, need at least 2 "
                            f"({' '.join(IMAGE_EXTS)})")
    return _image_source(folder, files, "folder", step)


def _video_source(path, step=1):
    """Open the video, decode its first step + 1 frames (a file that cannot do that is refused now)."""
    av = require_av()
    if os.path.getsize(path) == 0:
        raise Flownet2Error(f"{path}: empty file (0 bytes)")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise Flownet2Error(f"{path}: no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            count = stream.frames or None
            first = []
            for frame in container.decode(stream):
                first.append(frame)
                if len(first) == step + 1:
                    break
    except (av.FFmpegError, OSError, ValueError) as e:
        raise Flownet2Error(f"{path}: cannot read video ({e})") from None
    if len(first) < step + 1:
        raise Flownet2Error(f"{path}: {len(first)} decodable frame(s), need at least {step + 1}")
    rotation = _display_rotation(path, first[0])
    size = (first[0].height, first[0].width)
    return FrameSource(path, "video", size[::-1] if rotation % 180 else size, fps=Fraction(fps),
                       frame_count=count, rotation=rotation, step=step)


def _display_rotation(path, frame):
    """Degrees counter-clockwise (0, 90, 180 or 270) the stream's display matrix turns its frames,
    as FFmpeg's tools and OpenCV show them; a mirroring or an odd angle is refused, not guessed."""
    matrix = next((sd for sd in frame.side_data if sd.type.name == "DISPLAYMATRIX"), None)
    if matrix is None:
        return 0
    m = np.frombuffer(bytes(matrix), np.int32).astype(np.int64)  # 16.16 fixed point, row-major 3x3
    if m[0] * m[4] - m[1] * m[3] < 0:
        raise Flownet2Error(f"{path}: the display matrix mirrors the picture; not supported, re-encode "
                            "the video without it (ffmpeg -i IN -vf transpose=... OUT)")
    degrees = round(frame.rotation)
    if degrees % 90:
        raise Flownet2Error(f"{path}: display rotation of {frame.rotation} degrees, not a multiple of 90")
    return degrees % 360


def _video_frames(path, size, rotation):
    av = require_av()
    n = 0
    coded = size[::-1] if rotation % 180 else size
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame-parallel decoding
            for frame in container.decode(stream):
                n += 1
                if (frame.height, frame.width) != coded:
                    raise Flownet2Error(f"{path}: frame {n} is {frame.height}x{frame.width}, the first "
                                        f"is {coded[0]}x{coded[1]}")
                yield decode.rotate(video_rgb(frame), rotation)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise Flownet2Error(f"{path}: cannot decode frame {n + 1} ({e})") from None


def video_rgb(frame):
    """A decoded frame as RGB: uint8 from 8-bit video, float32 on the 8-bit scale (value / 257)
    from deeper video (10-bit phone HDR, 16-bit lossless), so every bit reaches the model."""
    if max(c.bits for c in frame.format.components) <= 8:
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb48le").astype(np.float32) / np.float32(decode.SIXTEEN_BIT_STEP)


def resize_frame(rgb, size, *, antialias=False):
    """An (h, w, 3) frame (uint8, or float32 on the 8-bit scale) at `size` (height, width); the frame
    itself when it already has that size.

    antialias=False: OpenCV's bilinear resize, what denseflow and mmcv write their frames with (and
    the frames written after a model run at the source's size). antialias=True: where a side shrinks,
    bilinear whose kernel widens with the shrink factor (Pillow's BILINEAR, torch's antialias=True), so a
    frame shrunk before the model keeps no aliasing a plain 2x2 lookup would add; enlarging both sides,
    which has nothing to alias, OpenCV's bilinear as above. float32 frames stay float32 (each channel
    resampled in Pillow's float mode).
    """
    if rgb.shape[:2] == tuple(size):
        return rgb
    if antialias and (size[0] < rgb.shape[0] or size[1] < rgb.shape[1]):  # enlarging: plain bilinear is the same
        return _resize_antialiased(rgb, size)
    import cv2  # first use only: runs at the source's size never need it

    return cv2.resize(np.ascontiguousarray(rgb), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def _resize_antialiased(rgb, size):
    from PIL import Image

    wh = (size[1], size[0])
    if rgb.dtype == np.uint8:
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(wh, Image.BILINEAR))
    channels = [Image.fromarray(np.ascontiguousarray(rgb[..., c], np.float32), "F") for c in range(rgb.shape[2])]
    channels = [np.asarray(c.resize(wh, Image.BILINEAR)) for c in channels]
    return np.stack(channels, axis=-1)


def check_video_out(path):
    if _ext(path) not in VIDEO_OUT:
        raise Flownet2Error(f"{path}: unknown video extension; choose from {' '.join(VIDEO_OUT)}")


@contextlib.contextmanager
def video_writer(path, fps):
    """Yield write(rgb) for an output video; the file appears under its name only when complete."""
    av = require_av()
    check_video_out(path)
    fmt, codec = VIDEO_OUT[_ext(path)]
    with atomic_write(path, "wb") as f:
        container = av.open(f, "w", format=fmt)
        state = {}

        def write(rgb):
            # yuv420p (what players expect) needs even sides: repeat the last row / column
            rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
            if "stream" not in state:
                stream = container.add_stream(codec, rate=fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": "18", "preset": "veryfast"}
                state["stream"], state["n"] = stream, 0
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = state["n"]
            state["n"] += 1
            for packet in state["stream"].encode(frame):
                container.mux(packet)

        try:
            yield write
            if "stream" in state:
                for packet in state["stream"].encode():  # flush the encoder
                    container.mux(packet)
        finally:
            container.close()

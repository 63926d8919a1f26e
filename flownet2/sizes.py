"""The size and batch rules every stage shares (plumbing: imports nothing else of the toolkit's but errors)."""
from dataclasses import dataclass

from .errors import Flownet2Error

SIZE_MULTIPLE = 64  # six stride-2 levels


def check_input_size(height, width):
    if height % SIZE_MULTIPLE or width % SIZE_MULTIPLE or height <= 0 or width <= 0:
        raise Flownet2Error(
            f"FlowNet2 needs height and width that are positive multiples of {SIZE_MULTIPLE}; "
            f"got {height}x{width} (pad or resize the frames first)")


def model_size(height, width, multiple=SIZE_MULTIPLE):
    """The next multiples of 64 at or above (height, width)."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def check_batch_size(batch_size, num_pairs=None):
    """The one batch-size rule: at least 1, and (when known) no more than the pairs to fill it."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise Flownet2Error(f"batch size must be at least 1, got {batch_size}")
    if num_pairs is not None and batch_size > num_pairs:
        # a batch of mostly filler would be written and inferred for nothing (5 pairs at 1000: 11 GB)
        raise Flownet2Error(f"batch size {batch_size} is larger than the {num_pairs} pair(s) found; "
                            f"use at most {num_pairs}")


def parse_size(text):
    """"HxW" or "H,W" (e.g. "384x1280": preprocess and run_all.sh; "384,1280": ais_bench-style --model_size)
    -> (H, W), checked against the size rule."""
    parts = str(text).lower().replace(",", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise Flownet2Error(f"size {text!r} not understood: expected HEIGHTxWIDTH, e.g. 384x1280 (or 384,1280)")
    height, width = (int(p) for p in parts)
    check_input_size(height, width)
    return height, width


FLOW_AT = ("output", "source")  # where the model runs when the output is resized (OutputSize.flow_at)


@dataclass(frozen=True)
class OutputSize:
    """The size frames and flows are written at, from the source's: `new_short` (the short side, the
    aspect ratio kept; never larger than the source unless `enlarge`, as denseflow's --ns) or
    `new_size` (height, width) exactly; neither: the source's size.

    The long side is rounded half up, in integers: long * short_new / short + 1/2, truncated
    (denseflow's `round`, mmcv's `int(x * scale + 0.5)`).

    `flow_at` says where the model runs: "output" (frames resized to the output size first, the model
    at the next multiples of 64 of it, as denseflow and mmaction2 do: a 256-pixel flow costs a 256-pixel
    model) or "source" (the model at the source's size, its flow resized after).
    """

    new_short: int | None = None
    new_size: tuple | None = None  # (height, width)
    enlarge: bool = False
    flow_at: str = "output"

    def __post_init__(self):
        if self.new_short is not None and self.new_size is not None:
            raise Flownet2Error("give a new short side or a new size, not both")
        if self.new_short is not None and self.new_short < 1:
            raise Flownet2Error(f"the new short side must be at least 1, got {self.new_short}")
        if self.new_size is not None and min(self.new_size) < 1:
            raise Flownet2Error(f"the new size must be at least 1x1, got {self.new_size[1]}x{self.new_size[0]}")
        if self.flow_at not in FLOW_AT:
            raise Flownet2Error(f"flow_at must be one of {', '.join(FLOW_AT)}, got {self.flow_at!r}")

    @property
    def resizes(self):
        return self.new_short is not None or self.new_size is not None

    def of(self, size):
        """(height, width) for a source of `size` (height, width)."""
        h, w = size
        if self.new_size is not None:
            return tuple(self.new_size)
        if self.new_short is None or (min(h, w) <= self.new_short and not self.enlarge):
            return h, w
        short, long = min(h, w), max(h, w)
        scaled = (2 * long * self.new_short + short) // (2 * short)
        return (self.new_short, scaled) if h <= w else (scaled, self.new_short)

    def frames_of(self, size):
        """(height, width) the frames of a source of `size` reach the model at (before its own size rule)."""
        return self.of(size) if self.flow_at == "output" else tuple(size)

    def record(self):
        """What the files depend on, for a settings file (JSON); where the model ran only matters when
        the output is resized."""
        return {"new_short": self.new_short, "new_size": None if self.new_size is None else list(self.new_size),
                "enlarge": self.enlarge, "flow_at": self.flow_at if self.resizes else None}


def parse_width_height(text):
    """"WxH" (e.g. "340x256", denseflow's --nw x --nh) -> (H, W)."""
    parts = str(text).lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise Flownet2Error(f"size {text!r} not understood: expected WIDTHxHEIGHT, e.g. 340x256")
    width, height = (int(p) for p in parts)
    return OutputSize(new_size=(height, width)).new_size

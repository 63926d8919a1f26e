"""The size and batch rules every stage shares (plumbing: imports nothing else of the toolkit's but errors)."""
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

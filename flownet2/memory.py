"""How much memory a model needs at the size it runs, how much this machine has, and what fits
(plumbing: imports nothing of the toolkit's but errors and sizes).

    estimate(engine="openvino", precision="bf16", member="flownet2", batch=1, size=(3072, 4032))
    available_bytes()          MemAvailable, or less where a cgroup (container, Slurm job) limits the process
    check_fits(...)            one line refusing a size whose estimate exceeds what is available, with the
                               largest short side that fits
    describe(estimate, available)   "estimated peak N GiB of M GiB available, ~T s/pair"

The estimate is a line per (engine, precision, member, stage), measured by benchmarks/bench_memory.py:
peak bytes = fixed + per_pixel x batch x H x W, with H x W the model's input size (multiples of 64).
Stages: "convert" is OpenVINO's first open of a checkpoint or stand-in (export to ONNX, convert,
compile, run), "cached" the same with the converted model in the cache, "run" every other engine (open
and run). Converting traces the model once in PyTorch fp32 and then runs it, so its estimate is the
largest of its own line and those of PyTorch fp32 and of the cached run: at the measured sizes the
conversion's fixed cost (the ONNX graph, its copies) dominates; beyond ~1.5 model megapixels (FlowNet2)
the trace's activations do. Where no row was measured, a bounding one stands
in (fp32 for PyTorch's other precisions, FlowNet2 for a smaller member), and the estimate says so.
"""
import os
from dataclasses import dataclass

from .errors import Flownet2Error
from .sizes import OutputSize, model_size

MIB = 2 ** 20
GIB = 2 ** 30
LARGE_SHARE = 0.25  # describe() speaks when the estimate is more than this share of what is available


@dataclass(frozen=True)
class Cost:
    fixed: int                    # bytes: weights, the engine, buffers that do not grow with the size
    per_pixel: float              # bytes per model pixel (batch x H x W)
    s_fixed: float | None = None  # seconds per run, fixed part (None: not timed)
    s_per_mpx: float | None = None  # seconds per model megapixel


# `python benchmarks/bench_memory.py` (its default rows, in two runs: --rows torch/fp32/css,torch/fp32/s
# came second; model sizes 256x256, 512x768, 1024x1344; batch 1; stand-in weights), on a 2-core Intel
# Xeon with AMX (amx_bf16, avx512_bf16), 23.5 GiB, 2026-12-06, shared with other jobs (load average 0.7
# to 6.0: the seconds are from that load; memory does not depend on it). The fitted lines as printed.
TABLE = {
    ("openvino", "bf16", "flownet2", "convert"): Cost(2830 * MIB, 408, -0.022, 1.018),
    ("openvino", "bf16", "flownet2", "cached"): Cost(1093 * MIB, 595, -0.251, 2.191),
    ("openvino", "fp32", "flownet2", "convert"): Cost(2807 * MIB, 582, -0.391, 6.669),
    ("openvino", "fp32", "flownet2", "cached"): Cost(1396 * MIB, 824, -0.797, 7.607),
    ("torch", "fp32", "flownet2", "run"): Cost(1028 * MIB, 1615, -0.374, 40.062),
    ("onnxruntime", "fp32", "flownet2", "export"): Cost(2796 * MIB, 455, None, None),
    ("onnxruntime", "fp32", "flownet2", "run"): Cost(990 * MIB, 2290, 1.478, 10.079),
    ("openvino", "bf16", "css", "convert"): Cost(2152 * MIB, 150, 0.167, 1.961),
    ("openvino", "bf16", "css", "cached"): Cost(813 * MIB, 294, 0.032, 2.149),
    ("openvino", "bf16", "s", "convert"): Cost(913 * MIB, 73, 0.063, 0.232),
    ("openvino", "bf16", "s", "cached"): Cost(336 * MIB, 172, 0.051, 0.269),
    ("torch", "fp32", "css", "run"): Cost(805 * MIB, 447, 2.936, 11.396),
    ("torch", "fp32", "s", "run"): Cost(469 * MIB, 265, 1.004, 1.443),
}

# members by their arch key (flownet2.model.family.arch_key), each followed by the members that contain
# it (FlowNet2 = C -> S -> S beside SD, fused; CS = C -> S): a row not measured for a member is bounded by
# the first of these that was
CONTAINED_IN = {"flownet2": ("flownet2",), "css": ("css", "flownet2"), "cs": ("cs", "css", "flownet2"),
                "c": ("c", "cs", "css", "flownet2"), "s": ("s", "cs", "css", "flownet2"), "sd": ("sd", "flownet2")}
NAMES = {"flownet2": "FlowNet2", "css": "FlowNet2-CSS", "cs": "FlowNet2-CS", "sd": "FlowNet2-SD",
         "c": "FlowNet2-C", "s": "FlowNet2-S"}
ENGINES = {"openvino": "OpenVINO", "torch": "PyTorch", "onnxruntime": "ONNX Runtime"}  # names in messages
BOUNDING_PRECISION = {"tf32": "fp32", "fp16": "fp32", "bf16": "fp32"}  # bf16/fp16 keep fewer bytes than fp32


@dataclass(frozen=True)
class Estimate:
    peak: int                # bytes
    seconds: float | None    # per pair, on the machine the table was measured on; None: not timed
    basis: str               # which row: "FlowNet2 on OpenVINO bf16, converting"
    size: tuple              # the model's (H, W)
    batch: int


def member_key(text):
    """"css" for "css", "CSS", "FlowNet2-CSS" (flownet2.model.family.arch_key's rule, without importing
    torch); None for None; an unknown name gives "flownet2", the largest member (an upper bound)."""
    if text is None:
        return None
    t = str(text).lower().replace("-", "").replace("_", "")
    if t.startswith("flownet2") and t != "flownet2":
        t = t[len("flownet2"):]
    return t if t in CONTAINED_IN else "flownet2"


def stand_in_member(model):
    """The member key of "stand-in:SEED" ("flownet2") or "stand-in:MEMBER:SEED"; None for anything else."""
    parts = str(model).split(":")
    if parts[0] != "stand-in" or len(parts) not in (2, 3) or not parts[-1].isdigit():
        return None
    return member_key(parts[1]) if len(parts) == 3 else "flownet2"


def _row(engine, precision, member, stage):
    """(Cost, bounded) of the measured row, else of the nearest row known to need at least as much."""
    precisions = [precision] + ([BOUNDING_PRECISION[precision]] if precision in BOUNDING_PRECISION else [])
    for m in CONTAINED_IN[member]:
        for p in precisions:
            if (engine, p, m, stage) in TABLE:
                return TABLE[engine, p, m, stage], (p, m) != (precision, member)
    return None, False


def estimate(*, engine, precision, member, batch, size, stage="run"):
    """The peak bytes and seconds per pair of running `member` on `engine` at model size (H, W); None
    where the table has no row for the engine (an Ascend NPU's memory is the card's, not the host's)."""
    member = member_key(member) or "flownet2"
    cost, bounded = _row(engine, precision, member, stage)
    if cost is None:
        return None
    height, width = size
    pixels = batch * height * width
    peak = _peak(cost, pixels)
    if stage == "convert":  # the export traces the model in PyTorch fp32, then the engine runs it
        for phase in (("torch", "fp32", member, "run"), (engine, precision, member, "cached")):
            bound, _ = _row(*phase)
            peak = peak if bound is None else max(peak, _peak(bound, pixels))
    seconds = None
    if cost.s_per_mpx is not None:
        seconds = max(0.0, cost.s_fixed + cost.s_per_mpx * pixels / 1e6) / batch  # the fit's intercept may be < 0
    how = {"convert": ", converting", "cached": ", converted"}.get(stage, "")
    bound = " (bounded by a larger row)" if bounded else ""
    basis = f"{NAMES[member]} on {ENGINES.get(engine, engine)} {precision}{how}{bound}"
    return Estimate(peak, seconds, basis, (height, width), batch)


def _peak(cost, pixels):
    return int(cost.fixed + cost.per_pixel * pixels)


# --------------------------------------------------------------------------- what is available

def available_bytes(*, meminfo="/proc/meminfo", proc_cgroup="/proc/self/cgroup", cgroup_root="/sys/fs/cgroup"):
    """Bytes this process can still take: MemAvailable, or less where a cgroup's limit minus its usage
    is smaller (v2 memory.max / memory.current; v1 memory.limit_in_bytes / memory.usage_in_bytes; the
    process's cgroup and its ancestors). None where nothing can be read (not Linux)."""
    values = [v for v in [_meminfo_available(meminfo)] if v is not None]
    values += [max(0, limit - usage) for limit, usage in _cgroup_limits(proc_cgroup, cgroup_root)]
    return min(values) if values else None


def _meminfo_available(path):
    try:
        with open(path) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    for key in ("MemAvailable", "MemFree"):  # MemFree: kernels before 3.14 have no MemAvailable
        if key in fields:
            return int(fields[key].split()[0]) * 1024  # "19625612 kB"
    return None


def _cgroup_limits(proc_cgroup, root):
    """(limit, usage) of every memory cgroup that bounds this process."""
    try:
        with open(proc_cgroup) as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f if line.count(":") >= 2]
    except OSError:
        return []
    found = []
    for hierarchy, controllers, path in lines:
        if hierarchy == "0" and controllers == "":  # v2: at the root, or beside v1 under unified/
            for base in (root, os.path.join(root, "unified")):
                found += _walk(base, path, "memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            found += _walk(os.path.join(root, "memory"), path, "memory.limit_in_bytes", "memory.usage_in_bytes")
    return found


def _walk(base, path, limit_name, usage_name):
    """(limit, usage) of the cgroup at `path` and each ancestor that has both files. Inside a container
    the mount's root is the container's own cgroup (the path from /proc/self/cgroup is not there), so
    the root's files count too."""
    parts = [p for p in path.split("/") if p]
    found = []
    for depth in range(len(parts), -1, -1):
        folder = os.path.join(base, *parts[:depth])
        limit, usage = _read_int(os.path.join(folder, limit_name)), _read_int(os.path.join(folder, usage_name))
        if limit is not None and usage is not None:
            found.append((limit, usage))
    return found


def _read_int(path):
    """The integer in a cgroup file; None where absent, unreadable or "max" (no limit)."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# --------------------------------------------------------------------------- the rule

def largest_short_side(fits, frame_size):
    """The largest short side S (1 .. the frames' short side) whose model size, for frames of
    `frame_size` (H, W) resized to short side S, `fits(model size)`; None when not even S = 1 does.
    The model size grows with S, so a bisection finds it."""
    def ok(short):
        return fits(model_size(*OutputSize(new_short=short).of(frame_size)))

    low, high = 0, min(frame_size)  # ok(low) holds (0: nothing yet); every S above high fails or is not asked
    if not ok(1):
        return None
    low = 1
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid):
            low = mid
        else:
            high = mid - 1
    return low


def check_fits(*, engine, precision, member, batch, size, stage="run", frame_size=None, available=None,
               what="model", fixed_size=False):
    """Refuse, in one line, running `member` at model size `size` (H, W) when its estimated peak exceeds
    the memory available (available_bytes() unless given). The line gives both numbers and the largest
    short side that fits for frames of `frame_size` (default: `size`), or, for a model whose input size
    is fixed by its file (`fixed_size`: an .onnx), the largest size to export it at. Returns the
    Estimate (or None when the table has no row for the engine or the memory cannot be read)."""
    est = estimate(engine=engine, precision=precision, member=member, batch=batch, size=size, stage=stage)
    available = available_bytes() if available is None else available
    if est is None or available is None or est.peak <= available:
        return est

    def fits(msize):
        return estimate(engine=engine, precision=precision, member=member, batch=batch, size=msize,
                        stage=stage).peak <= available

    frame_size = tuple(frame_size or size)
    short = largest_short_side(fits, frame_size)
    if short is None:
        hint = f"not even the smallest frames fit (batch {batch}): free memory or use a machine with more"
    elif fixed_size:  # an exported model runs at the size it was exported at, whatever the frames
        shape = model_size(*OutputSize(new_short=short).of(frame_size))
        hint = f"its input size is fixed by the file: export it at {shape[1]}x{shape[0]} or smaller"
    else:
        shape = OutputSize(new_short=short).of(frame_size)
        hint = (f"frames of {frame_size[1]}x{frame_size[0]} fit with their short side at most {short} "
                f"({shape[1]}x{shape[0]}): new_short={short} (--new-short {short}), or a smaller new_size "
                f"(--new-size)")
    raise Flownet2Error(f"{what}: {est.basis} at {size[1]}x{size[0]} (batch {batch}) needs an estimated "
                        f"{est.peak / GIB:.1f} GiB at its peak, more than the {available / GIB:.1f} GiB of memory "
                        f"available here; {hint}")


def describe(est, available=None, *, always=False):
    """"estimated peak N GiB of M GiB available, ~T s/pair": for the first lines of a run whose
    estimate is large (over a quarter of what is available), else None (or always, with `always`)."""
    available = available_bytes() if available is None else available
    if est is None or available is None or (not always and est.peak <= LARGE_SHARE * available):
        return None
    pace = "" if est.seconds is None else f", ~{est.seconds:.{0 if est.seconds >= 10 else 1}f} s/pair"
    return f"estimated peak {est.peak / GIB:.1f} GiB of {available / GIB:.1f} GiB available{pace}"

"""Read NVIDIA's FlowNet2_checkpoint.pth.tar safely; make seeded stand-in weights in the same format.

The official file is a legacy (non-zip) torch pickle of {'state_dict', 'epoch', 'best_EPE'}. Despite
its name it is not a tar archive. We also accept a bare state dict, zip-format files and the
`module.` prefix DataParallel adds. A checkpoint of stand-in weights written here carries their
seed under an extra key, so whatever is made from it stays labelled stand-in.

    model, label = load_model("FlowNet2_checkpoint.pth.tar")   # or load_model(0): stand-in seed 0
    model, label = load_model("FlowNet2-CSS_checkpoint.pth.tar")  # any member, told by its keys
    model, label = load_model("stand-in:css:0")                 # stand-in weights of a member

The member a checkpoint holds is read from its keys (family.identify); `arch` says which one is
expected, and a checkpoint of another member is refused with both names.
"""
import hashlib
import math
import os
import pickle

import torch

from ..errors import Flownet2Error
from ..fileio import atomic_write
from . import family, provenance
from .ops import CORRELATION_MODES

# Extra keys of the official layout, for stand-in weights only (NVIDIA's loader reads 'state_dict'
# and ignores them): the seed, and the tensors' fingerprint when they were saved.
STAND_IN_SEED = "flownet2.stand_in_seed"
SAVED_TENSORS = "flownet2.tensors"

# What a download gone wrong usually leaves behind, by its first bytes.
_NOT_A_CHECKPOINT = [
    (b"<!DOCTYPE", "an HTML page (a failed or login-walled download?)"),
    (b"<html", "an HTML page (a failed or login-walled download?)"),
    (b"\x1f\x8b", "a gzip archive (unpack it first)"),
    (b"{", "a JSON/text file"),
]
_SHOW = 5  # offending keys listed in an error


def _sniff(path):
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise Flownet2Error(f"{path}: no such checkpoint file") from None
    except IsADirectoryError:
        raise Flownet2Error(f"{path}: is a folder, expected a FlowNet2 .pth.tar checkpoint file") from None
    if not head:
        raise Flownet2Error(f"{path}: file is empty, expected a FlowNet2 checkpoint")
    stripped = head.lstrip()
    for magic, what in _NOT_A_CHECKPOINT:
        if stripped[: len(magic)].lower() == magic.lower():
            raise Flownet2Error(f"{path}: not a torch checkpoint, it is {what}")
    if len(head) > 262 and head[257:262] == b"ustar":
        raise Flownet2Error(f"{path}: a tar archive, not a torch checkpoint (extract the .pth/.pth.tar inside)")
    if not (head.startswith(b"\x80") or head.startswith(b"PK\x03\x04")):
        raise Flownet2Error(f"{path}: not a torch checkpoint (neither a legacy torch pickle nor a zip file)")


def load_raw(path, unsafe_pickle=False):
    """torch.load the file; weights_only unless the caller explicitly accepted arbitrary unpickling."""
    path = os.fspath(path)
    _sniff(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=not unsafe_pickle)
    except pickle.UnpicklingError as e:
        if unsafe_pickle:
            raise Flownet2Error(f"{path}: corrupt or truncated checkpoint ({e})") from None
        raise Flownet2Error(
            f"{path}: will not load with safe (weights_only) unpickling: {str(e).splitlines()[0]} "
            "-- if you trust this file, rerun with --unsafe-pickle (it can run arbitrary code)") from None
    except Exception as e:  # noqa: BLE001 - a corrupt pickle fails in many ways (struct, EOF, Key...)
        raise Flownet2Error(f"{path}: corrupt or truncated checkpoint ({str(e).splitlines()[0]})") from None


def extract_state_dict(obj, path="checkpoint"):
    """The tensor dict inside a checkpoint object, with any `module.` prefix removed."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise Flownet2Error(f"{path}: holds no state dict (expected a dict of tensors or {{'state_dict': ...}})")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def check_state_dict(state, expected, path="checkpoint", *, what="FlowNet2"):
    """Raise one clear error if keys or shapes differ from `expected` (a model's state_dict, or
    {key: shape}); `what` names the network expected."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = {k: tuple(getattr(v, "shape", v)) for k, v in expected.items()}  # tensors or shape tuples
    shaped = [f"{k} {tuple(state[k].shape)} != {shapes[k]}"
              for k in expected if k in state and tuple(state[k].shape) != shapes[k]]
    if not (missing or unexpected or shaped):
        return
    parts = []
    for name, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", shaped)):
        if items:
            more = f", ... {len(items) - _SHOW} more" if len(items) > _SHOW else ""
            parts.append(f"{len(items)} {name} ({', '.join(items[:_SHOW])}{more})")
    raise Flownet2Error(
        f"{path}: not a {what} checkpoint: expected {len(expected)} tensors, got {len(state)}; "
        + "; ".join(parts))


def load_flownet2(model, path, unsafe_pickle=False):
    """Load the official (or compatible) checkpoint into `model`; returns the raw extras (epoch...)."""
    raw = load_raw(path, unsafe_pickle)
    _load_state(model, extract_state_dict(raw, path), path)
    return _extras(raw)


def _load_state(model, state, path, what="FlowNet2"):
    check_state_dict(state, model.state_dict(), path, what=what)
    model.load_state_dict({k: v.float() for k, v in state.items()})


def _extras(raw):
    return {k: v for k, v in raw.items() if k != "state_dict"} if isinstance(raw, dict) and "state_dict" in raw else {}


def checkpoint_arch(state, path="checkpoint", arch=None):
    """The arch key of the member `state` holds; with `arch` given, refuse any other member.

    Keys fitting no member: with `arch`, the key-by-key difference from that member; else what the
    keys look like.
    """
    want = None if arch is None else family.arch_key(arch)
    try:
        found = family.identify(state, path)
    except Flownet2Error:
        if want is None:
            raise
        check_state_dict(state, family.member_shapes(want), path, what=family.member_name(want))
        raise
    if want is not None and found != want:
        raise Flownet2Error(f"{path}: a {family.member_name(found)} checkpoint (by its keys), "
                            f"not the {family.member_name(want)} asked for")
    return found


def stand_in_state_dict(model, seed):
    """Seeded random weights for tests and demos, in `model`'s key order and shapes.

    Weights are He-uniform times 0.9: flows reach ~20 px (so the warps really move) while the
    network stays well conditioned (fp32 vs fp64 within ~5e-4 px; at gain 1.0 flows reach ~45 px
    and fp32 rounding alone moves them by 1.5e-3 px). Biases small. Deterministic per seed and
    independent of the torch global RNG. Each tensor has a generator of its own, seeded from
    (seed, key), so adding or reordering modules leaves every other tensor as it was.
    """
    state = {}
    for key, ref in model.state_dict().items():
        gen = torch.Generator().manual_seed(_key_seed(seed, key))
        if key.endswith("bias"):
            t = (torch.rand(ref.shape, generator=gen) - 0.5) * 0.02
        else:
            fan_in = ref.shape[1] * ref[0, 0].numel()
            if "deconv" in key or "upsampled" in key:  # ConvTranspose2d: (in, out, k, k)
                fan_in = ref.shape[0] * ref[0, 0].numel() / 4  # stride 2: each output sees 1/4 of the taps
            bound = 0.9 * math.sqrt(6.0 / fan_in)
            t = (torch.rand(ref.shape, generator=gen) * 2 - 1) * bound
        state[key] = t
    return state


def _key_seed(seed, key):
    """A 63-bit generator seed of its own for each (seed, tensor key)."""
    return int.from_bytes(hashlib.sha256(f"{int(seed)}/{key}".encode()).digest()[:8], "little") >> 1


def save_checkpoint(path, state_dict, epoch=0, best_epe=float("nan"), *, stand_in_seed=None):
    """Write the official layout: a legacy (non-zip) pickle of {'state_dict', 'epoch', 'best_EPE'}.

    Stand-in weights (`stand_in_seed` given) also record their seed and fingerprint, so a model
    exported from this file is still labelled stand-in.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    payload = {"state_dict": tensors, "epoch": int(epoch), "best_EPE": float(best_epe)}
    if stand_in_seed is not None:
        payload[STAND_IN_SEED] = int(stand_in_seed)
        payload[SAVED_TENSORS] = provenance.fingerprint(tensors)
    with atomic_write(path, "wb") as f:
        torch.save(payload, f, _use_new_zipfile_serialization=False)


def _file_label(path, extras, tensors, member=None):
    """The label of weights read from `path`: stand-in if the file says so, else by content."""
    seed = extras.get(STAND_IN_SEED)
    if seed is None:
        return provenance.checkpoint_label(path, tensors, member)
    changed = "" if extras.get(SAVED_TENSORS) == tensors else ",changed-after-saving"
    return provenance.stand_in_label(f"{seed}{changed}", tensors, member)


def load_model(weights, *, arch=None, corr_mode="matmul", unsafe_pickle=False):
    """(a FlowNet2 family member in eval mode on the CPU, weights label) from a checkpoint or a stand-in seed.

    `weights`: an int seed, "stand-in:SEED" or "stand-in:MEMBER:SEED" for stand-in weights, else a
    checkpoint file, whose keys say the member. `arch` (a key or name: "css", "FlowNet2-CSS"): the
    member expected; stand-in weights default to FlowNet2.
    """
    if corr_mode not in CORRELATION_MODES:
        raise Flownet2Error(f"correlation mode must be one of {', '.join(CORRELATION_MODES)}, got {corr_mode!r}")
    want = None if arch is None else family.arch_key(arch)
    spec = provenance.stand_in_spec(weights) if isinstance(weights, str) else None
    if spec is not None:
        member = None if spec[0] is None else family.arch_key(spec[0])
        if member is not None and want is not None and member != want:
            raise Flownet2Error(f"{weights}: stand-in weights of {family.member_name(member)}, "
                                f"not the {family.member_name(want)} asked for")
        want, weights = member or want, spec[1]
    if isinstance(weights, int) and not isinstance(weights, bool):
        arch = want or family.DEFAULT_ARCH
        with torch.device("meta"):  # shapes only: skips initialising 162M parameters that are replaced anyway
            model = family.build(arch, corr_mode)
        state = stand_in_state_dict(model, weights)
        model.load_state_dict(state, assign=True)
        label = provenance.stand_in_label(weights, provenance.fingerprint(state), family.member_name(arch))
        return model.eval(), label
    raw = load_raw(weights, unsafe_pickle)
    state = extract_state_dict(raw, weights)
    arch = checkpoint_arch(state, weights, want)
    with torch.device("meta"):
        model = family.build(arch, corr_mode)
    _load_state(model.to_empty(device="cpu"), state, weights, family.member_name(arch))
    return model.eval(), _file_label(weights, _extras(raw), provenance.fingerprint(model.state_dict()),
                                     family.member_name(arch))

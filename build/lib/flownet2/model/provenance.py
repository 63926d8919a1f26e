"""Which weights produced a model file, so every EPE printed from it can say so.

A weights label names where the weights came from and a fingerprint of the tensors themselves:

    stand-in:seed=0 tensors:3f9a1c0d2b7e6a51                          seeded random weights
    checkpoint FlowNet2_checkpoint.pth.tar tensors:8c2e...            a checkpoint file, by content
    stand-in:seed=0 arch:FlowNet2-CSS tensors:77d0...                  a smaller member of the family

A label names the member of the FlowNet2 family (`arch:FlowNet2-CSS`) unless it is FlowNet2 itself,
so FlowNet2's labels read as they always did.

The fingerprint is a digest of the tensors (key, dtype, shape, bytes; keys sorted), not of the file,
so the same weights in a re-saved or renamed file keep it, and other weights under the same file
name do not. No label calls a file "official": a name proves nothing. The exporter stores the
label in the ONNX metadata (`flownet2.weights`); an Ascend `.om` keeps no metadata, so
scripts/atc.sh copies it into a sidecar `<model>.om.weights` text file. Labels of earlier versions
(`official:<file>`, `stand-in:seed=N`) are still read.
"""
import hashlib
import os
import re

KEY = "flownet2.weights"
STAND_IN_BANNER = (
    "!!! STAND-IN WEIGHTS (seeded random, not the FlowNet2 checkpoint): "
    "this EPE says nothing about FlowNet2's accuracy !!!"
)
_FINGERPRINT_HEX = 16  # 64 bits: enough to tell weights apart, short enough to read in a label


def fingerprint(state_dict):
    """`tensors:<hex>`: sha256 over every tensor's key, dtype, shape and raw bytes, keys sorted.

    Hashes the tensors' memory directly (no copy): ~0.45 s for FlowNet2's 162M float32 parameters.
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}\0{str(t.dtype)}\0{tuple(t.shape)}\0".encode())
        digest.update(memoryview(t.numpy()).cast("B"))
    return "tensors:" + digest.hexdigest()[:_FINGERPRINT_HEX]


ARCH_TAG = "arch:"
DEFAULT_MEMBER = "FlowNet2"


def _member(member):
    return f" {ARCH_TAG}{member}" if member and member != DEFAULT_MEMBER else ""


def stand_in_label(seed, tensors=None, member=None):
    return f"stand-in:seed={seed}{_member(member)}" + (f" {tensors}" if tensors else "")


def checkpoint_label(path, tensors, member=None):
    return f"checkpoint {os.path.basename(os.fspath(path))}{_member(member)} {tensors}"


def label_member(label):
    """The family member a label names ("FlowNet2-CSS"), FlowNet2 when it names none, None for no label."""
    if label is None:
        return None
    for word in label.split():
        if word.startswith(ARCH_TAG):
            return word[len(ARCH_TAG):]
    return DEFAULT_MEMBER


def stand_in_spec(text):
    """(member or None, seed) for the weights spec "stand-in:SEED" or "stand-in:MEMBER:SEED" (stand-in:css:0),
    else None. The member is as written; flownet2.model.family.arch_key checks it."""
    m = re.fullmatch(r"stand-in:(?:([A-Za-z0-9_-]+):)?(\d+)", str(text))
    return (m[1], int(m[2])) if m else None


def stand_in_seed(label):
    """The seed a stand-in label names (int), or None for any other label."""
    if not is_stand_in(label) or not label.startswith("stand-in:seed="):
        return None
    digits = label[len("stand-in:seed="):].split(",")[0].split()[0]
    return int(digits) if digits.isdigit() else None


def is_stand_in(label):
    """True for every stand-in label, of this version and earlier ones."""
    return label is not None and label.startswith("stand-in")


def model_kind(model):
    """What kind of model `model` names: "onnx", "om" (by extension), else "torch" (a checkpoint file or
    stand-in:SEED). The lowest layer's view; runtime/engines.py maps each kind to the engine that runs it."""
    model = os.fspath(model)
    for kind, extension in MODEL_EXTENSIONS.items():
        if model.endswith(extension):
            return kind
    return "torch"


def _onnx_label(model_path):
    if not os.path.exists(model_path):
        return None
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == KEY:
            return prop.value
    return None


def _om_label(model_path):
    sidecar = model_path + ".weights"  # an .om keeps no metadata: atc.sh writes the label beside it
    if os.path.exists(sidecar):
        with open(sidecar) as f:
            return f.read().strip() or None
    return None


MODEL_EXTENSIONS = {"onnx": ".onnx", "om": ".om"}  # file kinds that carry their own label
_LABEL_READERS = {"onnx": _onnx_label, "om": _om_label}


def weights_label(model_path):
    """The label recorded for `model_path` (.onnx metadata or .om sidecar), or None if unknown."""
    model_path = os.fspath(model_path)
    reader = _LABEL_READERS.get(model_kind(model_path))
    return reader(model_path) if reader else None

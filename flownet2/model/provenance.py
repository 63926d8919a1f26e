"""Which weights produced a model file, so every EPE printed from it can say so.

A weights label names where the weights came from and a fingerprint of the tensors themselves:

    stand-in:seed=0 tensors:3f9a1c0d2b7e6a51                          seeded random weights
    checkpoint FlowNet2_checkpoint.pth.tar tensors:8c2e...            a checkpoint file, by content

The fingerprint is a digest of the tensors (key, dtype, shape, bytes; keys sorted), not of the file,
so the same weights in a re-saved or renamed file keep it, and other weights under the same file
name do not. No label calls a file "official": a name proves nothing. The exporter stores the
label in the ONNX metadata (`flownet2.weights`); an Ascend `.om` keeps no metadata, so
scripts/atc.sh copies it into a sidecar `<model>.om.weights` text file. Labels of earlier versions
(`official:<file>`, `stand-in:seed=N`) are still read.
"""
import hashlib
import os

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


def stand_in_label(seed, tensors=None):
    return f"stand-in:seed={seed}" + (f" {tensors}" if tensors else "")


def checkpoint_label(path, tensors):
    return f"checkpoint {os.path.basename(os.fspath(path))} {tensors}"


def stand_in_seed(label):
    """The seed a stand-in label names (int), or None for any other label."""
    if not is_stand_in(label) or not label.startswith("stand-in:seed="):
        return None
    digits = label[len("stand-in:seed="):].split(",")[0].split()[0]
    return int(digits) if digits.isdigit() else None


def is_stand_in(label):
    """True for every stand-in label, of this version and earlier ones."""
    return label is not None and label.startswith("stand-in")


def weights_label(model_path):
    """The label recorded for `model_path` (.onnx metadata or .om sidecar), or None if unknown."""
    model_path = os.fspath(model_path)
    if model_path.endswith(".om"):
        sidecar = model_path + ".weights"
        if os.path.exists(sidecar):
            with open(sidecar) as f:
                return f.read().strip() or None
        return None
    if model_path.endswith(".onnx") and os.path.exists(model_path):
        import onnx

        model = onnx.load(model_path, load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == KEY:
                return prop.value
    return None

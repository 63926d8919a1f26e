"""Which weights produced a model file, so every EPE printed from it can say so.

The exporter stores a label in the ONNX metadata (`flownet2.weights`): `official:<file>` or
`stand-in:seed=<N>`. An Ascend `.om` keeps no metadata, so scripts/atc.sh copies the label into a
sidecar `<model>.om.weights` text file.
"""
import os

KEY = "flownet2.weights"
STAND_IN_BANNER = (
    "!!! STAND-IN WEIGHTS (seeded random, not the FlowNet2 checkpoint): "
    "this EPE says nothing about FlowNet2's accuracy !!!"
)


def stand_in_label(seed):
    return f"stand-in:seed={seed}"


def official_label(path):
    return f"official:{os.path.basename(os.fspath(path))}"


def is_stand_in(label):
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

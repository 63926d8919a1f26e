"""ONNX graph rewrites, reduced-precision emulation and the Ascend ATC checks."""

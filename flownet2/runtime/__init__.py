"""Opening and running a model: ONNX Runtime, PyTorch, ais_bench; the ais_bench-compatible runner and the pairs -> flow loop."""

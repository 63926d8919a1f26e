"""Opening and running a model: the engine table, sessions (ONNX Runtime, PyTorch, ais_bench), the
ais_bench-compatible run and hand-over, and the pairs -> flow loop."""

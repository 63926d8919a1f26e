"""FlowNet2 offline inference toolkit: pure-PyTorch model, ONNX export, Sintel pre/post-processing."""

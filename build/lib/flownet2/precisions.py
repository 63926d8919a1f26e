"""The precisions a FlowNet2 model runs in, by name (plumbing: every engine's entry in runtime/engines.py
draws its own from this list, and --precision offers it without importing any engine)."""

PRECISIONS = ("fp32", "tf32", "fp16", "bf16")

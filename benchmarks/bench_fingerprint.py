"""What naming the weights by content costs: the tensor fingerprint of FlowNet2's 162M parameters,
beside the load it accompanies (stand-in generation, reading a checkpoint file).

  python benchmarks/bench_fingerprint.py          # median of 3 runs each, after a warm-up
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench_cpu import _time  # noqa: E402  (one warm-up call, then the median of `runs`)


def main():
    from flownet2.model.checkpoint import load_model, save_checkpoint
    from flownet2.model.provenance import fingerprint

    model, label = load_model(0)
    state = model.state_dict()
    params = sum(t.numel() for t in state.values())
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "FlowNet2_checkpoint.pth.tar")
        save_checkpoint(path, state)
        rows = [("fingerprint (sha256 over the tensors)", _time(lambda: fingerprint(state), 3)),
                ("load_model(seed): stand-in weights + fingerprint", _time(lambda: load_model(0), 3)),
                ("load_model(checkpoint file) + fingerprint", _time(lambda: load_model(path), 3))]
    print(f"{params:,} parameters; label {label}")
    print("| step | s (median of 3, after a warm-up) | share of the load |")
    print("|---|---|---|")
    for name, sec in rows:
        share = "" if name.startswith("fingerprint") else f"{rows[0][1] / sec:.0%}"
        print(f"| {name} | {sec:.3f} | {share} |")


if __name__ == "__main__":
    main()

"""FlowNet2 predictions ({k}_0.bin from ais_bench or our runner) -> EPE (and KITTI's Fl) against the ground truth.

The code is flownet2/commands/postprocess.py; after `pip install .` the same command is `flownet2-postprocess`."""
from flownet2.commands.postprocess import cli

if __name__ == "__main__":
    cli()

"""A benchmark dataset -> normalised .bin batches for the FlowNet2 model (the Ascend guide's layout + manifest.json).

The code is flownet2/commands/preprocess.py; after `pip install .` the same command is `flownet2-preprocess`."""
from flownet2.commands.preprocess import cli

if __name__ == "__main__":
    cli()

"""Optical flow for your own frames, video or video collection, from any model the pipeline makes.

The code is flownet2/commands/predict.py; after `pip install .` the same command is `flownet2-predict`."""
from flownet2.commands.predict import cli

if __name__ == "__main__":
    cli()

"""FlowNet2 checkpoint -> ONNX (inputs x1, x2; output flow), as in the Ascend guide; any member of the family.

The code is flownet2/commands/pth2onnx.py; after `pip install .` the same command is `flownet2-pth2onnx`."""
from flownet2.commands.pth2onnx import cli

if __name__ == "__main__":
    cli()

"""Make a simplified FlowNet2 ONNX ready for Ascend ATC, as in the Ascend guide.

The code is flownet2/commands/fix_onnx.py; after `pip install .` the same command is `flownet2-fix-onnx`."""
from flownet2.commands.fix_onnx import cli

if __name__ == "__main__":
    cli()

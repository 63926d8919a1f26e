"""`flownet2-run-all` and `flownet2-atc`: the chain's bash scripts, shipped inside the package, run with
this Python (so the stages they start find the same installed toolkit)."""
import os
import shutil
import sys
from pathlib import Path


def _bash(script):
    bash = shutil.which("bash")
    if bash is None:
        sys.exit(f"error: {script} needs bash, which is not on PATH")
    path = Path(__file__).with_name(script)
    env = {**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)}
    os.execve(bash, [bash, str(path), *sys.argv[1:]], env)


def run_all():
    """The whole chain (flownet2/commands/run_all.sh); `--help` lists its flags."""
    _bash("run_all.sh")


def atc():
    """ATC for a fixed FlowNet2 ONNX (flownet2/commands/atc.sh); `--help` lists its flags."""
    _bash("atc.sh")

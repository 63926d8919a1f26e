"""FlowNet2 as defined at another git revision of this repository, for before/after comparisons.

    FlowNet2Before = model_class("main")   # flownet2/model/networks.py and ops.py as committed on main

The revision's network files (flownet2/{__init__,errors,sizes}.py and model/{__init__,ops,networks}.py,
or before the package had sub-packages flownet2/{__init__,errors,ops,model}.py) are read with `git show`
into a temporary package, so the comparison needs no second checkout and leaves the working tree alone.
"""
import importlib
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (files to read, the module holding FlowNet2): today's layout first, then the flat one it replaced
_LAYOUTS = ((("__init__.py", "errors.py", "sizes.py", "model/__init__.py", "model/ops.py", "model/networks.py"),
             "model.networks"),
            (("__init__.py", "errors.py", "ops.py", "model.py"), "model"))


def _show(rev, name):
    done = subprocess.run(["git", "-C", REPO, "show", f"{rev}:flownet2/{name}"], capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


def model_class(rev):
    """The FlowNet2 class of `rev` (a branch, tag or commit of this repository)."""
    folder = tempfile.mkdtemp(prefix="flownet2_rev_")
    package = "flownet2_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    for files, module in _LAYOUTS:
        texts = {name: _show(rev, name) for name in files}
        if None not in texts.values():
            break
    else:
        raise SystemExit(f"revision {rev}: no FlowNet2 model files found")
    for name, text in texts.items():
        os.makedirs(os.path.dirname(os.path.join(folder, package, name)), exist_ok=True)
        with open(os.path.join(folder, package, name), "w") as f:
            f.write(text)
    sys.path.insert(0, folder)
    return importlib.import_module(f"{package}.{module}").FlowNet2

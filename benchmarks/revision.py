"""FlowNet2 as defined at another git revision of this repository, for before/after comparisons.

    FlowNet2Before = model_class("main")   # flownet2/model.py and ops.py as committed on main

The revision's flownet2/{__init__,errors,ops,model}.py are read with `git show` into a temporary
package, so the comparison needs no second checkout and leaves the working tree alone.
"""
import importlib
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FILES = ("__init__.py", "errors.py", "ops.py", "model.py")


def model_class(rev):
    """The FlowNet2 class of `rev` (a branch, tag or commit of this repository)."""
    folder = tempfile.mkdtemp(prefix="flownet2_rev_")
    package = "flownet2_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    os.mkdir(os.path.join(folder, package))
    for name in _FILES:
        text = subprocess.run(["git", "-C", REPO, "show", f"{rev}:flownet2/{name}"], check=True,
                              capture_output=True, text=True).stdout
        with open(os.path.join(folder, package, name), "w") as f:
            f.write(text)
    sys.path.insert(0, folder)
    return importlib.import_module(f"{package}.model").FlowNet2

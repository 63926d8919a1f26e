"""What scripts/run_all.sh needs from Python: whether a stage may be skipped, and the tool checks.

A stage is skipped only when its command is the same as last time and everything it reads, and
everything it wrote, is the same as last time, judged by content: the sha256 of each file, and
for a folder the sha256 of its listing (every file's relative path, size and modification time:
equality only, never "newer than"). A stamp is written only after the stage succeeded.

    python -m flownet2.stages check  STAMP --in PATH... --out PATH... -- CMD...   # exit 0: skip it
    python -m flownet2.stages record STAMP --in PATH... --out PATH... -- CMD...
    python -m flownet2.stages model-size MANIFEST      # "H W"
    python -m flownet2.stages banner                   # the stand-in banner
    python -m flownet2.stages tools BACKEND [--emulate] # resolves auto; one line per missing tool
"""
import argparse
import hashlib
import importlib.util
import json
import os
import sys

from .cli import run_main
from .data.batches import load_manifest
from .errors import Flownet2Error
from .fileio import atomic_write, file_digest
from .model.provenance import STAND_IN_BANNER
from .runtime.engines import ENGINES

STAMP_VERSION = 1


def folder_digest(folder):
    """sha256 of a folder's listing: relative path, size and mtime (ns) of every file, sorted."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            st = os.stat(path)
            h.update(f"{os.path.relpath(path, folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "listing-sha256:" + h.hexdigest()


def path_digest(path):
    """What a stage sees at `path`: a file's content digest, a folder's listing digest, or None."""
    if os.path.isdir(path):
        return folder_digest(path)
    if os.path.isfile(path):
        return file_digest(path)
    return None


def snapshot(command, inputs, outputs):
    return {"version": STAMP_VERSION, "command": list(command),
            "inputs": {p: path_digest(p) for p in inputs if p},
            "outputs": {p: path_digest(p) for p in outputs if p}}


def why_run(stamp, command, inputs, outputs):
    """None when the stage may be skipped, else the reason it runs (one line)."""
    try:
        with open(stamp) as f:
            last = json.load(f)
    except (OSError, ValueError):
        return "no record of an earlier successful run"
    if not isinstance(last, dict) or last.get("version") != STAMP_VERSION:
        return "record of an earlier run not understood"
    now = snapshot(command, inputs, outputs)
    if last.get("command") != now["command"]:
        return "its command changed"
    for path, digest in now["outputs"].items():
        if digest is None:
            return f"{path} is missing"
    for kind in ("inputs", "outputs"):
        if last.get(kind) != now[kind]:
            changed = sorted(p for p in set(now[kind]) | set(last.get(kind) or {})
                             if now[kind].get(p) != (last.get(kind) or {}).get(p))
            return f"{changed[0] if changed else kind} changed since its last run"
    return None


def record(stamp, command, inputs, outputs):
    with atomic_write(stamp, "w") as f:
        json.dump(snapshot(command, inputs, outputs), f, indent=1)


# --------------------------------------------------------------------------- tools

def missing_tools(backend, emulate=False):
    """One line per tool `backend` needs that is not installed here."""
    missing = ENGINES[backend].missing_tools() if backend in ENGINES else []
    if emulate and importlib.util.find_spec("flownet2.onnx.precision") is None:
        missing.append("precision emulation (flownet2.onnx.precision) is not part of this installation")
    return missing


def resolve_backend(backend):
    if backend != "auto":
        return backend
    return "ascend" if not missing_tools("ascend") else "onnxruntime"


# --------------------------------------------------------------------------- command line

def _stamp_args(argv):
    """STAMP --in P... --out P... -- CMD...  ->  (stamp, command, inputs, outputs)."""
    if "--" not in argv:
        raise Flownet2Error("stage record needs '-- COMMAND...'")
    cut = argv.index("--")
    head, command = argv[:cut], argv[cut + 1:]
    p = argparse.ArgumentParser(prog="python -m flownet2.stages check|record")
    p.add_argument("stamp")
    p.add_argument("--in", dest="inputs", nargs="*", default=[])
    p.add_argument("--out", dest="outputs", nargs="*", default=[])
    a = p.parse_args(head)
    return a.stamp, command, a.inputs, a.outputs


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    what, rest = (argv[0], argv[1:]) if argv else ("", [])
    if what == "check":
        reason = why_run(*_stamp_args(rest))
        if reason:
            print(reason)
        return 1 if reason else 0
    if what == "record":
        record(*_stamp_args(rest))
        return 0
    if what == "model-size" and len(rest) == 1:
        print(*load_manifest(rest[0])["model_size"])
        return 0
    if what == "banner":
        print(STAND_IN_BANNER)
        return 0
    if what == "tools" and rest:
        backend = resolve_backend(rest[0])
        missing = missing_tools(backend, emulate="--emulate" in rest[1:])
        if missing:
            raise Flownet2Error(f"backend {backend} needs: " + "; ".join(missing))
        print(backend)
        return 0
    raise Flownet2Error("usage: python -m flownet2.stages check|record|model-size|banner|tools ... (see its docstring)")


if __name__ == "__main__":
    run_main(main)

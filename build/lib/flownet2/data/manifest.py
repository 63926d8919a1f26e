"""manifest.json, the contract between the stages: what it must hold, written atomically, and read back
only when this version understands every field later stages rely on (a damaged or foreign one is refused
in one line). flownet2/data/batches.py writes the files it describes."""
import json
import os

from ..errors import Flownet2Error
from ..fileio import atomic_write

FORMAT = "flownet2-batches"
VERSION = 3  # 2: sha256 of every source read ("sources") and every file written ("digests");
# 3: any benchmark layout ("dataset_type"), validity masks (mask/), each pair's "fit" to the model size
MANIFEST = "manifest.json"


def write_manifest(path, manifest):
    with atomic_write(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


_REQUIRED = ("dataset", "dataset_type", "pass", "resize_mode", "batch_size", "num_pairs", "num_batches",
             "model_size", "pairs", "batches", "sources", "digests")
_PAIR_FIELDS = {"index": int, "scene": str, "frame": int, "name": str, "batch": int, "slot": int, "size": list,
                "image1": str, "image2": str, "flow": str, "gt": str, "mask": str, "masks": list,
                "fit": dict}
_BATCH_FIELDS = {"batch": int, "slots": list, "filler_slots": list}


def _is_size(x):
    return isinstance(x, list) and len(x) == 2 and all(type(v) is int and v > 0 for v in x)


def _entry_problem(entry, fields, what):
    """What is wrong with one pair/batch entry (None if nothing)."""
    if not isinstance(entry, dict):
        return f"{what} is {json.dumps(entry)}, expected an object with {', '.join(fields)}"
    for key, kind in fields.items():
        if type(entry.get(key)) is not kind:
            return f"{what} has no {kind.__name__} {key!r} (got {json.dumps(entry.get(key))})"
    return None


def _structure_problem(m):
    """The first thing in manifest `m` that later stages could not rely on, or None."""
    if not (type(m["batch_size"]) is int and m["batch_size"] >= 1 and _is_size(m["model_size"])):
        return f"batch_size {m['batch_size']!r} / model_size {m['model_size']!r} not understood"
    if not (isinstance(m["pairs"], list) and len(m["pairs"]) == m["num_pairs"]):
        return f"num_pairs is {m['num_pairs']!r} but pairs is not a list of that many entries"
    if not (isinstance(m["batches"], list) and len(m["batches"]) == m["num_batches"]):
        return f"num_batches is {m['num_batches']!r} but batches is not a list of that many entries"
    for i, entry in enumerate(m["pairs"]):
        problem = _entry_problem(entry, _PAIR_FIELDS, f"pairs[{i}]")
        if problem or entry["index"] != i or not _is_size(entry["size"]):
            return problem or f"pairs[{i}] has index {entry['index']} or size {entry['size']} out of place"
    for k, batch in enumerate(m["batches"]):
        problem = _entry_problem(batch, _BATCH_FIELDS, f"batches[{k}]")
        if problem:
            return problem
        slots = batch["slots"]
        if batch["batch"] != k or len(slots) != m["batch_size"] or not all(
                type(i) is int and 0 <= i < m["num_pairs"] for i in slots):
            return f"batches[{k}] has batch {batch['batch']} or slots {slots} out of place"
    for key in ("sources", "digests"):
        if not isinstance(m[key], dict) or not all(isinstance(v, str) for v in m[key].values()):
            return f"{key} is not an object of file -> sha256"
    return None


def load_manifest(path):
    """Read a manifest, refusing clearly one this version does not understand."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise Flownet2Error(f"{path}: manifest not found (written by Flownet2_preprocess.py)") from None
    except (OSError, ValueError) as e:
        raise Flownet2Error(f"{path}: not a readable manifest ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise Flownet2Error(f"{path}: not a {FORMAT} manifest")
    if manifest.get("version") != VERSION:
        raise Flownet2Error(f"{path}: manifest version {manifest.get('version')!r} not understood "
                            f"(this version reads {VERSION}); rerun Flownet2_preprocess.py")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise Flownet2Error(f"{path}: manifest lacks {', '.join(missing)}")
    problem = _structure_problem(manifest)
    if problem:
        raise Flownet2Error(f"{path}: damaged manifest: {problem}; rerun Flownet2_preprocess.py")
    return manifest

"""The `.bin` batch layout of the Ascend guide, and the manifest that makes it self-describing.

    <out>/image1/{k}.bin   float32 (bs, 3, H, W), C order: first frames of batch k, normalised
    <out>/image2/{k}.bin   same for the second frames
    <out>/gt/{i}.bin       float32 (H, W, 2), HWC: pair i's ORIGINAL ground truth, zero-padded at the
                           bottom/right to the model size (in both size protocols, so it is lossless);
                           zero where unknown
    <out>/mask/{i}.bin     uint8 (H, W): pair i's masks as bits, zero-padded like gt: 1 = valid (known
                           flow), 2 = non-occluded and valid, 4 = foreground object and valid; the
                           pair's "masks" field says which of these the dataset has
    <out>/manifest.json    every pair's scene, frame, sources, batch file and slot, sizes, protocol,
                           and the sha256 of every file written (what later stages check)

Pair i sits in batch i // bs, slot i % bs; a short last batch is filled by repeating its first
sample, and the manifest marks those slots as filler. Later stages read the manifest, never the
file names or their sort order.
"""
import json
import os
import re
import shutil

import numpy as np
from tqdm import tqdm

from ..errors import Flownet2Error
from ..fileio import atomic_write, digest, file_digest, folder_lock, remove_temporaries
from ..sizes import check_batch_size, check_input_size, model_size
from . import datasets, decode, images, sintel
from .manifest import FORMAT, MANIFEST, VERSION, load_manifest, write_manifest  # noqa: F401 - read here too

FOLDERS = ("image1", "image2", "gt", "mask")
MASK_BITS = {"valid": 1, "noc": 2, "fg": 4}
NORMALISATION = ("per pair and channel: (pixel - mean over both frames' real pixels) / 255; "
                 "padding (value 0) added after normalising")
_BATCH_FILE = re.compile(r"^\d+\.bin$")


def _pair_size(pair):
    """The pair's (h, w), after checking both frames, the flow and its masks agree on it (headers
    only: a bad file is refused before anything is written)."""
    size = datasets.flow_size(pair.flow)
    for what, path, found in [("frame", p, images.image_size(p)) for p in (pair.image1, pair.image2)] + \
            [("mask", p, s) for p, s in datasets.mask_sizes(pair).items()]:
        if found != size:
            raise Flownet2Error(f"{path}: {what} is {found[1]}x{found[0]} but its flow {pair.flow} "
                                f"is {size[1]}x{size[0]}")
    return size


def _masks(pair):
    return ["valid"] + (["noc"] if pair.flow_noc or pair.occlusions else []) + (["fg"] if pair.obj_map else [])


def _fit(size, model, size_mode):
    """How a frame of `size` reaches the model size: zeros added, or the resize factors."""
    (h, w), (height, width) = size, model
    if size_mode == "pad":
        return {"mode": "pad", "bottom": height - h, "right": width - w}
    return {"mode": "resize", "scale_y": height / h, "scale_x": width / w}


def _model_size(sizes, size, size_mode, pairs):
    """The one static model size of the run: `size`, or the next multiples of 64 above the
    largest frame; in pad mode every frame must fit inside it."""
    model = tuple(size) if size else model_size(max(s[0] for s in sizes), max(s[1] for s in sizes))
    check_input_size(*model)
    if size_mode == "pad":
        for pair, (h, w) in zip(pairs, sizes):
            if h > model[0] or w > model[1]:
                raise Flownet2Error(f"{pair.image1}: frame is {h}x{w}, larger than the model size "
                                    f"{model[0]}x{model[1]}: choose a larger size or the resize mode")
    return model


def plan(pairs, batch_size, size_mode, dataset, pass_name, *, dataset_type="sintel", size=None, split=None):
    """The manifest for `pairs` (a list of images.Pair): batch and slot of each, sizes, protocol.
    `dataset`: the layout's root folder; `size`: (H, W) or None (from the frames)."""
    check_batch_size(batch_size, len(pairs) or None)
    images.check_size_mode(size_mode)
    sizes = [_pair_size(p) for p in tqdm(pairs, desc="checking sizes", unit="pair")]
    sources = source_digests(pairs)
    # one static model size for the whole run: the exported model has fixed input dims
    model = _model_size(sizes, size, size_mode, pairs)
    entries = [{
        "index": i, "scene": p.scene, "frame": p.frame, "name": p.name,
        "batch": i // batch_size, "slot": i % batch_size, "size": list(size),
        "fit": _fit(size, model, size_mode),
        "image1": p.image1, "image2": p.image2, "flow": p.flow,
        "occlusions": p.occlusions, "invalid": p.invalid, "flow_noc": p.flow_noc, "obj_map": p.obj_map,
        "gt": f"gt/{i}.bin", "mask": f"mask/{i}.bin", "masks": _masks(p),
    } for i, (p, size) in enumerate(zip(pairs, sizes))]
    batches = []
    for k in range(0, len(pairs), batch_size):
        real = list(range(k, min(k + batch_size, len(pairs))))
        filler = list(range(len(real), batch_size))
        batches.append({"batch": k // batch_size, "slots": real + [real[0]] * len(filler),
                        "filler_slots": filler})
    return {
        "format": FORMAT, "version": VERSION, "complete": False,
        "dataset": os.path.abspath(dataset), "dataset_type": dataset_type,
        "pass": pass_name if dataset_type == "sintel" else None, "split": split,
        "resize_mode": size_mode,  # the manifest keeps its key
        "normalisation": NORMALISATION, "batch_size": batch_size,
        "num_pairs": len(pairs), "num_batches": len(batches), "model_size": list(model),
        "image_layout": "float32 (batch_size, 3, H, W), C order, RGB",
        "gt_layout": "float32 (H, W, 2), HWC, original ground truth (0 where unknown) zero-padded to the model size",
        "mask_layout": "uint8 (H, W), bits 1 valid, 2 non-occluded, 4 foreground; zero-padded to the model size",
        "prediction_layout": "float32 (batch_size, 2, H, W), channel 0 = u, 1 = v",
        "pairs": entries, "batches": batches, "sources": sources, "digests": {},
    }


def source_digests(pairs):
    """{source file: sha256} of every frame, flow and mask the pairs use: part of the plan, so a
    rerun after the dataset changed rewrites every file instead of keeping stale ones."""
    paths = dict.fromkeys(path for p in pairs for path in (p.image1, p.image2, p.flow, p.occlusions,
                                                           p.flow_noc, p.obj_map) if path)
    return {path: file_digest(path) for path in tqdm(paths, desc="checking sources", unit="file")}


def image_bytes(manifest):
    height, width = manifest["model_size"]
    return manifest["batch_size"] * 3 * height * width * 4


def gt_bytes(manifest):
    height, width = manifest["model_size"]
    return height * width * 2 * 4


def mask_bytes(manifest):
    height, width = manifest["model_size"]
    return height * width


def expected_files(manifest):
    """{relative path: size in bytes} of every data file the manifest describes."""
    files = {}
    for b in manifest["batches"]:
        for folder in ("image1", "image2"):
            files[f"{folder}/{b['batch']}.bin"] = image_bytes(manifest)
    for p in manifest["pairs"]:
        files[p["gt"]] = gt_bytes(manifest)
        files[p["mask"]] = mask_bytes(manifest)
    return files


def _plan_only(m):
    """The manifest without what writing the files adds to it (progress, digests)."""
    return json.dumps({k: v for k, v in m.items() if k not in ("complete", "digests")}, sort_keys=True)


def _same_plan(a, b):
    return _plan_only(a) == _plan_only(b)


def _numbered_bins(output):
    """Batch-named files (`{n}.bin`) already in the output's data folders."""
    found = []
    for folder in FOLDERS:
        d = os.path.join(output, folder)
        if os.path.isdir(d):
            found += [os.path.join(d, e) for e in os.listdir(d) if _BATCH_FILE.match(e)]
    return found


def _intact(output, files, recorded):
    """{relative path: digest} of the files that can be kept: the right size and, where the
    earlier run recorded a digest, still that content (writes are atomic, so a file of the
    right size is complete)."""
    intact = {}
    for rel, size in tqdm(files.items(), desc="checking kept files", unit="file", leave=False):
        path = os.path.join(output, rel)
        try:
            if os.path.getsize(path) != size:
                continue
            found = file_digest(path)
        except OSError:
            continue
        if recorded.get(rel, found) == found:
            intact[rel] = found
    return intact


def _gb(n):
    return f"{n / 1e9:.2f} GB"


def _earlier_manifest(path):
    """The manifest an earlier run left (None: none; {}: ours, but of another version)."""
    if not os.path.exists(path):
        return None
    try:
        return load_manifest(path)
    except Flownet2Error as e:
        try:
            with open(path) as f:
                if json.load(f).get("format") == FORMAT:
                    return {}  # an older version's folder: its batch files are replaced
        except (OSError, ValueError, AttributeError):
            pass
        raise Flownet2Error(f"{e}; choose an empty output folder") from None


def prepare_output(output, manifest):
    """Make `output` ready for `manifest`; return {file: digest} of those already finished and intact.

    A rerun with the same plan keeps the files of the right size (writes are atomic, so a file of
    the right size is complete). A different earlier plan's batch files are removed: ais_bench
    would otherwise infer every stale `{k}.bin` left in image1/. Checks the disk space first.
    """
    output = os.path.abspath(os.fspath(output))
    os.makedirs(output, exist_ok=True)
    manifest_path = os.path.join(output, MANIFEST)
    old = _earlier_manifest(manifest_path)
    files = expected_files(manifest)
    same = bool(old) and _same_plan(old, manifest)
    stale = [] if same else _numbered_bins(output)
    if stale and old is None:
        raise Flownet2Error(f"{output}: holds {len(stale)} .bin file(s) but no {MANIFEST} "
                            f"(e.g. {stale[0]}); choose an empty output folder")
    intact = _intact(output, files, old.get("digests", {})) if same else {}
    needed = sum(size for rel, size in files.items() if rel not in intact)
    free = shutil.disk_usage(output).free + sum(os.path.getsize(p) for p in stale)
    if needed > free:
        raise Flownet2Error(f"{output}: needs {_gb(needed)} for {manifest['num_pairs']} pairs at "
                            f"batch {manifest['batch_size']}, only {_gb(free)} free")
    for p in stale:
        os.remove(p)
    write_manifest(manifest_path, manifest)
    return intact


def frame_reader():
    """decode.read_frame that keeps the last two frames: pair N's second frame is often pair N+1's first."""
    recent = {}

    def read(path):
        if path not in recent:
            if len(recent) >= 2:
                recent.pop(next(iter(recent)))
            recent[path] = decode.read_frame(path)
        return recent[path]
    return read


def _read_frames(entry, read):
    img1, img2 = read(entry["image1"]), read(entry["image2"])
    for path, img in ((entry["image1"], img1), (entry["image2"], img2)):
        if list(img.shape[:2]) != entry["size"]:
            raise Flownet2Error(f"{path}: frame is {img.shape[1]}x{img.shape[0]}, the manifest "
                                f"says {entry['size'][1]}x{entry['size'][0]}; rerun preprocess")
    return img1, img2


def batch_arrays(manifest, batch, read=decode.read_frame):
    """(x1, x2) of one batch entry, each (bs, 3, H, W) float32, filler slots repeating."""
    bs, (height, width) = manifest["batch_size"], manifest["model_size"]
    x1 = np.empty((bs, 3, height, width), np.float32)
    x2 = np.empty_like(x1)
    first_slot = {}
    for slot, i in enumerate(batch["slots"]):
        if i in first_slot:  # a filler repeats a sample already in this batch
            x1[slot], x2[slot] = x1[first_slot[i]], x2[first_slot[i]]
            continue
        entry = manifest["pairs"][i]
        padder = images.InputPadder(entry["size"], (height, width), manifest["resize_mode"])
        # pad mode normalises straight into the batch slot's corner: no extra copy
        a, b = images.normalise_pair(*_read_frames(entry, read), padder.corner(x1[slot]),
                                     padder.corner(x2[slot]))
        padder.pad(a, out=x1[slot])
        padder.pad(b, out=x2[slot])
        first_slot[i] = slot
    return x1, x2


def gt_arrays(manifest, entry):
    """Pair `entry`'s ground truth as (H, W, 2) float32 (the original flow, zero where unknown) and
    its masks as (H, W) uint8 bits (MASK_BITS), both zero-padded to the model size."""
    flow, valid, noc, fg = datasets.read_ground_truth(entry)
    h, w = entry["size"]
    if flow.shape[:2] != (h, w):
        raise Flownet2Error(f"{entry['flow']}: flow is {flow.shape[1]}x{flow.shape[0]}, "
                            f"the manifest says {w}x{h}; rerun preprocess")
    gt = np.zeros(tuple(manifest["model_size"]) + (2,), np.float32)
    gt[:h, :w] = flow
    bits = np.zeros(tuple(manifest["model_size"]), np.uint8)
    for name, mask in (("valid", valid), ("noc", noc), ("fg", fg)):
        if mask is not None:
            bits[:h, :w] |= mask.astype(np.uint8) * np.uint8(MASK_BITS[name])
    return gt, bits


def unpack_masks(bits, entry):
    """{name: (h, w) bool} of the masks the pair has, from its mask bits cropped to its size."""
    h, w = entry["size"]
    return {name: (bits[:h, :w] & MASK_BITS[name]) > 0 for name in entry["masks"]}


def _save_array(path, array):
    """Write the array's bytes; return their digest (taken from memory, no second read)."""
    data = np.ascontiguousarray(array).data
    with atomic_write(path, "wb") as f:
        f.write(data)
    return digest(data)


def write_batches(output, manifest, intact=None):
    """Write every batch and ground-truth file not already in `intact` ({file: digest});
    record every file's digest in the manifest; returns (written, kept)."""
    output = os.fspath(output)
    intact = intact or {}
    digests = manifest["digests"] = {}
    written = set()
    read = frame_reader()
    for batch in tqdm(manifest["batches"], desc="preprocess", unit="batch"):
        k = batch["batch"]
        names = [f"image1/{k}.bin", f"image2/{k}.bin"]
        if all(n in intact for n in names):
            digests.update((n, intact[n]) for n in names)
        else:  # both frames of a batch come from one read of its pairs
            for name, array in zip(names, batch_arrays(manifest, batch, read)):
                digests[name] = _save_array(os.path.join(output, name), array)
                written.add(name)
        for i in sorted(set(batch["slots"])):
            entry = manifest["pairs"][i]
            names = (entry["gt"], entry["mask"])
            if all(n in intact for n in names):
                digests.update((n, intact[n]) for n in names)
                continue
            for name, array in zip(names, gt_arrays(manifest, entry)):
                digests[name] = _save_array(os.path.join(output, name), array)
                written.add(name)
    written, kept = len(written), len(digests) - len(written)
    manifest["complete"] = True
    write_manifest(os.path.join(output, MANIFEST), manifest)
    return written, kept


def preprocess(dataset, output, batch_size, pass_name="clean", scenes=None, size_mode=None,
               strict=False, warn=None, *, dataset_type=None, size=None, split_file=None):
    """Find the pairs, plan, write. `warn(line)` receives the missing-frames warning.
    `dataset_type`: None recognises the layout; `size` (H, W) and `size_mode`: None takes the
    dataset's defaults (datasets.DEFAULT_SIZE / DEFAULT_MODE)."""
    kind, root, pairs, skipped, split = datasets.find_pairs(dataset, dataset_type, pass_name=pass_name,
                                                            scenes=scenes, split_file=split_file)
    if skipped:
        if strict:
            raise Flownet2Error(f"{root}: {sintel.skipped_message(skipped)}"
                                " (strict: missing frames are an error)")
        if warn is not None:
            warn(sintel.skipped_message(skipped))
    if kind == "chairs" and split is None and warn is not None:
        warn(f"{root}: no --split-file: all {len(pairs)} FlyingChairs pairs, not a validation split")
    manifest = plan(pairs, batch_size, size_mode or datasets.DEFAULT_MODE.get(kind, "pad"), root, pass_name,
                    dataset_type=kind, size=size or datasets.DEFAULT_SIZE.get(kind), split=split)
    # one writer per folder: two runs at once would leave a mix of both runs' batch files
    with folder_lock(output, "another preprocess run"):
        for folder in ("",) + FOLDERS:  # temporaries of a run killed outright (kill -9)
            remove_temporaries(os.path.join(output, folder))
        intact = prepare_output(output, manifest)
        written, kept = write_batches(output, manifest, intact)
    return manifest, written, kept


def size_fix(batch_file, model_shape):
    """What makes a model of `model_shape` (batch, 3, H, W) and the batch files beside `batch_file` agree,
    read from their manifest: one export and one preprocess command; "" when there is no manifest or it
    agrees with the model."""
    manifest_path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(batch_file))), MANIFEST)
    if not os.path.isfile(manifest_path):
        return ""
    try:
        manifest = load_manifest(manifest_path)
    except Flownet2Error:
        return ""
    height, width = manifest["model_size"]
    model_batch, model_height, model_width = model_shape[0], model_shape[-2], model_shape[-1]
    if (height, width) == (model_height, model_width):
        return ""
    batch = manifest["batch_size"]
    return (f"the batches ({manifest_path}) are {height}x{width}, batch {batch}, the model "
            f"{model_height}x{model_width}, batch {model_batch}: export the model with `Flownet2_pth2onnx.py "
            f"--batch_size {batch} --height {height} --width {width}`, or preprocess with "
            f"`Flownet2_preprocess.py --size {model_height}x{model_width} --batch_size {model_batch}`")

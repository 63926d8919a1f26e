"""Score the runner's predictions against the original ground truth, pair by pair, via the manifest.

Predictions are named as ais_bench writes them: `{k}_0.bin` (raw float32 (bs, 2, H, W)) or
`{k}_0.npy`, one per input batch file `{k}.bin`. Each pair is found through its batch and slot in
the manifest; filler slots are skipped; padding or resizing is undone before scoring.
"""
import csv
import json
import math
import os

import numpy as np
from tqdm import tqdm

from ..data import images
from ..data.batches import gt_bytes, load_manifest, mask_bytes, unpack_masks
from ..data.flo import write_flo
from ..errors import Flownet2Error
from ..fileio import atomic_write, file_digest, remove_temporaries, save_png
from ..model import provenance
from . import custody, metrics, visualize

REPORT_FORMAT = "flownet2-metrics"
REPORT_VERSION = 1


def manifest_path_for(gt_path, manifest_path=None):
    return manifest_path or os.path.join(os.path.dirname(os.path.abspath(gt_path)), "manifest.json")


def open_manifest(gt_path, manifest_path=None, batch_size=None):
    """The manifest beside `gt_path` (or at `manifest_path`), checked to be complete and to match."""
    path = manifest_path_for(gt_path, manifest_path)
    manifest = load_manifest(path)
    if not manifest.get("complete"):
        raise Flownet2Error(f"{path}: preprocessing did not finish; rerun Flownet2_preprocess.py")
    if batch_size is not None and batch_size != manifest["batch_size"]:
        raise Flownet2Error(f"batch size {batch_size} does not match {path}, which holds batches of "
                            f"{manifest['batch_size']}")
    return manifest


def _prediction_shape(manifest):
    return (manifest["batch_size"], 2) + tuple(manifest["model_size"])


def _check_prediction(output_path, k, shape):
    """The path of batch k's prediction, or the one-line problem with it."""
    expected = int(np.prod(shape)) * 4
    bin_path = os.path.join(output_path, f"{k}_0.bin")
    npy_path = os.path.join(output_path, f"{k}_0.npy")
    if os.path.isfile(bin_path):
        actual = os.path.getsize(bin_path)
        if actual == expected:
            return bin_path, None
        hint = " (float16 output? convert it to float32)" if 2 * actual == expected else ""
        return None, (f"{bin_path}: expected {expected} bytes (float32 "
                      f"{'x'.join(map(str, shape))}), actual {actual}{hint}")
    if os.path.isfile(npy_path):
        try:
            arr = np.load(npy_path, mmap_mode="r")
        except (OSError, ValueError) as e:
            return None, f"{npy_path}: not a readable .npy file ({e})"
        if arr.shape != shape or arr.dtype.kind != "f":
            return None, (f"{npy_path}: expected float32 shape {shape}, "
                          f"actual {arr.dtype} shape {arr.shape}")
        return npy_path, None
    return None, (f"{bin_path}: missing: expected {expected} bytes (float32 "
                  f"{'x'.join(map(str, shape))}); nothing at {os.path.basename(npy_path)} either")


def check_predictions(manifest, output_path):
    """{batch: path} for every batch, after checking them all; one error line for the first bad one."""
    if not os.path.isdir(output_path):
        raise Flownet2Error(f"{output_path}: prediction folder not found")
    shape = _prediction_shape(manifest)
    found, problems = {}, []
    for b in manifest["batches"]:
        path, problem = _check_prediction(output_path, b["batch"], shape)
        if problem:
            problems.append(problem)
        found[b["batch"]] = path
    if problems:
        count = f"{len(problems)} of {len(found)} prediction files bad; first: " if len(problems) > 1 else ""
        raise Flownet2Error(count + problems[0])
    return found


def _check_file(path, expected, layout, recorded, what):
    actual = os.path.getsize(path) if os.path.isfile(path) else None
    if actual != expected:
        raise Flownet2Error(f"{path}: expected {expected} bytes ({layout}), "
                            f"actual {'missing' if actual is None else actual}")
    if recorded != file_digest(path):
        raise Flownet2Error(f"{path}: not the {what} the manifest's preprocess run wrote "
                            f"(sha256 differs{'' if recorded else ': none recorded'}); rerun preprocess")


def check_gt(manifest, gt_path):
    """{pair index: (gt path, mask path)} of every ground-truth file and its masks (mask/ beside
    gt/), after checking their sizes and that each holds what the manifest's preprocess run wrote."""
    height, width = manifest["model_size"]
    mask_path = os.path.join(os.path.dirname(os.path.abspath(gt_path)), "mask")
    paths = {}
    for p in manifest["pairs"]:
        gt = os.path.join(gt_path, f"{p['index']}.bin")
        mask = os.path.join(mask_path, f"{p['index']}.bin")
        _check_file(gt, gt_bytes(manifest), f"float32 {height}x{width}x2", manifest["digests"].get(p["gt"]),
                    "ground truth")
        _check_file(mask, mask_bytes(manifest), f"uint8 {height}x{width}", manifest["digests"].get(p["mask"]),
                    "validity mask")
        paths[p["index"]] = (gt, mask)
    return paths


def _map(path, dtype, shape):
    """A read-only array over the file's bytes: no copy and no fresh allocation per file, which
    on a 3.7 MB file costs more than reading it (page faults on new memory)."""
    return np.memmap(path, dtype=dtype, mode="r", shape=shape).view(np.ndarray)


def read_prediction(path, shape):
    if path.endswith(".npy"):
        return np.load(path).astype(np.float32, copy=False)
    return _map(path, "<f4", shape)


def read_gt(paths, manifest, entry):
    """Pair `entry`'s original-resolution ground truth (h, w, 2) and its masks {name: (h, w) bool}."""
    height, width = manifest["model_size"]
    h, w = entry["size"]
    gt_path, mask_path = paths
    return (_map(gt_path, "<f4", (height, width, 2))[:h, :w],
            unpack_masks(_map(mask_path, "u1", (height, width)), entry))


def _load_batch(manifest, batch, prediction_path, gt_paths):
    """Everything one batch needs from disk: its predictions, each real pair's gt and masks."""
    predictions = read_prediction(prediction_path, _prediction_shape(manifest))
    pairs = []
    for slot, i in enumerate(batch["slots"]):
        if slot in batch["filler_slots"]:
            continue
        entry = manifest["pairs"][i]
        if (entry["batch"], entry["slot"]) != (batch["batch"], slot):
            raise Flownet2Error(f"manifest: pair {i} listed in batch {batch['batch']} slot {slot} "
                                f"but records batch {entry['batch']} slot {entry['slot']}")
        pairs.append((entry, predictions[slot], *read_gt(gt_paths[i], manifest, entry)))
    return pairs


def verify(manifest, manifest_path, gt_path, output_path, *, unverified=False):
    """Check every input before any scoring: (predictions {batch: path}, gt {pair: path}, custody).

    custody: "digests" or "paths" (see flownet2.score.custody), or "unverified" when the caller chose to
    score predictions whose origin is not checked.
    """
    predictions = check_predictions(manifest, output_path)
    gts = check_gt(manifest, gt_path)
    if unverified:
        return predictions, gts, {"custody": "unverified", "summary": None}
    level, summary = custody.check(manifest, manifest_path, predictions, output_path)
    return predictions, gts, {"custody": level, "summary": summary}


def iter_pairs(manifest, predictions, gts):
    """Yield (entry, prediction, ground truth, masks {name: bool}) pair by pair, in pair order.

    Flows are (h, w, 2) at the original size. (Reading batch k+1 in a second thread while batch
    k is scored was tried: GIL hand-overs made it 2-3x slower on two cores.)
    """
    for b in manifest["batches"]:
        for entry, prediction, gt, masks in _load_batch(manifest, b, predictions[b["batch"]], gts):
            padder = images.InputPadder(entry["size"], manifest["model_size"], manifest["resize_mode"])
            yield entry, padder.unpad(prediction).transpose(1, 2, 0), gt, masks


def evaluate(manifest, predictions, gts, *, vis_dir=None, vis_count=None, save_flo_dir=None, weights=None):
    """Per-pair metric rows (sorted by pair index) and a list of warning lines.
    `predictions`, `gts`: from verify(); `weights`: the run's weights label, named on stand-in pictures."""
    rows = []
    rules = metrics.RULES[manifest["dataset_type"]]
    pairs = iter_pairs(manifest, predictions, gts)
    for n, (entry, flow, gt, masks) in enumerate(tqdm(pairs, total=manifest["num_pairs"],
                                                      desc="postprocess", unit="pair")):
        row = {k: entry[k] for k in ("index", "scene", "frame", "name", "batch", "slot")}
        row.update(metrics.compute_metrics(flow, gt, masks["valid"], noc=masks.get("noc"),
                                           fg=masks.get("fg"), rules=rules))
        rows.append(row)
        if vis_dir and (vis_count is None or n < vis_count):
            picture = visualize.side_by_side(images.read_rgb(entry["image1"]), flow, gt, weights=weights)
            save_png(os.path.join(vis_dir, f"{entry['scene']}_{entry['name']}.png"), picture)
        if save_flo_dir:
            write_flo(os.path.join(save_flo_dir, manifest["pass"] or manifest["dataset_type"], entry["scene"],
                                   entry["name"] + ".flo"), flow)
    warnings = []
    nan = nan_pairs(rows)
    if nan:
        warnings.append(f"{len(nan)} pair(s) have NaN in their predicted flow, so their EPE and the "
                        f"means are nan: {', '.join(nan[:_SHOW])}{', ...' if len(nan) > _SHOW else ''}")
    return sorted(rows, key=lambda r: r["index"]), warnings


_SHOW = 10  # pairs named in a warning line


def nan_pairs(rows):
    """'scene/frame (batch k slot s)' of every pair whose EPE is NaN (NaN in its prediction)."""
    return [f"{r['scene']}/{r['name']} (batch {r['batch']} slot {r['slot']})"
            for r in sorted(rows, key=lambda r: r["index"]) if math.isnan(r["epe"])]


def _model_in_args(args):
    """The --model value of a runner summary's "args": a dict (ais_bench) or an argv list (ours)."""
    if isinstance(args, dict):
        return args.get("model")
    if isinstance(args, list):
        for n, arg in enumerate(args):
            if arg == "--model" and n + 1 < len(args):
                return args[n + 1]
            if isinstance(arg, str) and arg.startswith("--model="):
                return arg.split("=", 1)[1]
    return None


def _summary_weights(output_path):
    """(label or None, model path or None) of the run, from its summary json.

    The summary `<output_path>_summary.json` names the model in its args; when that file has
    moved, the label our runner copies into the summary itself is used.
    """
    summary_path, summary = custody.read_summary(output_path)
    if summary is None:
        return None, None  # no (readable) summary: provenance stays unknown, the caller says so
    model = _model_in_args(summary.get("args"))
    if model and not os.path.isabs(model) and not os.path.exists(model):
        model = os.path.join(os.path.dirname(summary_path), model)
    label = provenance.weights_label(model) if model else None
    return label or summary.get(provenance.KEY), model


def run_weights(output_path, model=None):
    """(label or None, model path or None): from `model` (the .onnx/.om that made the
    predictions), else from the runner's summary; refuses when the two name different weights."""
    run_label, run_model = _summary_weights(output_path)
    if not model:
        return run_label, run_model
    if not os.path.exists(model):
        raise Flownet2Error(f"{model}: model file not found")
    label = provenance.weights_label(model)
    if label and run_label and label != run_label:
        raise Flownet2Error(f"{model} holds weights {label!r}, but the run that made {output_path} "
                            f"used {run_label!r} ({custody.summary_path(output_path)})")
    return label or run_label, model


def _clean(x):
    """JSON has no NaN: absent or undefined numbers become null."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


def build_report(manifest, rows, weights=None, model=None, **paths):
    """The metrics.json content: run description, the rules applied, overall and per-scene
    summaries (NaN kept: write_report turns it into null)."""
    kind = manifest["dataset_type"]
    return ({
        "format": REPORT_FORMAT, "version": REPORT_VERSION, "samples": len(rows),
        "weights": weights, "model": model, "dataset_type": kind, "pass": manifest["pass"],
        "split": manifest.get("split"),
        "resize_mode": manifest["resize_mode"], "batch_size": manifest["batch_size"],
        "model_size": manifest["model_size"], **paths,
        "rules": {rule: metrics.RULE_TEXT[rule] for rule in metrics.RULES[kind]},
        "overall": metrics.summarise(rows), "scenes": metrics.per_scene(rows),
        "nan_pairs": nan_pairs(rows),
    })


CSV_COLUMNS = ("index", "scene", "frame", "name", "batch", "slot") + metrics.PAIR_COLUMNS


def write_report(report_dir, report, rows):
    """metrics.json and per_pair.csv into `report_dir`; returns their paths."""
    json_path = os.path.join(report_dir, "metrics.json")
    csv_path = os.path.join(report_dir, "per_pair.csv")
    remove_temporaries(report_dir, names=("metrics.json", "per_pair.csv"))  # left by a killed run
    with atomic_write(json_path, "w") as f:
        json.dump(_clean(report), f, indent=1, allow_nan=False)
        f.write("\n")
    with atomic_write(csv_path, "w") as f:
        out = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        out.writeheader()
        for r in rows:
            out.writerow({k: "" if v is None or (isinstance(v, float) and math.isnan(v)) else v
                          for k, v in r.items()})
    return json_path, csv_path


def _cell(x, percent=False):
    if x is None:
        return "-"  # no such pixels (no occlusion mask, nothing scored)
    if math.isnan(x):
        return "NaN"  # the prediction held NaN: not the same as "no mask"
    return f"{100 * x:.2f}" if percent else f"{x:.4f}"


# (heading, summary key, percent?) of the table's columns; a column shows when any row has it
_COLUMNS = (("EPE", "epe", False), ("EPE pix", "epe_pooled", False), ("px1 %", "px1", True),
            ("px3 %", "px3", True), ("px5 %", "px5", True), ("EPE occ", "epe_occ", False),
            ("EPE noc", "epe_noc", False), ("Fl-all %", "fl_all", True), ("Fl-noc %", "fl_noc", True),
            ("Fl-bg %", "fl_bg", True), ("Fl-fg %", "fl_fg", True), ("Out3 %", "out3_all", True),
            ("Out3noc %", "out3_noc", True))


def format_table(report):
    """Per scene (when there are several) and overall: pairs, EPE per-image mean and pixel-pooled,
    px1/3/5 (%), EPE occ / noc, and the dataset's outlier rates (%)."""
    overall, scenes = report["overall"], report["scenes"]
    columns = [c for c in _COLUMNS if c[1] in overall and (c[1] in ("epe_occ", "epe_noc") and
                                                           report["overall"].get("pairs_with_occlusions")
                                                           or c[1] not in ("epe_occ", "epe_noc"))]
    width = lambda head: max(9, len(head) + 2)
    head = f"{'scene':<18}{'pairs':>6}" + "".join(f"{h:>{width(h)}}" for h, _, _ in columns)
    line = lambda name, s: f"{name:<18}{s['pairs']:>6}" + "".join(
        f"{_cell(s.get(k), pct):>{width(h)}}" for h, k, pct in columns)
    body = [line(name, s) for name, s in scenes.items()] if len(scenes) > 1 else []
    return "\n".join([head] + body + ["-" * len(head), line("all", overall)])

"""Pre- and postprocess throughput on the real Sintel sample, against the I/O floor.

    python benchmarks/bench_prepost.py [--dataset PATH/sintel-mini/training] [--repeats 7]

--dataset defaults to the Sintel sample the tests use (tests/sintel_mini.py: $FLOWNET2_SINTEL_MINI,
else shared/data/sintel-mini inside or beside the repository).

Floor for preprocess: decoding the same PNGs and writing the same number of bytes (plain writes).
Floor for postprocess: reading the same prediction and ground-truth bytes, decoding the same
occlusion PNGs and writing as many report bytes. Each number is the best of --repeats runs, in pairs per second.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would be timed too
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # the tests' sample locator

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sintel_mini import MINI_DIR  # noqa: E402

from flownet2.cli import parse  # noqa: E402
from flownet2.data import batches, sintel  # noqa: E402
from flownet2.score import evaluate  # noqa: E402


def best_of_both(repeats, ours, floor):
    """Best times of `ours` and `floor`, run alternately so that other load hits both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for j, fn in enumerate((ours, floor)):
            start = time.perf_counter()
            fn()
            best[j] = min(best[j], time.perf_counter() - start)
    return best


def preprocess_once(dataset, bs, work):
    out = os.path.join(work, "prep")
    shutil.rmtree(out, ignore_errors=True)
    batches.preprocess(dataset, out, bs)
    return out


def preprocess_floor(manifest, work):
    """Decode every pair's two PNGs, write as many bytes as the batch and gt files hold."""
    out = os.path.join(work, "floor")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    image = bytes(batches.image_bytes(manifest))
    gt = bytes(batches.gt_bytes(manifest))
    for b in manifest["batches"]:
        for i in sorted(set(b["slots"])):
            p = manifest["pairs"][i]
            np.asarray(Image.open(p["image1"]).convert("RGB"))
            np.asarray(Image.open(p["image2"]).convert("RGB"))
            with open(os.path.join(out, f"gt{i}"), "wb") as f:
                f.write(gt)
        for name in ("image1", "image2"):
            with open(os.path.join(out, f"{name}_{b['batch']}"), "wb") as f:
                f.write(image)


def fake_predictions(manifest, prep, run):
    """Predictions equal to the padded ground truth, in ais_bench's {k}_0.bin layout."""
    os.makedirs(run, exist_ok=True)
    height, width = manifest["model_size"]
    for b in manifest["batches"]:
        arr = np.zeros((manifest["batch_size"], 2, height, width), np.float32)
        for s, i in enumerate(b["slots"]):
            gt = np.fromfile(os.path.join(prep, "gt", f"{i}.bin"), np.float32)
            arr[s] = gt.reshape(height, width, 2).transpose(2, 0, 1)
        arr.tofile(os.path.join(run, f"{b['batch']}_0.bin"))


def postprocess_once(manifest, prep, run):
    rows, _ = evaluate.evaluate(manifest, os.path.join(prep, "gt"), run)
    report = evaluate.build_report(manifest, rows)
    evaluate.write_report(run, report, rows)


def postprocess_floor(manifest, prep, run, report_bytes):
    """Read the same predictions, ground truth and masks; write as many report bytes."""
    for name, size in report_bytes.items():
        with open(os.path.join(run, "floor_" + name), "wb") as f:
            f.write(bytes(size))
    for b in manifest["batches"]:
        np.fromfile(os.path.join(run, f"{b['batch']}_0.bin"), np.float32)
    for p in manifest["pairs"]:
        np.fromfile(os.path.join(prep, "gt", f"{p['index']}.bin"), np.float32)
        if p["occlusions"]:
            np.asarray(Image.open(p["occlusions"]).convert("L"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default=str(MINI_DIR / "training"), help="Sintel training folder")
    ap.add_argument("--repeats", type=int, default=7)
    args = parse(ap, None)
    n = len(sintel.find_pairs(args.dataset, "clean")[0])
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for bs in (1, 4):
            prep = preprocess_once(args.dataset, bs, work)  # warm the page cache and the imports
            manifest = batches.load_manifest(os.path.join(prep, "manifest.json"))
            t, floor = best_of_both(args.repeats, lambda: preprocess_once(args.dataset, bs, work),
                                    lambda: preprocess_floor(manifest, work))
            rows.append(("preprocess", bs, n / t, n / floor))
            run = os.path.join(work, "run")
            shutil.rmtree(run, ignore_errors=True)
            fake_predictions(manifest, prep, run)
            postprocess_once(manifest, prep, run)  # writes the reports whose sizes the floor uses
            sizes = {name: os.path.getsize(os.path.join(run, name)) for name in ("metrics.json", "per_pair.csv")}
            t, floor = best_of_both(args.repeats, lambda: postprocess_once(manifest, prep, run),
                                    lambda: postprocess_floor(manifest, prep, run, sizes))
            rows.append(("postprocess", bs, n / t, n / floor))
    print(f"{n} Sintel pairs (clean), best of {args.repeats}")
    print(f"{'stage':<12}{'batch':>6}{'pairs/s':>10}{'floor pairs/s':>15}{'floor / ours':>14}")
    for stage, bs, ours, floor in rows:
        print(f"{stage:<12}{bs:>6}{ours:>10.1f}{floor:>15.1f}{floor / ours:>13.2f}x")


if __name__ == "__main__":
    main()

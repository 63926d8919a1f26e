"""Chain of custody: were these predictions made from the batch files the manifest describes now?

The runner's summary (`<predictions>_summary.json`, ais_bench's format) lists, per run, the input
files (`filesinfo` infiles) and the prediction files it wrote (outfiles). Preprocess records the
sha256 of every batch file in the manifest. Two levels of proof:

- "digests": the summary also records the sha256 of each input as it was read
  (`flownet2.input_digests`, written by `python -m flownet2.infer`, also around an ais_bench run).
  Equal to the manifest's digests: the predictions were made from exactly these batches.
- "paths": real ais_bench records paths, not contents. Checked: each prediction's inputs are the
  manifest's batch files, those files hold what the manifest records now, and none was modified
  after the summary was written (file times can only refuse here, never vouch). Not provable:
  what the files held while ais_bench read them.
"""
import json
import os

from ..errors import Flownet2Error
from ..fileio import file_digest

DIGESTS_KEY = "flownet2.input_digests"


class CustodyError(Flownet2Error):
    """The predictions cannot be shown to come from the manifest's batch files."""


def summary_path(output_path):
    folder = os.path.normpath(os.path.abspath(output_path))
    return os.path.join(os.path.dirname(folder), os.path.basename(folder) + "_summary.json")


def read_summary(output_path):
    """(path, summary dict or None when there is no readable summary)."""
    path = summary_path(output_path)
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return path, None
    return path, summary if isinstance(summary, dict) else None


def _same_file(listed, actual):
    """Does a path the summary lists name `actual` (absolute)? A relative one was relative to the
    runner's working folder, which no summary records: it must match `actual`'s last components."""
    listed = os.path.normpath(listed)
    if os.path.isabs(listed):
        return os.path.realpath(listed) == os.path.realpath(actual)
    tail = listed.split(os.sep)
    return os.path.realpath(actual).split(os.sep)[-len(tail):] == tail or \
        os.path.abspath(actual).split(os.sep)[-len(tail):] == tail


def _runs_by_output(summary, where):
    """{prediction file name: (infiles, digests)} from the summary's filesinfo."""
    info = summary.get("filesinfo")
    if not isinstance(info, dict) or not info:
        raise CustodyError(f"{where}: lists no input files (no filesinfo): nothing shows what the "
                           "predictions were made from")
    recorded = summary.get(DIGESTS_KEY)
    runs = {}
    for entry in info.values():
        if not (isinstance(entry, dict) and isinstance(entry.get("infiles"), list)
                and isinstance(entry.get("outfiles"), list)):
            raise CustodyError(f"{where}: filesinfo entry {json.dumps(entry)[:80]} not understood")
        digests = [recorded.get(p) for p in entry["infiles"]] if isinstance(recorded, dict) else None
        for out in entry["outfiles"]:
            runs[os.path.basename(str(out))] = ([str(p) for p in entry["infiles"]], digests)
    return runs


def _describe(manifest, manifest_path):
    what = f"{manifest['pass']} pass" if manifest.get("pass") else manifest.get("dataset_type", "dataset")
    return f"preprocess run {manifest_path} ({what}, batch {manifest['batch_size']}, {manifest['num_pairs']} pairs)"


def _short(d):
    return str(d)[:19] + "..." if d and len(str(d)) > 19 else str(d)


def check(manifest, manifest_path, predictions, output_path):
    """Refuse (one line naming both runs) unless every prediction file was made from the batch
    files the manifest describes now. `predictions`: {batch: prediction path}. Returns the level
    of proof ("digests" or "paths") and the summary's path."""
    where, summary = read_summary(output_path)
    if summary is None:
        raise CustodyError(f"{output_path}: no runner summary ({where}): nothing shows which batch "
                           "files these predictions were made from")
    runs = _runs_by_output(summary, where)
    prep = os.path.dirname(os.path.abspath(manifest_path))
    prep_run = _describe(manifest, manifest_path)
    levels = set()
    for batch, prediction in predictions.items():
        name = os.path.basename(prediction)
        if name not in runs:
            raise CustodyError(f"{prediction}: not written by the run {where} records "
                               f"(its filesinfo lists no {name}); scored against {prep_run}")
        infiles, digests = runs[name]
        expected = [f"image1/{batch}.bin", f"image2/{batch}.bin"]
        if len(infiles) != 2 or not all(_same_file(p, os.path.join(prep, e)) for p, e in zip(infiles, expected)):
            raise CustodyError(f"{prediction} was made from {', '.join(infiles)} (run {where}), not from "
                               f"{', '.join(os.path.join(prep, e) for e in expected)} of {prep_run}")
        for n, rel in enumerate(expected):
            levels.add(_check_one(manifest, prep, rel, infiles[n], digests and digests[n],
                                  prediction, where, prep_run))
    return ("paths" if "paths" in levels else "digests"), where


def _check_one(manifest, prep, rel, listed, recorded, prediction, where, prep_run):
    """One input of one prediction: its digest as read (or, failing that, as it is now)."""
    expected = manifest["digests"].get(rel)
    if not expected:
        raise CustodyError(f"{os.path.join(prep, rel)}: {prep_run} records no digest for it")
    if recorded:
        if recorded != expected:
            raise CustodyError(
                f"{prediction} was made from {listed} holding {_short(recorded)} (run {where}), but "
                f"{prep_run} wrote {_short(expected)} there: preprocessed again since? rerun the inference")
        return "digests"
    path = os.path.join(prep, rel)
    now = file_digest(path)
    if now != expected:
        raise CustodyError(f"{path}: holds {_short(now)}, {prep_run} wrote {_short(expected)}: "
                           f"changed since preprocessing; {prediction} (run {where}) cannot be scored")
    if os.path.getmtime(path) > os.path.getmtime(where):
        raise CustodyError(f"{path} was rewritten after the run {where} that made {prediction} "
                           f"(which records no input digests): scored against {prep_run}, it could be "
                           "another run's input; rerun the inference")
    return "paths"

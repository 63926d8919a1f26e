"""Motion-score tables of a collection: motion.csv, a row per clip read from its marker, and, for a
table input (a CSV with a `path` column), a copy of that table with the scores added.

Both are rebuilt from the markers at the end of every run (this run's clips and an earlier one's),
so a resumed run, a shard or a change of --min-motion / --max-motion gives the whole picture without
scoring a clip again. A clip that failed reads `failed: <reason>` with empty scores (reasons from the
failed lists in the output folder); one not finished yet reads `pending`.
"""
import contextlib
import glob
import json
import os
import time
from dataclasses import dataclass

from ..data import meta_csv
from ..fileio import check_inputs_kept
from ..score import motion
from .outcomes import MARKER

TABLE = "motion.csv"
COPY_SUFFIX = "_flow"  # meta.csv -> meta_flow.csv, as Open-Sora names its scored copy


@dataclass(frozen=True)
class Keep:
    """The keep rule: low <= score <= high, on motion (px) or, `relative`, on motion_relative."""

    low: float | None = None
    high: float | None = None
    relative: bool = False

    @property
    def marks(self):
        return self.low is not None or self.high is not None

    def columns(self):
        return motion.COLUMNS + (("keep",) if self.marks else ())

    def cell(self, record):
        if not self.marks:
            return {}
        value = motion.keep(record["motion_relative" if self.relative else "motion"], low=self.low, high=self.high)
        return {"keep": "" if value is None else str(value)}


def table_path(output, shard_spec=None):
    return os.path.join(output, TABLE if shard_spec is None else
                        f"motion.shard-{shard_spec[0]}-of-{shard_spec[1]}.csv")


def copy_path(output, table):
    """OUT/<table's stem>_flow.csv."""
    stem, ext = os.path.splitext(os.path.basename(table))
    return os.path.join(output, stem + COPY_SUFFIX + ext)


def check_outputs(output, inputs, *, shard_spec=None, table=None):
    """Refuse tables that would be written over an input (the CSV itself, a video)."""
    writes = [table_path(output, shard_spec)] + ([copy_path(output, table)] if table else [])
    check_inputs_kept(output, inputs=list(inputs) + ([table] if table else []), writes=writes)


def failures(output):
    """{video name: reason} from every failed list in `output` (the whole run's and each shard's)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(output, "failed*.txt"))):
        with open(path, encoding="utf-8") as f:
            found.update(line.rstrip("\n").split("\t", 1) for line in f if "\t" in line)
    return found


def clip_cells(jobs, output, keep):
    """{job key: {column: text}} for `jobs`: scores from each marker, else failed or pending."""
    failed, cells = failures(output), {}
    for job in jobs:
        record = None
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            with open(os.path.join(output, job.key, MARKER), encoding="utf-8") as f:
                record = json.load(f)["motion"]
        if record is not None:
            cells[job.key] = {**motion.row(record), **keep.cell(record)}
        else:
            status = f"failed: {failed[job.name]}" if job.name in failed else "pending"
            cells[job.key] = {"status": status, "pairs": "0" if job.name in failed else ""}
    return cells


def write_tables(jobs, output, *, keep, shard_spec=None, table=None, table_jobs=None):
    """motion.csv (or a shard's) for `jobs`, and with `table` (the input CSV) its copy for every job of
    the table (`table_jobs`, all shards'); returns the summary's lines."""
    columns = keep.columns()
    cells = clip_cells(jobs, output, keep)
    rows = [{"path": job.name, **cells[job.key]} for job in jobs]
    path = table_path(output, shard_spec)
    meta_csv.write_copy(path, meta_csv.Meta(["path"], rows), columns, rows)
    statuses = [c["status"] for c in cells.values()]
    lines = [f"motion: {statuses.count('ok') + statuses.count('short')} of {len(jobs)} clip(s) scored "
             f"({statuses.count('short')} short), {sum(s.startswith('failed') for s in statuses)} failed; "
             f"a row per clip: {path}"]
    if keep.marks:
        kept = sum(c.get("keep") == "1" for c in cells.values())
        lines[0] += f"; {kept} kept"
    if table is not None:
        meta = meta_csv.read(table)
        every = clip_cells(table_jobs, output, keep)
        by_video = {j.video: every[j.key] for j in table_jobs}
        here = os.path.dirname(os.path.abspath(table))
        rows = [by_video[os.path.normpath(os.path.join(here, p))] for p in meta.paths]
        meta_csv.write_copy(copy_path(output, table), meta, columns, rows)
        lines.append(f"the table with its scores: {copy_path(output, table)}")
    return lines


def speed_line(tally):
    """Clips/s, pairs/s and how busy the model was, with the decode time beside the model time."""
    seconds = time.perf_counter() - tally.t0
    done, model_s, decode_s = tally.counts["done"], tally.model_ms / 1000, tally.decode_ms / 1000
    return (f"{done / seconds:.3f} clips/s, {tally.pairs / seconds:.2f} pairs/s; model busy {model_s / seconds:.0%} "
            f"(model {model_s:.1f} s, decoding and resizing {decode_s:.1f} s, wall {seconds:.1f} s; summed over "
            "workers)")

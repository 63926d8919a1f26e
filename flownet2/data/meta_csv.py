"""A table of videos, as Open-Sora's and data-juicer's curation tools write one: a CSV with a `path`
column (one video a row) and any other columns, read as it is and copied with columns added.

UTF-8 with or without a byte-order mark; every cell is kept as the text it was (numbers are not
re-formatted), the rows in their order. A copy with columns added puts them after the input's own;
a column the input already has (a rerun on a copy) is filled in where it stands.
"""
import csv
from dataclasses import dataclass

from ..errors import Flownet2Error
from ..fileio import atomic_write

PATH_COLUMN = "path"


@dataclass(frozen=True)
class Meta:
    columns: list  # the header, in order
    rows: list  # [{column: text}] in order

    @property
    def paths(self):
        return [row[PATH_COLUMN] for row in self.rows]


def read(path):
    """The table at `path`; one line names what is wrong with it (no `path` column, an empty path...)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            rows = [dict(row) for row in reader]
    except UnicodeDecodeError as e:
        raise Flownet2Error(f"{path}: not UTF-8 text (byte {e.start}); save the table as UTF-8") from None
    except csv.Error as e:
        raise Flownet2Error(f"{path}: not a CSV table ({e})") from None
    if PATH_COLUMN not in columns:
        raise Flownet2Error(f"{path}: no '{PATH_COLUMN}' column (found: {', '.join(columns) or 'none'})")
    for n, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise Flownet2Error(f"{path}: line {n} has {len(columns)} columns in the header but not in the row")
        if not row[PATH_COLUMN].strip():
            raise Flownet2Error(f"{path}: line {n} has an empty path")
    if not rows:
        raise Flownet2Error(f"{path}: no rows below the header")
    return Meta(columns, rows)


def write_copy(path, meta, added, cells):
    """`meta` with the columns `added` (in order), row k filled from cells[k] ({column: text}), at `path`."""
    columns = meta.columns + [c for c in added if c not in meta.columns]
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        for row, extra in zip(meta.rows, cells):
            writer.writerow({**row, **{c: extra.get(c, "") for c in added}})

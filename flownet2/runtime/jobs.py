"""A collection's jobs: which videos a folder tree, a list file or a CSV table (a `path` column, as
Open-Sora and data-juicer write it) names, each with the output folder it writes into; and the shards
of that list for Slurm-style arrays. One video a job; the order is the natural sort of the keys."""
import os
from dataclasses import dataclass

from ..data import frames, meta_csv
from ..errors import Flownet2Error
from ..fileio import natural_sorted

LIST_EXTS = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class Job:
    video: str  # absolute path
    key: str  # output folder relative to OUT: the video's relative path without its extension
    name: str  # the video as the input names it (relative to the folder or the list)


def find_jobs(path):
    """(jobs, one line saying what was found) for a folder tree of videos, a list file or a table (.csv
    with a `path` column); None for anything else (two images, a folder of frames, one video: today's
    single source)."""
    path = os.fspath(path)
    if os.path.isfile(path) and os.path.splitext(path)[1].lower() == ".csv":
        jobs = _csv_jobs(path)
        return jobs, f"a table of {len(jobs)} video(s) ({path}, column path)"
    if os.path.isfile(path) and os.path.splitext(path)[1].lower() in LIST_EXTS:
        jobs = _list_jobs(path)
        return jobs, f"a list of {len(jobs)} video(s) ({path})"
    if not os.path.isdir(path):
        return None
    top = [f for f in os.listdir(path) if os.path.splitext(f)[1].lower() in frames.IMAGE_EXTS
           and not frames.is_hidden(f)]
    if len(top) >= 2:
        return None  # a folder of frames keeps its meaning
    videos, loops = _tree_videos(path)
    if not videos:
        return None
    jobs = _jobs([os.path.relpath(v, path) for v in videos], os.path.abspath(path), path)
    subfolders = len({os.path.dirname(j.key) for j in jobs})
    skipped = f"; {loops} folder link(s) back into the tree not followed" if loops else ""
    return jobs, f"a folder tree of {len(jobs)} video(s) in {subfolders} folder(s) ({path}){skipped}"


def _tree_videos(path):
    """(videos by their path in the tree, links skipped): folder links are followed, except one to a
    folder above it (by real path), which would loop; hidden files and folders are skipped."""
    videos, loops = [], 0
    above = {path: (os.path.realpath(path),)}  # each folder: the real paths from the top down to it
    for folder, dirs, files in os.walk(path, followlinks=True):
        kept = []
        for d in dirs:
            if frames.is_hidden(d):
                continue
            real = os.path.realpath(os.path.join(folder, d))
            if real in above[folder]:
                loops += 1
                continue
            above[os.path.join(folder, d)] = above[folder] + (real,)
            kept.append(d)
        dirs[:] = kept
        videos += [os.path.join(folder, f) for f in files
                   if os.path.splitext(f)[1].lower() in frames.VIDEO_EXTS and not frames.is_hidden(f)]
    return videos, loops


def _list_jobs(list_path):
    """One video a line, relative to the list's folder (absolute paths as they are); blank lines and
    lines starting with # are skipped; UTF-8 with or without a byte-order mark, LF or CRLF. Output
    keys: the path relative to the list's folder."""
    base = os.path.dirname(os.path.abspath(list_path))
    try:  # utf-8-sig: a byte-order mark (Windows editors) is not part of the first line; CRLF or LF
        with open(list_path, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f]
    except UnicodeDecodeError as e:
        raise Flownet2Error(f"{list_path}: not UTF-8 text (byte {e.start}); save the list as UTF-8") from None
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise Flownet2Error(f"{list_path}: no video paths in the list")
    outside = [n for n in names if os.path.relpath(os.path.join(base, n), base).startswith("..")]
    if outside:
        raise Flownet2Error(f"{list_path}: {outside[0]} is outside the list's folder, so it has no place "
                            "under the output folder; list paths below the list's folder")
    return _jobs(names, base, list_path)


def _csv_jobs(csv_path):
    """A table's videos (relative to its folder, or absolute as Open-Sora writes them); output keys:
    the path below the deepest folder holding them all; names: as the table spells them."""
    here = os.path.dirname(os.path.abspath(csv_path))
    listed = meta_csv.read(csv_path).paths
    videos = [os.path.normpath(os.path.join(here, n)) for n in listed]
    base = os.path.commonpath([os.path.dirname(v) for v in videos])
    spelled = dict(zip(videos, listed))
    return [Job(j.video, j.key, spelled[j.video]) for j in
            _jobs([os.path.relpath(v, base) for v in videos], base, csv_path)]


def _jobs(names, base, where):
    seen, jobs = {}, []
    for name in dict.fromkeys(names):  # a video listed twice runs once
        video = os.path.normpath(os.path.join(base, name))
        key = os.path.splitext(os.path.relpath(video, base))[0].replace(os.sep, "/")
        if key in seen:
            raise Flownet2Error(f"{where}: {name} and {seen[key]} would write into one folder ({key}); "
                                "rename one")
        seen[key] = name
        jobs.append(Job(video, key, name))
    order = {k: i for i, k in enumerate(natural_sorted([j.key for j in jobs]))}
    return sorted(jobs, key=lambda j: order[j.key])


def parse_shard(text):
    """'I/N' -> (I, N), 1 <= I <= N."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise Flownet2Error(f"shard must look like I/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= i <= n:
        raise Flownet2Error(f"shard {text}: I must be between 1 and N")
    return i, n


def shard(jobs, i, n):
    """Shard i of n (1-based) of the sorted jobs: every n-th, so each shard gets a mix of folders."""
    return jobs[i - 1::n]

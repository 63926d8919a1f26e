"""Atomic file writes: a crash never leaves a half-written file under the final name."""
import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yield a file object for a temporary sibling of `path`; rename it over `path` on success."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
        # mkstemp makes 0600 files; give the usual 0666 & ~umask so ais_bench running as another
        # user on an Ascend host can still read what we wrote.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_save(path, data: bytes):
    with atomic_write(path, "wb") as f:
        f.write(data)

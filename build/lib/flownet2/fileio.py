"""Atomic file writes, leftovers of killed runs, and one writer per output folder.

A crash never leaves a half-written file under the final name: files are written under a hidden
temporary name (`.<name>.XXXXXXXX.tmp`) and renamed. A process killed outright (kill -9, power
loss) cannot remove its temporary; the next run into the folder does (`remove_temporaries`).
"""
import contextlib
import errno
import fcntl
import hashlib
import os
import re
import signal
import tempfile
import threading

from PIL import Image

from .errors import Flownet2Error, OutputError

_TEMPORARY = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # what atomic_write's mkstemp names look like


@contextlib.contextmanager
def atomic_write(path, mode="wb"):
    """Yield a file object for a temporary sibling of `path`; rename it over `path` on success.

    Any OS error (a full disk, a folder in the way) names `path`, never the temporary.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", path)
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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        if isinstance(e, OSError) and e.errno is not None and e.filename in (None, tmp):
            raise OSError(e.errno, f"{e.strerror or e} (while writing)", path) from e
        raise


# errors that are the output folder's, never an input's: they stop a run instead of failing one video
OUTPUT_FAULTS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                 errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}


def output_fault(error, folder):
    """An OutputError naming `folder` and the cause when `error` is the output's fault, else None.

    Permission errors count only on files inside `folder` (an unreadable input is that input's fault).
    """
    if isinstance(error, OutputError):
        return error
    if not isinstance(error, OSError) or error.errno not in OUTPUT_FAULTS:
        return None
    folder = os.path.abspath(os.fspath(folder))
    where = os.path.abspath(os.fspath(error.filename)) if error.filename else None
    inside = where is not None and (where == folder or where.startswith(folder + os.sep))
    if error.errno in (errno.EACCES, errno.EPERM) and not inside:
        return None
    named = folder if inside or where is None else os.path.dirname(where)
    return OutputError(f"{named}: {OUTPUT_FAULTS[error.errno]} (writing {where or 'a file'}); stopped, the "
                       "unfinished outputs removed; fix it and run the same command again to resume")


@contextlib.contextmanager
def output_faults(folder, on_fault=None):
    """Turn the output's faults (output_fault) inside the block into an OutputError; `on_fault()` runs
    first (its own OS errors ignored: a read-only folder cannot be cleared)."""
    try:
        yield
    except OSError as e:
        fault = output_fault(e, folder)
        if fault is None:
            raise
        if on_fault is not None:
            with contextlib.suppress(OSError):
                on_fault()
        raise fault from None


def check_writable(folder):
    """Write (then remove) a file in `folder`: an output that cannot take files is refused before any
    model is opened, as an OutputError. Folders made for the test are removed again: a run refused
    later, for another reason, leaves nothing behind."""
    folder = os.path.abspath(os.fspath(folder))
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    with output_faults(folder):
        os.makedirs(folder, exist_ok=True)
        try:
            probe = os.path.join(folder, ".flownet2.write-test")
            atomic_save(probe, b"ok\n")
            os.remove(probe)
        finally:
            made = folder
            while made != existing:
                os.rmdir(made)
                made = os.path.dirname(made)


def atomic_save(path, data: bytes):
    with atomic_write(path, "wb") as f:
        f.write(data)


def remove_temporaries(folder, names=None):
    """Delete atomic_write's leftover temporaries in `folder` (all, or only those of `names`).

    Only for a folder nobody else is writing into (hold `folder_lock`, or pass the `names` this
    process alone writes). Returns how many were removed.
    """
    try:
        entries = os.listdir(folder)
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        if not _TEMPORARY.match(entry):
            continue
        if names is not None and not any(entry.startswith(f".{n}.") for n in names):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, entry))
            removed += 1
    return removed


LOCK_NAME = ".flownet2.lock"


@contextlib.contextmanager
def folder_lock(folder, what="a run"):
    """Hold `folder` for this process: a second writer gets one line naming the folder.

    An flock: the kernel drops it when its holder dies, however it dies (kill -9 included), so a
    lock file a killed process left behind is taken over; the file holds the pid for the message.
    """
    folder = os.path.abspath(os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, LOCK_NAME)
    held_back = _hold_interrupts()  # a Ctrl-C between taking the lock and the `try` would leave its file
    try:
        fd = _lock_file(path, folder, what)
    except BaseException:
        _release_interrupts(held_back)
        raise
    try:
        _release_interrupts(held_back)  # a Ctrl-C held back arrives here, where the lock file is removed
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield folder
    finally:
        # unlinked while still held: a writer waiting on this file then sees it is gone and retries
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        os.close(fd)


def _hold_interrupts():
    """Hold back SIGINT and SIGTERM in the main thread (a signal handler runs only there); the old mask."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


def _release_interrupts(old_mask):
    if old_mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)


def _lock_file(path, folder, what):
    """An fd holding an exclusive flock on `path`, which is still the file at `path`."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Flownet2Error(f"{folder}: {what} (pid {holder}) is writing into this folder; "
                                "wait for it to finish or choose another folder") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd  # a lock left by a killed process (its pid still inside) is taken over here
        except FileNotFoundError:
            pass
        os.close(fd)  # the holder removed it between our open and our lock: try again


def check_inputs_kept(output, *, read_folders=(), inputs=(), writes=()):
    """Refuse, before anything is written, a run that would write over what it reads: an `output`
    folder that is or lies inside a folder it lists inputs from, or a file it writes that is one of
    its `inputs`. Real paths are compared, so links and `..` do not hide a match."""
    out = os.path.realpath(output)
    for folder in read_folders:
        real = os.path.realpath(folder)
        if out == real or out.startswith(real.rstrip(os.sep) + os.sep):
            where = "is" if out == real else "is inside"
            raise Flownet2Error(f"{output}: the output folder {where} the input folder {folder}; inputs are "
                                "never written over, choose an output folder outside it")
    reads = {os.path.realpath(p): p for p in inputs}
    for path in writes:
        if os.path.realpath(path) in reads:
            raise Flownet2Error(f"{path}: would be written over the input {reads[os.path.realpath(path)]}; "
                                "inputs are never written over, choose another output")


def digest(data):
    """"sha256:<hex>" of bytes (or anything with the buffer protocol): how files are identified."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path, chunk=1 << 24):
    """digest() of a file's content, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()


def natural_sorted(paths):
    """ais_bench's order: digits compare as numbers, the rest case-insensitively (10.bin after 9.bin)."""
    def key(path):
        return [int(part) if part.isdigit() else part.lower() for part in re.split(r"([0-9]+)", path)]
    return sorted(sorted(paths), key=key)


def save_png(path, pixels, *, compress_level=1):
    """The toolkit's one PNG writer, atomic (temporary name, then rename): (H, W, 3) RGB or (H, W)
    grey uint8. Level 1 is 2.5x faster than PIL's default 6 for ~20% more bytes: right for pictures
    written once per pair; a dataset meant to be kept may prefer 6."""
    with atomic_write(path, "wb") as f:
        Image.fromarray(pixels).save(f, format="PNG", compress_level=compress_level)

"""The runner's input files, as ais_bench reads them: the files of each input folder natural-sorted and
matched by position, shared among devices, planned into runs (a file may hold a whole batch or a slice of
it), read into arrays with the sha256 of the bytes read; and the made-up input of performance mode."""
import io
import os

import numpy as np

from ..data import batches
from ..errors import Flownet2Error
from ..fileio import digest, natural_sorted


def list_input_files(folder):
    if not os.path.isdir(folder):
        raise Flownet2Error(f"{folder}: input folder does not exist")
    files = [os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith((".bin", ".npy"))]
    if not files:
        raise Flownet2Error(f"{folder}: no .bin or .npy files in the input folder")
    return natural_sorted(files)


def _file_nbytes(path):
    if path.lower().endswith(".npy"):
        return np.load(path, mmap_mode="r").nbytes
    return os.path.getsize(path)


def files_per_input(input_arg, n_inputs):
    """[files of input 0, files of input 1, ...] for --input's comma-separated folders or files."""
    items = [s for s in input_arg.split(",") if s]
    if items and all(os.path.isfile(s) for s in items):
        if len(items) % n_inputs:
            raise Flownet2Error(f"{len(items)} input files for a model with {n_inputs} inputs")
        step = len(items) // n_inputs
        return [items[k * step:(k + 1) * step] for k in range(n_inputs)]
    if len(items) != n_inputs:
        raise Flownet2Error(f"{len(items)} input folders for a model with {n_inputs} inputs")
    return [list_input_files(folder) for folder in items]


def device_share(per_input, index, count):
    """Device `index` of `count`: its contiguous share of every input's files, as ais_bench splits them."""
    n = len(per_input[0])
    if n < count:
        raise Flownet2Error(f"{n} input files per input cannot be shared among {count} devices")
    step = -(-n // count)
    return [files[index * step:(index + 1) * step] for files in per_input]


def plan_batches(per_input, inputs):
    """[[files of input 0, files of input 1, ...] per run]; None marks a filler slot (ais_bench's padding).

    As ais_bench: a file may hold the whole batch tensor or 1/k of it (k files are then concatenated);
    every file must have the same size.
    """
    counts = {len(files) for files in per_input}
    if len(counts) != 1 or not per_input[0]:
        raise Flownet2Error("input folders hold different numbers of files: "
                            + ", ".join(f"{os.path.dirname(f[0]) if f else '(none)'}: {len(f)}" for f in per_input))
    (name0, shape0, dtype0) = inputs[0]
    tensor_bytes = int(np.prod(shape0)) * dtype0.itemsize
    first = _file_nbytes(per_input[0][0])
    if first == 0 or tensor_bytes % first:
        fix = batches.size_fix(per_input[0][0], shape0)
        raise Flownet2Error(f"{per_input[0][0]}: {first} bytes, but model input {name0} {shape0} "
                            f"{dtype0.name} needs {tensor_bytes} bytes (or a whole fraction of it)"
                            + (f"; {fix}" if fix else ""))
    k = tensor_bytes // first
    for (name, shape, dtype), files in zip(inputs, per_input):
        expected = int(np.prod(shape)) * dtype.itemsize // k
        for path in files:
            actual = _file_nbytes(path)
            if actual != expected:
                raise Flownet2Error(f"{path}: {actual} bytes, expected {expected} "
                                    f"(model input {name} {shape} {dtype.name}, {k} file(s) per run)")
    runs = []
    n = len(per_input[0])
    for start in range(0, n, k):
        runs.append([[f[i] if i < n else None for i in range(start, start + k)] for f in per_input])
    return runs, k


def read_batch(files, shape, dtype, digests):
    """Concatenate the files' bytes into one input array; a filler slot repeats the first file.
    Records "sha256:<hex>" of the bytes read from each file in `digests` (keyed by the path as given)."""
    chunks = []
    for path in files:
        path = path if path is not None else files[0]
        with open(path, "rb") as f:
            data = f.read()
        digests[path] = digest(data)
        if path.lower().endswith(".npy"):
            chunks.append(np.ascontiguousarray(np.load(io.BytesIO(data))).view(np.uint8).reshape(-1))
        else:
            chunks.append(np.frombuffer(data, dtype=np.uint8))
    return np.concatenate(chunks).view(dtype).reshape(shape)


def made_up_batch(shape, dtype, kind, rng):
    """Performance-mode input: zeros (ais_bench's default) or random values.

    ais_bench's "random" reinterprets random bytes, which for float32 can spell NaN; a NaN flow turns
    into an out-of-range gather index in the warp, so float inputs get uniform [-0.5, 0.5) instead.
    """
    if kind == "zero":
        return np.zeros(shape, dtype)
    if np.issubdtype(dtype, np.floating):
        return (rng.random(shape) - 0.5).astype(dtype)
    return rng.integers(0, 256, int(np.prod(shape)) * dtype.itemsize, dtype=np.uint8).view(dtype).reshape(shape)

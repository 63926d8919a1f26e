"""The ais_bench-compatible run: warm-up, every batch `loop` times (timed), outputs split into ais_bench's
files, and the summary with ais_bench's keys (plus the weights label and the sha256 of every input).
The command line is flownet2/infer.py (`python -m flownet2.infer`); an .om is handed to ais_bench
itself by runtime/ais_bench_handover.py."""
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from ..errors import Flownet2Error
from ..fileio import atomic_save, atomic_write
from ..model.provenance import KEY as WEIGHTS_KEY
from .engines import engine_for
from .inputs import made_up_batch, plan_batches, read_batch
from .sessions import DEFAULT_SIZE, open_model

PURE_INFER_FILE = "pure_infer_data"  # ais_bench's name for the made-up input of performance mode
DIGESTS_KEY = "flownet2.input_digests"
LATENCY_NOTE_KEY = "flownet2.latency_note"
NO_COPY_STEP = ("H2D/D2H are 0: this backend (ONNX Runtime, OpenVINO, or PyTorch on the CPU) has no host-device "
                "copy step it can time apart from the run, so NPU_compute_time includes any copies")


def save_array(path, array, outfmt):
    if outfmt == "NPY":
        with atomic_write(path, "wb") as f:
            np.save(f, array)
    elif outfmt == "TXT":  # ais_bench's text layout: one line per last-axis row, values space-separated
        rows = array.reshape(-1, array.shape[-1])
        fmt = "%f" if np.issubdtype(array.dtype, np.floating) else "%d"
        with atomic_write(path, "wb") as f:
            for row in rows:
                np.savetxt(f, row[np.newaxis], fmt=fmt, delimiter=" ", newline=" ")
                f.write(b"\n")
    else:
        atomic_save(path, np.ascontiguousarray(array).tobytes())


def output_name(infile, index, outfmt):
    """ais_bench naming: basename up to the first '.', then _<output index>."""
    return f"{os.path.basename(infile).split('.')[0]}_{index}.{outfmt.lower()}"


def stats(values):
    """ais_bench's block: min/max/mean/median/percentile(99%)/count (zeros when empty)."""
    if not values:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0}
    a = np.asarray(values, dtype=np.float64)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "median": float(np.median(a)), "percentile(99%)": float(np.percentile(a, 99)), "count": len(values)}


def bench_summary(filesinfo, argv, compute_ms, batchsize, label, *, h2d_ms=(), d2h_ms=(), latency_note=None,
                  digests=None):
    """The summary dict with ais_bench's keys; throughput = samples per second of pure run time."""
    compute = stats(compute_ms)
    throughput = 1000.0 * batchsize / compute["mean"] if compute["mean"] else 0
    return {"filesinfo": filesinfo, "args": argv, "NPU_compute_time": compute,
            "H2D_latency": stats(list(h2d_ms)), "D2H_latency": stats(list(d2h_ms)),
            "throughput": throughput, "npu_compute_time_list": list(compute_ms), "pid": os.getpid(),
            WEIGHTS_KEY: label, LATENCY_NOTE_KEY: latency_note, DIGESTS_KEY: digests or {}}


def print_summary(summary, batchsize, *, display_all=False):
    print("[INFO] -----------------Performance Summary------------------")
    blocks = ("H2D_latency", "NPU_compute_time", "D2H_latency") if display_all else ("NPU_compute_time",)
    for key in blocks:
        c = summary[key]
        print(f"[INFO] {key} (ms): min = {c['min']}, max = {c['max']}, mean = {c['mean']}, "
              f"median = {c['median']}, percentile(99%) = {c['percentile(99%)']}")
    if display_all and summary[LATENCY_NOTE_KEY]:
        print(f"[INFO] {summary[LATENCY_NOTE_KEY]}")
    c = summary["NPU_compute_time"]
    print(f"[INFO] throughput 1000*batchsize.mean({batchsize})/NPU_compute_time.mean({c['mean']}): "
          f"{summary['throughput']}")
    print("[INFO] ------------------------------------------------------")


def output_folder(output, dirname=None, *, device=None):
    """OUT/NAME (NAME/deviceN for one of several devices), created; None without an output folder."""
    if output is None:
        return None
    folder = os.path.join(output, dirname if dirname is not None else time.strftime("%Y_%m_%d-%H_%M_%S"))
    if device is not None:
        folder = os.path.join(folder, f"device{device}")
    os.makedirs(folder, exist_ok=True)
    return folder


def open_runner_session(model, *, backend=None, device=0, precision=None, torch_mode=None, size=DEFAULT_SIZE,
                        batchsize=None, emulate=None):
    """flownet2.runtime.sessions.open_model with this runner's defaults: PyTorch in fp16 CUDA graphs on a GPU,
    fp32 eager on a CPU; `backend`, when given, must match the model."""
    engine = engine_for(model, backend)
    if engine.static or engine.name != "torch":  # the reference: fp32 unless asked
        return open_model(model, backend=backend, batch_size=batchsize or 1, size=size, device=device,
                          precision=precision or "fp32", emulate=emulate)
    import torch

    cuda = torch.cuda.is_available()
    return open_model(model, backend=backend, batch_size=batchsize or 1, size=size, device=device, emulate=emulate,
                      precision=precision or ("fp16" if cuda else "fp32"),
                      torch_mode=torch_mode or ("graphs" if cuda else "eager"))


def run_session(session, *, per_input=None, folder=None, argv=(), batchsize=None, loop=1, warmup_count=1,
                outfmt="BIN", pure_data_type="zero", output_batchsize_axis=0, display_all=False):
    """Warm-up, then every batch `loop` times (timed); outputs and summary saved in `folder` as ais_bench
    does. per_input: [files of each input] (None: performance mode on made-up data). Returns the summary."""
    model_batch = session.batch_size
    if batchsize is not None and batchsize != model_batch:
        print(f"warning: batch size {batchsize} given, but the model takes batch {model_batch} (input "
              f"{session.inputs[0][0]} {session.inputs[0][1]}); the throughput figure uses {batchsize}, "
              "as ais_bench does", file=sys.stderr)
    batchsize = batchsize or model_batch
    if per_input is not None:
        runs, per_run = plan_batches(per_input, session.inputs)
    else:
        runs, per_run = [[[PURE_INFER_FILE] for _ in session.inputs]], 1
    rng = np.random.default_rng()
    digests = {}

    def load(files_per_input):
        if files_per_input[0][0] == PURE_INFER_FILE:
            return [made_up_batch(shape, dtype, pure_data_type, rng) for _, shape, dtype in session.inputs]
        return [read_batch(files, shape, dtype, digests)
                for files, (_, shape, dtype) in zip(files_per_input, session.inputs)]

    first = load(runs[0])
    for _ in range(warmup_count):
        session.run(first)
    compute_ms, h2d_ms, d2h_ms, filesinfo = [], [], [], {}
    with tqdm(total=len(runs) * loop, desc="inference", unit="run", file=sys.stderr) as bar:
        for index, files_per_input in enumerate(runs):
            arrays = first if index == 0 else load(files_per_input)
            for _ in range(loop):
                outputs, ms = session.run(arrays)
                compute_ms.append(ms)
                if session.copy_ms is not None:
                    h2d_ms.append(session.copy_ms[0])
                    d2h_ms.append(session.copy_ms[1])
                bar.update()
            if folder is not None:
                _save_outputs(folder, outputs, files_per_input, index * per_run, per_run, outfmt, filesinfo,
                              axis=output_batchsize_axis)
    listed = [path for entry in filesinfo.values() for path in entry["infiles"]]
    summary = bench_summary(filesinfo, list(argv), compute_ms, batchsize, session.label, h2d_ms=h2d_ms,
                            d2h_ms=d2h_ms, latency_note=None if h2d_ms else NO_COPY_STEP,
                            digests={path: digests[path] for path in listed if path in digests})
    print_summary(summary, batchsize, display_all=display_all)
    if folder is not None:
        with atomic_write(folder + "_summary.json", "w") as f:
            json.dump(summary, f)
    return summary


def _save_outputs(folder, outputs, files_per_input, first_id, per_run, outfmt, filesinfo, *, axis=0):
    """Split each output along `axis` into the run's slots, one file per real slot (filler slots skipped)."""
    for i, out in enumerate(outputs):
        out = np.asarray(out)
        if axis >= out.ndim or out.shape[axis] % per_run:
            raise Flownet2Error(f"output {i} of shape {list(out.shape)} cannot be split into {per_run} files "
                                f"along axis {axis}")
        parts = np.split(out, per_run, axis=axis)
        for j in range(per_run):
            infiles = [files[j] for files in files_per_input]
            if infiles[0] is None:
                continue
            path = os.path.join(folder, output_name(infiles[0], i, outfmt))
            save_array(path, parts[j], outfmt)
            entry = filesinfo.setdefault(first_id + j, {"infiles": infiles, "outfiles": []})
            entry["outfiles"].append(path)

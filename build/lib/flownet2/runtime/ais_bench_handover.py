"""An Ascend .om goes to `python -m ais_bench` itself, with exactly the arguments typed; afterwards each
summary it wrote gets the .om's weights label and the sha256 of every input file it lists (which must be
what the files held before the run). Also: ais_bench's argv read as its own parser would."""
import glob
import importlib.util
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from ..errors import Flownet2Error
from ..fileio import atomic_write, file_digest
from ..model.provenance import KEY as WEIGHTS_KEY
from .engines import engine_for
from .runner import DIGESTS_KEY
from .sessions import AIS_BENCH_HINT


def typed_model(argv):
    """The model path as ais_bench's parser would read it (--model X, --model=X, -m X, -mX, --mod X...),
    without judging anything else; None when there is none."""
    model = None
    for k, a in enumerate(argv):
        name, eq, value = a.partition("=")
        if a.startswith("--") and len(name) >= 3 and "--model".startswith(name):
            model = value if eq else (argv[k + 1] if k + 1 < len(argv) else None)
        elif a == "-m":
            model = argv[k + 1] if k + 1 < len(argv) else None
        elif a.startswith("-m") and not a.startswith("--"):
            model = a[2:]
    return model


def _typed_value(argv, flag, short=None):
    """The last value of `flag` (or its short form) in argv, ais_bench's spellings; None when absent."""
    value = None
    for k, a in enumerate(argv):
        if a in (flag, short) and k + 1 < len(argv):
            value = argv[k + 1]
        elif a.startswith(flag + "="):
            value = a[len(flag) + 1:]
        elif short and a.startswith(short) and not a.startswith("--") and len(a) > len(short):
            value = a[len(short):]
    return value


def hand_over_to_ais_bench(argv, *, model):
    """Run `python -m ais_bench` with exactly `argv`; then add to each summary it wrote the .om's weights
    label and the sha256 of every input file it lists, which must be what the files held before the run."""
    if importlib.util.find_spec("ais_bench") is None:
        raise Flownet2Error(f"{model} is an Ascend .om model, which needs ais_bench: {AIS_BENCH_HINT}")
    before = _digests_of_inputs(_typed_value(argv, "--input", "-i"))
    started = time.time()
    code = subprocess.call([sys.executable, "-m", "ais_bench", *argv])
    output = _typed_value(argv, "--output", "-o")
    if code != 0 or output is None:
        return code
    label = engine_for(model).weights_label(model)  # from the .om.weights sidecar
    for path in _summaries_written(output, since=started):
        with open(path) as f:
            summary = json.load(f)
        summary[WEIGHTS_KEY] = label
        summary[DIGESTS_KEY] = _unchanged_digests(summary, before)
        with atomic_write(path, "w") as f:
            json.dump(summary, f)
    return 0


def _digests_of_inputs(input_arg):
    """{real path: "sha256:<hex>"} of every file named by ais_bench's --input (files, or files in folders)."""
    paths = []
    for item in (input_arg or "").split(","):
        paths += [os.path.join(item, n) for n in os.listdir(item)] if os.path.isdir(item) else [item]
    return hash_files([p for p in paths if os.path.isfile(p)], key=os.path.realpath, desc="input digests")


def hash_files(paths, *, key=str, desc="digests"):
    """{key(path): "sha256:<hex>"}; hashed on several threads (hashlib releases the GIL), with a bar."""
    def one(path):
        return key(path), file_digest(path)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        return dict(tqdm(pool.map(one, paths), total=len(paths), desc=desc, unit="file", file=sys.stderr,
                         disable=len(paths) < 100))


def _summaries_written(output, *, since):
    """ais_bench's summaries under `output` written since `since`: NAME_summary.json, NAME/deviceN_summary.json."""
    found = (glob.glob(os.path.join(output, "*_summary.json"))
             + glob.glob(os.path.join(output, "**", "device*_summary.json"), recursive=True))
    return sorted({p for p in found if os.path.getmtime(p) >= since - 1})


def _unchanged_digests(summary, before):
    """{infile as listed: digest}, refusing in one line when a listed input changed during the run."""
    listed = [p for entry in summary.get("filesinfo", {}).values() for p in entry.get("infiles", [])
              if os.path.isfile(p)]  # not ais_bench's made-up input of performance mode
    after = hash_files(listed, desc="input digests")
    for path in listed:
        if before.get(os.path.realpath(path)) != after[path]:
            raise Flownet2Error(f"{path}: the input file changed while ais_bench ran; its predictions cannot be "
                                "tied to the file's contents (run again with the inputs left alone)")
    return after

#!/usr/bin/env bash
# The whole GPU check in one command on a CUDA machine: environment report, the CUDA tests, the
# benchmark table. About 4-5 minutes on an H100/H200 with a cold compile cache; every step has its own
# time limit so the whole check ends within 10 minutes, and the table is rewritten after every row.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results in runs/gpu (or $OUT)
#
# Frames: MPI-Sintel pairs from work/sintel-mini when present (git-ignored; copy sintel-mini there),
# else see bench_gpu.py's --dataset. The table is written to $OUT/gpu_table.md, the log to
# $OUT/gpu_check.log. Extra arguments go to bench_gpu.py; e.g. the slow autotuned compile (~6 min):
#   bash benchmarks/gpu_check.sh --paths autotune-fp16 --batches 8 --path-timeout 420
#
# No `pip install -r requirements.txt`: its CPU torch pin would replace the machine's CUDA build of
# PyTorch. torch, numpy, Pillow, tqdm and pytest must be installed; wheels placed in .whl/ are
# installed first, without a network.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/flownet2_site .whl/*.whl \
            && export PYTHONPATH="$PYTHONPATH:/tmp/flownet2_site"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader || true
    "$PY" - <<'EOF' || exit 1
import importlib.util, sys
missing = [m for m in ("torch", "numpy", "PIL", "tqdm", "pytest") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("missing Python packages: " + ", ".join(missing) + " (put their wheels in .whl/)")
import torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, GPU: {torch.cuda.is_available() and torch.cuda.get_device_name(0)}")
if not torch.cuda.is_available():
    sys.exit("PyTorch sees no CUDA GPU")
EOF
    echo "== CUDA tests"
    timeout 150 "$PY" -m pytest -q -p no:cacheprovider tests/test_torch_backend.py -k cuda
    echo "== benchmark"
    timeout 420 "$PY" benchmarks/bench_gpu.py --out "$OUT/gpu_table.md" "$@"
} 2>&1 | tee "$OUT/gpu_check.log"

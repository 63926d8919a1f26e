"""What this CPU can do, asked once for every engine: bf16 units, and how many threads a process may use.

    cpu_has_bf16()            True with AVX512_BF16 or AMX-BF16 (Linux CPU flags)
    check_cpu_precision(p)    one line refusing a precision the CPU cannot run usefully
    cpu_threads()             the CPUs this process was given (affinity, capped by OMP_NUM_THREADS)
"""
import os
import re

from ..errors import Flownet2Error

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU has bf16 arithmetic units (AVX512_BF16 or AMX-BF16), from the kernel's CPU flags.

    Without them PyTorch and OpenVINO still accept bf16, but compute it by converting to fp32 and back
    (PyTorch) or in fp32 outright (OpenVINO): never faster than fp32.
    """
    try:
        with open(cpuinfo) as f:
            flags = set(re.findall(r"\b(" + "|".join(BF16_FLAGS) + r")\b", f.read()))
    except OSError:  # not Linux: no portable way to ask
        return False
    return bool(flags)


def check_cpu_precision(precision):
    """Refuse, in one line, a precision the CPU cannot run usefully (fp32 always; bf16 with bf16 units)."""
    if precision == "fp32":
        return
    if precision == "bf16":
        if not cpu_has_bf16():
            raise Flownet2Error("precision bf16 on the CPU needs bf16 units (AVX512_BF16 or AMX), which this CPU "
                                "lacks; use fp32")
        return
    raise Flownet2Error(f"precision {precision} needs a CUDA GPU; on the CPU use fp32 (or bf16 on a CPU with "
                        "AVX512_BF16 or AMX)")


def cpu_precision():
    """The fastest precision worth running on this CPU when the user did not ask: bf16 with bf16 units."""
    return "bf16" if cpu_has_bf16() else "fp32"


def cpu_threads():
    """Threads an engine may run in this process: the CPUs it may be scheduled on, no more than
    OMP_NUM_THREADS when that is set (Ray sets it to an actor's num_cpus, so workers sharing a node
    don't each take every core)."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        count = os.cpu_count() or 1
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        count = min(count, int(omp))
    return max(count, 1)

"""Test-session settings shared by every test module."""
import os

# pytest-xdist runs the modules in parallel worker processes (pyproject.toml: -n auto). Each worker,
# and every subprocess it starts, then uses one thread for torch's and OpenMP's pools: two workers
# on two cores with two threads each fight over the cores and run slower than one worker alone.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

"""Test-session settings shared by every test module."""
import os
import shutil
import tempfile

# Models converted for OpenVINO go to one folder of this test session, never the user's ~/.cache/flownet2:
# made by the first process (pytest-xdist's workers and every subprocess inherit it, so a conversion
# is shared; a cache hit gives the same bytes, tests/test_openvino.py) and removed when the session ends.
_CACHE_OWNER = "FLOWNET2_TEST_CACHE_OWNER"
if _CACHE_OWNER not in os.environ:
    os.environ["FLOWNET2_CACHE"] = tempfile.mkdtemp(prefix="flownet2-test-cache-")
    os.environ[_CACHE_OWNER] = str(os.getpid())


def pytest_sessionfinish(session):
    if os.environ.get(_CACHE_OWNER) == str(os.getpid()):  # the process that made it: after every worker
        shutil.rmtree(os.environ["FLOWNET2_CACHE"], ignore_errors=True)

# pytest-xdist runs the modules in parallel worker processes (pyproject.toml: -n auto). Each worker,
# and every subprocess it starts, then uses one thread for torch's and OpenMP's pools: two workers
# on two cores with two threads each fight over the cores and run slower than one worker alone.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


# The longest modules start first, so that the workers finish together instead of one waiting on a
# module that started last (each module's own order is kept; the others keep theirs).
_LONGEST_FIRST = ("test_pipeline.py", "test_export.py", "test_docs.py", "test_predict.py", "test_openvino.py",
                  "test_collection.py", "test_family.py", "test_collection_ray.py", "test_checkpoint.py")


def pytest_collection_modifyitems(items):
    rank = {name: n for n, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))

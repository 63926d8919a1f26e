"""A collection on Ray: one actor per GPU, per Ascend NPU or per CPU worker, each a collection.Worker.

Ray stays at this edge (imported here only). Each actor opens its model once and runs one video at
a time; the driver keeps two queued per actor (one running, the next waiting, so no actor idles on a
round trip to the driver) and records outcomes as they come back. Ray sets CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES for
an actor holding a GPU / NPU, so inside it the device is always 0. An actor that dies is restarted
and its video retried: safe, because a video is finished only once its marker is written, and a
video another worker holds is skipped (collection.Worker.run). Motion scores at a model batch above 1
send a group of clips per call instead (collection.Worker.run_group, runtime/motion_groups.py).
"""
import dataclasses
import sys

from ..errors import Flownet2Error, OutputError
from . import motion_groups
from .collection import Worker
from .outcomes import Outcome

RAY_HINT = 'pip install "ray[default]>=2.9"'
RETRIES = 2  # actor restarts, and retries of the video it was running
IN_FLIGHT = 2  # videos queued per actor: one running, one waiting


def require_ray():
    """The ray module, or one line naming the install command."""
    try:
        import ray
    except ImportError:
        raise Flownet2Error(f"--ray needs Ray: {RAY_HINT}") from None
    return ray


def _resources(ray, accelerator, workers):
    """(actor options, worker count): one actor per device of the cluster, or `workers` of them."""
    have = ray.cluster_resources()
    if accelerator is None:
        accelerator = "gpu" if have.get("GPU") else "npu" if have.get("NPU") else "cpu"
    if accelerator == "gpu":
        options, count = {"num_gpus": 1, "num_cpus": 1}, int(have.get("GPU", 0))
    elif accelerator == "npu":
        options, count = {"resources": {"NPU": 1}, "num_cpus": 1}, int(have.get("NPU", 0))
    else:
        options, count = {"num_cpus": 1}, 1
    if accelerator != "cpu" and count == 0:
        raise Flownet2Error(f"the Ray cluster has no {accelerator.upper()}: {dict(have)}; "
                            "choose --accelerator cpu")
    if accelerator != "cpu" and workers and workers > count:  # the extra actors would wait forever
        raise Flownet2Error(f"{workers} workers asked for, the Ray cluster has {count} {accelerator.upper()}(s)")
    return accelerator, options, workers or count


class _Actor:
    def __init__(self, settings, opener):
        self.worker = Worker(settings, opener)

    def ready(self):
        return True

    def run(self, job):
        return self.worker.run(job)

    def run_group(self, jobs):
        return self.worker.run_group(jobs)

    def group_size(self):
        return motion_groups.group_size(self.worker)


def run(jobs, settings, tally, *, address=None, workers=None, accelerator=None, opener=None):
    """Run `jobs` on Ray (the cluster at `address`, RAY_ADDRESS's, or a new local one); outcomes go to
    `tally`. Outputs must be on a folder every node sees under the same path."""
    ray = require_ray()
    if not jobs:  # an empty shard: no cluster to start
        tally.close()
        return tally
    started = not ray.is_initialized()
    if started:
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
    try:
        kind, options, count = _resources(ray, accelerator, workers)
        if kind != "cpu":
            settings = dataclasses.replace(settings, device=0)  # the one device Ray hands the actor
        actors = start_actors(ray, settings, options, min(count, len(jobs)), opener)
        group = _group_size(ray, actors[0], settings)
        dispatch(ray, actors, list(jobs), tally, group=group)
    except OutputError:
        tally.close()  # the other workers' unfinished videos have no marker: the rerun redoes them
        raise
    except KeyboardInterrupt:
        tally.close()
        print("interrupted: run the same command again to resume (finished videos are skipped)",
              file=sys.stderr)
        raise
    finally:
        if started:
            ray.shutdown()
    tally.close()
    return tally


def start_actors(ray, settings, options, count, opener=None):
    """`count` actors, each a Worker; returned once all have started (a cluster that cannot place
    them waits here, before any video is handed out)."""
    actor_class = ray.remote(max_restarts=RETRIES, max_task_retries=RETRIES, **options)(_Actor)
    actors = [actor_class.remote(settings, opener) for _ in range(count)]
    ray.get([a.ready.remote() for a in actors])
    return actors


def dispatch(ray, actors, jobs, tally, *, group=1):
    """IN_FLIGHT videos queued per actor (the next is already there when one finishes, so an actor
    never waits on the driver); each finished one is replaced on the same actor. `group` > 1: each
    call runs that many clips together (Worker.run_group); a call lost with its actor fails them all."""
    pending = {}
    units = [jobs[i:i + group] for i in range(0, len(jobs), group)] if group > 1 else [[job] for job in jobs]
    units.reverse()  # pop() from the end takes them in order

    def submit(actor):
        if units:
            unit = units.pop()
            pending[actor.run_group.remote(unit) if group > 1 else actor.run.remote(unit[0])] = (actor, unit)

    for _ in range(IN_FLIGHT):
        for actor in actors:
            submit(actor)
    while pending:
        [ref], _ = ray.wait(list(pending), num_returns=1)
        actor, unit = pending.pop(ref)
        try:
            outcomes = ray.get(ref) if group > 1 else [ray.get(ref)]
        except ray.exceptions.RayTaskError as e:
            if isinstance(e.cause, Flownet2Error):  # the model, or the output folder: no video can run
                raise type(e.cause)(str(e.cause)) from None  # the same kind: an OutputError exits 3
            outcomes = [_failed(job, e) for job in unit]
        except ray.exceptions.RayError as e:  # the actor died more often than it may restart
            outcomes = [_failed(job, e) for job in unit]
        for outcome in outcomes:
            tally.add(outcome)
        submit(actor)


def _group_size(ray, actor, settings):
    """Clips per call: motion scores at a model batch > 1 run a group (runtime/motion_groups.py), else 1."""
    if not motion_groups.applies(settings):
        return 1
    try:
        return ray.get(actor.group_size.remote())  # the actor opens its model to know its batch
    except ray.exceptions.RayTaskError as e:
        if isinstance(e.cause, Flownet2Error):  # the model cannot open: no video can run
            raise type(e.cause)(str(e.cause)) from None
        raise


def _failed(job, error):
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return Outcome(job.key, job.name, "failed", reason=f"Ray: {type(error).__name__}: {first}")

"""Independent runs as Ray tasks: the verdict grid's rows on several cores or a cluster.

Used by :func:`course_utils.experiments.unit_grid.run_grid` when it is given ``workers``
(the benchmark's ``--workers``); needs the ``scale`` extra (``pip install -e '.[scale]'``).
:func:`run_on_ray` calls ``task(*args)`` once per call, at most ``workers`` at a time, each
in a Ray worker that first sets its own torch thread count, so a result is the same as in
the serial loop at that thread count. Large arguments (a baseline) are shipped once through
the object store, so cluster nodes need no shared cache for them. Each result is handed to
``done`` as it arrives (the grid stores its row there, so an interrupted run resumes); a
call that raises is retried once, and what still fails is listed in one error after every
other call has finished.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..checks import positive_int
from ..settings import cache_dir

__all__ = ["INSTALL_HINT", "GridFailure", "run_on_ray"]

INSTALL_HINT = (
    "running the grid with workers needs Ray: pip install -e '.[scale]' in the course folder "
    "(or run it without workers, in this process)"
)


class GridFailure(RuntimeError):
    """Calls that failed twice; ``failed`` holds ``(label, error)`` for each."""

    def __init__(self, failed: list[tuple[str, str]]):
        self.failed = failed
        lines = "\n".join(f"- {label}: {error}" for label, error in failed)
        super().__init__(
            f"{len(failed)} run(s) failed twice (every other run finished and was stored; "
            f"run again to retry only these):\n{lines}"
        )


def _call(task: Callable, threads: int, *args):
    import torch

    torch.set_num_threads(threads)
    return task(*args)


def run_on_ray(
    task: Callable,
    calls: Sequence[tuple[str, tuple]],
    done: Callable[[int, object], None],
    *,
    workers: int,
    threads: int = 1,
    address: str | None = None,
    bar=None,
) -> None:
    """Run ``task(*args)`` for each ``(label, args)`` of ``calls`` as Ray tasks.

    ``workers``: at most that many at once (a local Ray instance gets ``workers * threads``
    CPUs); ``threads``: torch threads in each task. ``address`` (else ``$RAY_ADDRESS``): an
    existing cluster; None starts a local instance, shut down at the end. An argument
    that is not a plain value (a baseline, a budget) is put into the object store once,
    however many calls share it. ``done(i, result)`` is called in this process
    as call ``i`` finishes. ``bar``: a tqdm bar, updated with finished/failed/remaining.
    Raises :class:`GridFailure` listing the calls that failed twice.
    """
    try:
        import ray
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    workers = positive_int("workers", workers)
    threads = positive_int("threads", threads)
    address = address or os.environ.get("RAY_ADDRESS") or None
    env = {
        "COURSE_CACHE": str(cache_dir()),
        "COURSE_PROGRESS": "0",
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0"),
    }
    started = not ray.is_initialized()
    if started:
        options = {"address": address} if address else {"num_cpus": workers * threads}
        ray.init(
            **options,
            runtime_env={"env_vars": env},
            include_dashboard=False,
            log_to_driver=False,
        )
    try:
        refs = {}  # id(argument) -> its object ref, one per object

        def ship(arg):
            if arg is None or isinstance(arg, (str, int, float, bool)):
                return arg
            if id(arg) not in refs:
                refs[id(arg)] = ray.put(arg)
            return refs[id(arg)]

        remote = ray.remote(_call).options(num_cpus=threads, max_retries=1, retry_exceptions=True)
        pending, running, failed = list(enumerate(calls)), {}, []
        counts = {"finished": 0, "failed": 0, "remaining": len(calls)}
        while pending or running:
            while pending and len(running) < workers:
                i, (label, args) = pending.pop(0)
                running[remote.remote(task, threads, *map(ship, args))] = (i, label)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            i, label = running.pop(ref)
            try:
                done(i, ray.get(ref))
                counts["finished"] += 1
            except ray.exceptions.RayError as err:
                cause = getattr(err, "cause", None) or err
                failed.append((label, f"{type(cause).__name__}: {cause}".splitlines()[0]))
                counts["failed"] += 1
            counts["remaining"] -= 1
            if bar is not None:
                bar.set_postfix(counts, refresh=False)
                bar.update()
    finally:
        if started:
            ray.shutdown()
    if failed:
        raise GridFailure(failed)

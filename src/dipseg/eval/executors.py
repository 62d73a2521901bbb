"""Where the jobs of a benchmark sweep run: a local process pool, or Ray tasks on a cluster.

Both executors take the same list of :class:`~dipseg.eval.jobs.Job` objects and yield one
result per job as it finishes (in completion order), ``{"row": ..., "mask": ...}`` or
``{"error": message, "job": job}``. The driver (:func:`dipseg.eval.runner.run_bench`) writes
the rows to ``results.jsonl`` as they come, so an interrupted sweep keeps every finished
row and never writes one twice.

``local``
    ``--workers N`` processes (spawned, so no OpenMP state is inherited), each with
    ``max(1, cores // N)`` torch / OpenCV / BLAS threads, set explicitly: two processes
    that each run as many threads as there are cores slow every step 10-30x. Each worker
    opens the dataset once and keeps the last few images it read, and the jobs come in
    image-major order, so an image is read about once per worker, not once per job.
    ``--workers 1`` runs in the calling process. Default: :data:`DEFAULT_LOCAL_WORKERS`.

``ray``
    Every job is one Ray task requesting ``num_cpus`` (and ``num_gpus`` for DIPSEG jobs
    with ``--device cuda``), on the cluster at ``--ray-address`` or on a local instance.
    The driver reads each image once and puts it in the object store (``ray.put``); all
    jobs of that image share the reference, and it is released once they are done, so
    workers need no shared file system. Tasks are retried by Ray (``max_retries``) when a
    worker dies; at most a bounded number of tasks are in flight, so Ctrl-C cancels
    little work.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter, OrderedDict
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

from .jobs import BenchSample, DatasetSource, Job, JobContext, execute_job

__all__ = ["DEFAULT_LOCAL_WORKERS", "EXECUTORS", "import_ray", "run_jobs", "run_local", "run_ray"]

EXECUTORS = ("local", "ray")

DEFAULT_LOCAL_WORKERS: int | None = None
"""Default ``--workers`` of the local executor; ``None`` means one per core, one thread each.

Measured here (2 cores shared with other jobs, ``docs/scaling.md``): on 12 GrabCut + short
DIPSEG jobs, 2 workers x 1 thread took 21.9-48.4 s and 1 worker x 2 threads 42.3-180.6 s;
a 2-thread torch process beside busy processes slows down many times over, single-threaded
workers do not. One thread per job is also what the Ray executor uses by default, so both
executors give bit-identical DIPSEG results.
"""

CACHE_IMAGES = 4
"""Images a worker keeps in memory (most recently used)."""

RAY_MAX_RETRIES = 3
"""Ray retries of a task whose worker died (killed, out of memory, node lost)."""


# --------------------------------------------------------------------------- threads


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def thread_limits(n: int):
    """Limit torch, OpenCV and BLAS/OpenMP pools to ``n`` threads; restore them on exit."""
    import cv2
    import torch

    old_torch, old_cv = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    limiter = _threadpool_limits(n)
    try:
        yield
    finally:
        torch.set_num_threads(old_torch)
        cv2.setNumThreads(old_cv)
        if limiter is not None:
            limiter.restore_original_limits()


def _threadpool_limits(n: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return None
    return threadpool_limits(limits=n)


_PROCESS_LIMITS: list[Any] = []


def set_process_threads(n: int) -> None:
    """Set the thread pools of a worker process for its whole life."""
    import cv2
    import torch

    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    _PROCESS_LIMITS.append(_threadpool_limits(n))


# --------------------------------------------------------------------------- worker side


class _ImageCache:
    """Opens the dataset once; keeps the last :data:`CACHE_IMAGES` images."""

    def __init__(self, source: DatasetSource):
        self.source = source
        self._load: Callable[[str], BenchSample] | None = None
        self._cache: OrderedDict[str, BenchSample] = OrderedDict()
        self.reads = 0

    def get(self, image_id: str) -> BenchSample:
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        if self._load is None:
            self._load = self.source.loader()
        sample = self._load(image_id)
        self.reads += 1
        self._cache[image_id] = sample
        while len(self._cache) > CACHE_IMAGES:
            self._cache.popitem(last=False)
        return sample


def _run_one(sample_or_cache, job: Job, ctx: JobContext, job_fn: Callable | None) -> dict:
    """Run one job; an exception becomes an error result (retrying would fail the same way)."""
    try:
        sample = sample_or_cache.get(job.image) if isinstance(sample_or_cache, _ImageCache) else sample_or_cache
        return (job_fn or execute_job)(sample, job, ctx)
    except Exception as exc:  # noqa: BLE001 - reported per job, the sweep goes on
        text = str(exc).splitlines()[0] if str(exc) else ""
        return {"error": f"{type(exc).__name__}: {text}", "job": job}


_WORKER: dict[str, Any] = {}


def _init_pool_worker(source: DatasetSource, threads: int) -> None:
    # Ctrl-C goes to the whole process group; the driver decides and terminates workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    set_process_threads(threads)
    _WORKER["cache"] = _ImageCache(source)


def _pool_job(job: Job, ctx: JobContext, job_fn: Callable | None) -> dict:
    return _run_one(_WORKER["cache"], job, ctx, job_fn)


# --------------------------------------------------------------------------- local


def default_local_workers() -> int:
    """Workers of the local executor when ``--workers`` is not given."""
    return DEFAULT_LOCAL_WORKERS or available_cores()


def run_local(
    jobs: Sequence[Job],
    ctx: JobContext,
    source: DatasetSource,
    *,
    workers: int | None = None,
    threads: int | None = None,
    job_fn: Callable | None = None,
) -> Iterator[dict]:
    """Run jobs in a local process pool; yield results as they finish.

    ``threads`` defaults to ``max(1, cores // workers)``. ``workers=1`` runs in this
    process (thread settings restored afterwards).
    """
    workers = workers or default_local_workers()
    threads = threads or max(1, available_cores() // workers)
    ctx = replace(ctx, threads=threads)
    if workers == 1:
        cache = _ImageCache(source)
        with thread_limits(threads):
            for job in jobs:
                yield _run_one(cache, job, ctx, job_fn)
        return

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_pool_worker, initargs=(source, threads),
    )
    todo = iter(jobs)
    pending: set = set()
    finished = False

    def fill() -> None:
        # Two jobs queued per worker: enough to keep them busy, little to cancel.
        while len(pending) < 2 * workers:
            job = next(todo, None)
            if job is None:
                return
            pending.add(pool.submit(_pool_job, job, ctx, job_fn))

    try:
        fill()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                pending.discard(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    raise RuntimeError(
                        "a local worker process died (out of memory or killed); finished rows are kept, "
                        "rerun the same command to resume"
                    ) from None
                yield result
            fill()
        finished = True
    finally:
        if not finished:
            for fut in pending:
                fut.cancel()
            # Stop running jobs now rather than waiting minutes for a DIPSEG fit to end.
            for proc in list(getattr(pool, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- ray


def import_ray():
    """Import Ray or explain how to install it.

    Raises
    ------
    ImportError
        With the install command.
    """
    try:
        import ray
    except ImportError:
        raise ImportError("--executor ray needs Ray, an optional extra: pip install 'dipseg[ray]'") from None
    return ray


_RAY_THREADS: dict[str, int] = {}


def _ray_task(sample: BenchSample, job: Job, ctx: JobContext, job_fn: Callable | None) -> dict:
    if _RAY_THREADS.get("n") != ctx.threads:
        set_process_threads(int(ctx.threads or 1))
        _RAY_THREADS["n"] = ctx.threads
    return _run_one(sample, job, ctx, job_fn)


def run_ray(
    jobs: Sequence[Job],
    ctx: JobContext,
    source: DatasetSource,
    *,
    address: str | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 1.0,
    threads: int | None = None,
    max_retries: int = RAY_MAX_RETRIES,
    max_in_flight: int | None = None,
    job_fn: Callable | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[dict]:
    """Run jobs as Ray tasks; yield results as they finish (``ray.wait``).

    Connects with ``ray.init(address=address)`` unless Ray is already initialised in
    this process (then that instance is used and left running); a local instance is
    started when ``address`` is None. Tasks request ``cpus_per_task`` CPUs, and
    ``gpus_per_task`` GPUs when ``ctx.device`` is CUDA and the method is DIPSEG
    (baselines run on CPUs only). At most ``max_in_flight`` tasks are submitted at once
    (default: twice the cluster's task slots).
    """
    ray = import_ray()
    from ray.exceptions import RayError

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(include_dashboard=False, logging_level="WARNING")
        started = True
        if log is not None:
            res = ray.cluster_resources()
            log(f"ray: {'joined ' + address if address else 'local instance'} with "
                f"{res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs")
    use_gpu = str(ctx.device).startswith("cuda")
    ctx = replace(ctx, threads=int(threads or max(1, round(cpus_per_task))))
    if max_in_flight is None:
        slots = ray.cluster_resources().get("CPU", 1) / max(cpus_per_task, 1e-3)
        max_in_flight = max(2, int(2 * slots))
    remote = ray.remote(_ray_task)
    ctx_ref = ray.put(ctx)
    load = source.loader()
    left = Counter(job.image for job in jobs)
    image_refs: dict[str, Any] = {}
    pending: dict[Any, Job] = {}
    todo = iter(jobs)
    finished = False

    def done_with(job: Job) -> None:
        left[job.image] -= 1
        if left[job.image] == 0:
            image_refs.pop(job.image, None)  # last job of this image: let the object store free it

    def fill() -> list[dict]:
        errors = []
        while len(pending) < max_in_flight:
            job = next(todo, None)
            if job is None:
                break
            if job.image not in image_refs:
                try:
                    image_refs[job.image] = ray.put(load(job.image))
                except Exception as exc:  # noqa: BLE001 - an unreadable image fails its jobs only
                    errors.append({"error": f"{type(exc).__name__}: {exc}", "job": job})
                    done_with(job)
                    continue
            gpus = gpus_per_task if (use_gpu and job.method.is_dipseg) else 0
            ref = remote.options(
                num_cpus=cpus_per_task, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False,
            ).remote(image_refs[job.image], job, ctx_ref, job_fn)
            pending[ref] = job
        return errors

    try:
        yield from fill()
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except RayError as exc:  # the worker died more often than max_retries, or was cancelled
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    result = {"error": f"{type(exc).__name__}: {first}", "job": job}
                done_with(job)
                yield result
            yield from fill()
        finished = True
    finally:
        if not finished:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- dispatch


def run_jobs(
    executor: str,
    jobs: Sequence[Job],
    ctx: JobContext,
    source: DatasetSource,
    *,
    workers: int | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
    cpus_per_task: float = 1,
    gpus_per_task: float = 1.0,
    job_fn: Callable | None = None,
    log: Callable[[str], None] | None = None,
) -> Iterator[dict]:
    """Run ``jobs`` with the named executor (``"local"`` or ``"ray"``)."""
    if executor == "local":
        return run_local(jobs, ctx, source, workers=workers, threads=threads, job_fn=job_fn)
    if executor == "ray":
        return run_ray(jobs, ctx, source, address=ray_address, cpus_per_task=cpus_per_task,
                       gpus_per_task=gpus_per_task, threads=threads, job_fn=job_fn, log=log)
    raise ValueError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")


__all__ += ["available_cores", "default_local_workers", "set_process_threads", "thread_limits"]

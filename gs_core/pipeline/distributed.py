"""``prepare --ray [ADDRESS]``: the per-view steps as Ray tasks (:class:`RayExecutor`).

A thin layer: the per-view functions are the plain ones the single-process path runs
(:mod:`gs_core.parallel`); here each item becomes one task. Every :class:`~gs_core.parallel.Shared`
value (the scene) goes into the object store once, while the caller holds it (the maps of several
passes over the same photos put them once), every other shared argument once per map, and tasks
read them from there (numpy arrays without a copy on the same node). Results come back as tasks
finish; the callers reduce them in view order, so a work folder written with Ray is the same as one
written without it. A task whose worker dies is run again (``max_retries``); Ctrl-C cancels the
tasks not yet finished, and what finished is already in the per-view cache.

Ray is an optional extra (``pip install gs-core[ray]``); without it ``--ray`` is a clear error.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ..errors import UserError
from ..parallel import Shared, task_ended, task_started

LOCAL = "local"  # --ray without an address: a new cluster on this machine's cores
MAX_RETRIES = 3  # a task whose worker died is run again this many times
IN_FLIGHT = 2  # tasks submitted and not yet finished, per CPU of the cluster
RELEASE_AFTER = 5.0  # seconds a worker waits after a task for the next before it drops what it derived
# Ray starts its worker processes 15 nice levels below the process that starts the cluster (its
# worker_niceness); on a shared machine that starves the workers the driver waits on. A cluster started
# here runs them at the driver's niceness instead (a cluster at an address keeps its own setting).
LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}  # passed as a copy: ray.init adds its own keys to the dict


def require_ray() -> None:
    """A clear error before any work when ``--ray`` is given and Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--ray: Ray is not installed here (pip install 'gs-core[ray]')") from None


def _call(fn: Callable, item: Any, *shared: Any, release_after: float = RELEASE_AFTER) -> Any:
    """A task: ``fn(item, *shared)`` in a worker, which drops what it derived for the map
    (:func:`~gs_core.parallel.derived`) once no task follows for ``release_after`` seconds."""
    task_started()
    try:
        return fn(item, *shared)
    finally:
        task_ended(release_after)


class RayExecutor:
    """Runs each item of a map as a Ray task (one CPU each) on the cluster at ``address``
    (``"local"``: start one here with ``num_cpus``, default all cores). Connects on first use (a
    work folder that is up to date starts no cluster), calling ``on_connect(executor)``; ``close``
    shuts down the connection this object opened. A worker drops what it derived for a map (the
    association's matrices) ``release_after`` seconds after its last task, not at the next map."""

    remote = True  # items are pickled to the workers

    def __init__(self, address: str = LOCAL, num_cpus: int | None = None, object_store_memory: int | None = None,
                 on_connect: Callable | None = None, release_after: float = RELEASE_AFTER):
        require_ray()
        import ray

        self._ray = ray
        self._address, self._num_cpus, self._store = address, num_cpus, object_store_memory
        self._on_connect = on_connect
        self._release_after = release_after
        self._owns = False
        self._task = None
        self._puts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Shared -> its object ref

    def _connect(self) -> None:
        if self._task is not None:
            return
        ray, address = self._ray, self._address
        if not ray.is_initialized():
            kwargs: dict = {"include_dashboard": False, "log_to_driver": False}
            if address == LOCAL:
                kwargs.update(num_cpus=self._num_cpus or os.cpu_count(), object_store_memory=self._store,
                              _system_config=dict(LOCAL_SYSTEM_CONFIG))
            try:
                ray.init(address=address, **kwargs)
            except Exception as exc:  # Ray raises many kinds (ConnectionError, RuntimeError, TimeoutError...)
                if ray.is_initialized():
                    ray.shutdown()
                what = "cannot start a local Ray cluster" if address == LOCAL else "cannot connect to a Ray cluster there"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                raise UserError(f"--ray {address}: {what} ({first})") from None
            self._owns = True
        self._task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_call)
        if self._on_connect is not None:
            self._on_connect(self)

    @property
    def workers(self) -> int:
        """CPUs the cluster has (tasks that can run at once)."""
        self._connect()
        return int(self._ray.cluster_resources().get("CPU", 0))

    def map(self, fn: Callable, items: Iterable, *shared: Any) -> Iterator[tuple[int, Any]]:
        """``fn(item, *shared)`` as one task per item; yields ``(index, result)`` as they finish. Items
        are read lazily and at most :data:`IN_FLIGHT` tasks per CPU are submitted at a time, so a map
        over photos does not hold them all in memory or in the object store."""
        self._connect()
        ray = self._ray
        refs = [self._put(s) for s in shared]  # once per map (a Shared once while its caller holds it)
        window = max(2, IN_FLIGHT * self.workers)
        todo = iter(enumerate(items))
        pending: dict = {}
        try:
            while True:
                for i, item in todo:
                    pending[self._task.remote(fn, item, *refs, release_after=self._release_after)] = i
                    if len(pending) >= window:
                        break
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    yield pending.pop(ref), ray.get(ref)
        finally:  # Ctrl-C, an error, or the caller stopped early: drop what has not finished
            for ref in pending:
                ray.cancel(ref)

    def _put(self, value: Any):
        """``value``'s object ref: a :class:`~gs_core.parallel.Shared` is put once and its ref kept
        while the caller holds it (the passes of density control's refit read the same photos), any
        other value once per map."""
        if not isinstance(value, Shared):
            return self._ray.put(value)
        ref = self._puts.get(value)
        if ref is None:
            ref = self._puts[value] = self._ray.put(value)
        return ref

    @property
    def address(self) -> str:
        return self._address

    def close(self) -> None:
        self._puts = weakref.WeakKeyDictionary()
        if self._owns and self._ray.is_initialized():
            self._ray.shutdown()
        self._owns, self._task = False, None

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["LOCAL", "LOCAL_SYSTEM_CONFIG", "RayExecutor"]

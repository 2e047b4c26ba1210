"""Where per-view work runs: a map of a plain function over items, here or on a cluster.

The per-view steps of ``prepare`` (patches, GIT traces, density control's offsets and refit passes)
are pure functions ``fn(item, *shared)`` returning sums. An :class:`Executor` runs them and yields
``(index, result)`` as each finishes; callers reduce in index order, so the result does not depend
on where or in which order the items ran. :data:`LOCAL` runs them one after the other in this
process; ``gs_core.pipeline.distributed.RayExecutor`` runs them as Ray tasks. Data every item reads
(the scene) is wrapped in :class:`Shared` so a cluster sends it once, not once per item.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(eq=False)
class Shared:
    """A value every item of a map reads; ``token`` names it, so a worker builds what it derives from
    it (:func:`derived`) once, not once per item."""

    value: Any
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class Executor(Protocol):
    remote: bool  # items and shared values are pickled to other processes (worth narrowing them first)

    def map(self, fn: Callable, items: Iterable, *shared: Any) -> Iterator[tuple[int, Any]]:
        """``fn(item, *shared)`` for every item, yielded as ``(index, result)`` in any order."""
        ...


class LocalExecutor:
    """Runs each item in this process, in order."""

    remote = False

    def map(self, fn: Callable, items: Iterable, *shared: Any) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            yield i, fn(item, *shared)


LOCAL = LocalExecutor()


def travels(executor: Executor | None) -> bool:
    """Whether ``executor`` sends its items to other processes: only then is a narrower copy of them
    (:func:`narrow_ids`) worth its making."""
    return bool(getattr(executor, "remote", False))


def narrow_ids(ids: np.ndarray) -> np.ndarray:
    """``ids`` (any integer array) in the narrowest of int16 and int32 that holds its values, or as it
    is when neither does: the same values in fewer bytes, for an item that travels.

    Args:
        ids: [...] integer array.
    """
    if ids.size == 0:
        return ids
    lo, hi = int(ids.min()), int(ids.max())
    for t in (np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return ids if ids.dtype == t else ids.astype(t)
    return ids


def run_all(executor: Executor | None, fn: Callable, items: list, *shared: Any,
            progress: Callable[[int, int], None] | None = None) -> list:
    """The results of ``fn`` over ``items`` in item order (``progress(done, total)`` as they finish)."""
    out: list = [None] * len(items)
    for done, (i, result) in enumerate((executor or LOCAL).map(fn, items, *shared), 1):
        out[i] = result
        if progress:
            progress(done, len(items))
    return out


def ordered(executor: Executor | None, fn: Callable, items: Iterable, *shared: Any) -> Iterator:
    """The results of ``fn`` over ``items`` one by one in item order, holding only those that finished
    early: for sums reduced in a fixed order (the same floating-point result wherever items ran)."""
    early: dict[int, Any] = {}
    nxt = 0
    for i, result in (executor or LOCAL).map(fn, items, *shared):
        early[i] = result
        while nxt in early:
            yield early.pop(nxt)
            nxt += 1


_DERIVED: dict[tuple[str, str], Any] = {}  # (token, name) -> value, for the latest token only (per process)


def derived(shared: Shared, name: str, build: Callable[[Any], Any]) -> Any:
    """``build(shared.value)``, made once per process for the latest :class:`Shared` (a worker runs
    many items of one map: it activates the scene's Gaussians once)."""
    key = (shared.token, name)
    if key not in _DERIVED:
        for stale in [k for k in _DERIVED if k[0] != shared.token]:
            del _DERIVED[stale]
        _DERIVED[key] = build(shared.value)
    return _DERIVED[key]


def forget(shared: Shared) -> None:
    """Drop what this process derived from ``shared`` (the caller is done with it)."""
    for stale in [k for k in _DERIVED if k[0] == shared.token]:
        del _DERIVED[stale]


# A worker process is not told when a map ends (the caller's forget runs in the caller's process), so
# what it derived would stay until a task of the next map: the association's matrices through the
# caller's merge tree. A worker's task wrapper calls task_started / task_ended; once no task has
# started for a while after one ended, the map is over and what was derived is dropped. One thread per
# process keeps that deadline (started at the first task_ended, then waiting): a map of thousands of
# tasks moves the deadline, it does not start a timer per task.
RELEASE_THREAD = "gs_core-release"  # the name of that thread


class _IdleRelease:
    """The deadline after which this process drops what it derived (:data:`_DERIVED`), kept by one
    daemon thread: :meth:`started` cancels it, :meth:`ended` sets it ``after`` seconds from now once no
    task is running."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0  # tasks started and not yet ended in this process
        self._deadline: float | None = None  # time.monotonic() at which to release, or None
        self._thread: threading.Thread | None = None

    def started(self) -> None:
        with self._cond:
            self._running += 1
            self._deadline = None

    def ended(self, after: float) -> None:
        with self._cond:
            self._running = max(self._running - 1, 0)
            if self._running:
                return
            self._deadline = time.monotonic() + after
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=RELEASE_THREAD, daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                if self._deadline is None:
                    self._cond.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline = None
                _DERIVED.clear()


_IDLE = _IdleRelease()


def task_started() -> None:
    """A task starts in this (worker) process: keep what was derived (:func:`task_ended`)."""
    _IDLE.started()


def task_ended(release_after: float) -> None:
    """A task ended in this (worker) process: drop everything derived here (:func:`derived`) unless
    another task starts within ``release_after`` seconds. The tasks of one map follow each other
    without a pause on a worker, so this frees a map's matrices soon after the map ends, not at the
    next map; at worst a later task of the same value builds them again (the same values). One thread
    per process waits for that moment, however many tasks end."""
    _IDLE.ended(release_after)

"""Where per-view work runs: a map of a plain function over items, here or on a cluster.

The per-view steps of ``prepare`` (patches, GIT traces, density control's offsets and refit passes)
are pure functions ``fn(item, *shared)`` returning sums. An :class:`Executor` runs them and yields
``(index, result)`` as each finishes; callers reduce in index order, so the result does not depend
on where or in which order the items ran. :data:`LOCAL` runs them one after the other in this
process; ``gs_core.pipeline.distributed.RayExecutor`` runs them as Ray tasks. Data every item reads
(the scene) is wrapped in :class:`Shared` so a cluster sends it once, not once per item.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(eq=False)
class Shared:
    """A value every item of a map reads; ``token`` names it, so a worker builds what it derives from
    it (:func:`derived`) once, not once per item."""

    value: Any
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class Executor(Protocol):
    def map(self, fn: Callable, items: Iterable, *shared: Any) -> Iterator[tuple[int, Any]]:
        """``fn(item, *shared)`` for every item, yielded as ``(index, result)`` in any order."""
        ...


class LocalExecutor:
    """Runs each item in this process, in order."""

    def map(self, fn: Callable, items: Iterable, *shared: Any) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            yield i, fn(item, *shared)


LOCAL = LocalExecutor()


def run_all(executor: Executor | None, fn: Callable, items: list, *shared: Any,
            progress: Callable[[int, int], None] | None = None) -> list:
    """The results of ``fn`` over ``items`` in item order (``progress(done, total)`` as they finish)."""
    out: list = [None] * len(items)
    for done, (i, result) in enumerate((executor or LOCAL).map(fn, items, *shared), 1):
        out[i] = result
        if progress:
            progress(done, len(items))
    return out


def ordered(executor: Executor | None, fn: Callable, items: list, *shared: Any) -> Iterator:
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

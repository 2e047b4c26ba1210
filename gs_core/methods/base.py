"""What a segmentation method takes and returns: the contract every method of :mod:`gs_core.methods`
implements, so the benchmark, the CLI and the add-on run any of them the same way.

A method reads a dataset folder (through :class:`~gs_core.dataset.Dataset`, like real data) and
returns one instance label per Gaussian of its ``scene.ply``; it may also return per-view label
maps (e.g. its consistent training masks), which the benchmark then scores instead of rendering
its labels there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..dataset import Dataset
    from ..parallel import Executor
    from ..scene import GaussianScene
    from .trace3d.git import ViewCache


@dataclass
class MethodInput:
    dataset: "Dataset"
    train: list[int]  # indices into dataset of the views a method may read (images, masks)
    backend: str = "auto"  # engine backend for render/trace


@dataclass
class MethodResult:
    labels: np.ndarray  # [N] int64 instance label per Gaussian of scene.ply, -1 = none
    view_maps: dict[int, np.ndarray] = field(default_factory=dict)  # view index -> [H, W] labels, same ids
    scene: "GaussianScene | None" = None  # a refined scene the labels index (None: the dataset's scene.ply)
    stages: dict[str, float] = field(default_factory=dict)  # stage name -> seconds
    info: dict = field(default_factory=dict)  # method-specific figures for results.json


class Method(Protocol):
    def __call__(self, inp: MethodInput) -> MethodResult: ...


def training_masks(ds, views: list[int]) -> tuple[list[int], list[np.ndarray]]:
    """Those of ``views`` that have masks, and their [M, H, W] bool stacks, through the dataset's one
    mask loader (SAM-style stacks, else instance PNGs): the views and stacks ``prepare`` gives a
    method's preparer, so the benchmark's adapters see the same input."""
    kept, stacks = [], []
    for v in views:
        m, _ = ds.mask_stack(v)
        if m is not None:
            kept.append(v)
            stacks.append(np.asarray(m, bool))
    return kept, stacks


# ---- the contract of prepare (gs_core.pipeline.prepare): what a method's preparer gets and returns ----

@dataclass
class PrepareInput:
    """What a method's preparer gets: the scene, the views that have masks, and where to cache."""

    scene: "GaussianScene"
    cameras: list  # [V] Camera of the views with masks
    stacks: list[np.ndarray]  # [V] bool [M, H, W] mask stacks of those views
    images: Callable[[int], np.ndarray]  # k -> [H, W, 3] float image of view k (loaded on demand)
    options: "PrepareOptions"  # gs_core.pipeline.prepare.PrepareOptions
    cache: "ViewCache | None" = None  # per-view GIT cache (methods that trace; pipeline.prepare.DiskViewCache)
    executor: "Executor | None" = None  # where per-view steps run (None: here; pipeline.distributed.RayExecutor)


@dataclass
class PreparedResult:
    """What a preparer returns: the arrays of the work folder (:mod:`gs_core.pipeline.workdir`)."""

    scene: "GaussianScene"  # the scene every array indexes (refined, or the input)
    labels: np.ndarray  # [N] int instance id per Gaussian (objects), -1 = none
    confidence: np.ndarray  # [N] float in [0, 1]
    levels: np.ndarray  # [L] float granularity levels, ascending (a single [0.5] if the method has one)
    level_labels: np.ndarray  # [L, N] int ids at each level
    view_maps: list[np.ndarray]  # [V] int [H, W] the method's instance map of each input view
    num_instances: int
    stages: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    info: dict = field(default_factory=dict)  # method-specific figures for the manifest


@dataclass(frozen=True)
class Preparer:
    """A method as ``prepare`` runs it: ``settings`` (a string; changing it invalidates WORK) and ``run``."""

    settings: Callable[["PrepareOptions"], str]
    run: Callable[[PrepareInput, Callable], PreparedResult]
    # the settings the per-view cache depends on (default: all of them); a change of only the others
    # (a merge threshold) reuses the cached views
    cache_settings: Callable[["PrepareOptions"], str] | None = None

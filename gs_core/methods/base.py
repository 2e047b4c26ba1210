"""What a segmentation method takes and returns: the contract every method of :mod:`gs_core.methods`
implements, so the benchmark, the CLI and the add-on run any of them the same way.

A method reads a dataset folder (through :class:`~gs_core.dataset.Dataset`, like real data) and
returns one instance label per Gaussian of its ``scene.ply``; it may also return per-view label
maps (e.g. its consistent training masks), which the benchmark then scores instead of rendering
its labels there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from ..dataset import Dataset
    from ..scene import GaussianScene


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

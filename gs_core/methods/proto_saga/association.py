"""Semantic-aware mask association (Proto-SaGa Sec. 3.2, Eq. 9-16) on Gaga's memory bank.

Per view, every mask region ``t`` has the Gaussians whose projected centre falls inside it
(``G_k(t)``, Eq. 9, :func:`gs_core.methods.gaga.region_members`). Two filters pick its set:

* depth (Eq. 10): Gaga's front set, the nearest ``delta_d`` share per grid cell
  (:func:`gs_core.methods.gaga.front_gaussians`; Gaga's code ranks per cell, the paper's Eq. 10 per region);
* probability (Eq. 15): the ``delta_s`` share of ``G_k(t)`` the view's classifier is most confident
  belongs to ``t``, ``sigma_{i,k}(t)`` of Eq. 14, ranked per region (at least one Gaussian).

``mode`` "depth" is Gaga, "probability" Eq. 15 alone, "both" their union (Eq. 16). The set then
goes through Gaga's memory bank unchanged (Eq. 11-13: score ``|B n F| / (|F| + |B n F|)``, a new
id below ``threshold``; :func:`gs_core.methods.gaga.associate_regions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ...engine import Projection
from ..gaga import GagaConfig, MemoryBank, associate_regions, front_gaussians, region_members
from .classifiers import ClassifierConfig, gaussian_probabilities

MODES = ("depth", "probability", "both")


@dataclass(frozen=True)
class AssociationConfig:
    mode: str = "both"  # "depth" (Gaga, Eq. 10) | "probability" (Eq. 15) | "both" (Eq. 16)
    delta_s: float = 0.2  # share of a region's Gaussians kept by probability (paper: = delta_d)
    tau: float | None = None  # temperature of Eq. 14 (it can reorder a region's ranks); None: the
    # classifiers' (Eq. 6), which :func:`gs_core.methods.proto_saga.run` passes in
    gaga: GagaConfig = field(default_factory=GagaConfig)  # delta_d = front_fraction, threshold, grid, conflicts

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not 0 < self.delta_s <= 1:
            raise ValueError(f"delta_s must be in (0, 1], got {self.delta_s}")


def probable_gaussians(proj: Projection, regions: np.ndarray,  # regions [H, W] int, -1 = none
                       probability: Callable[[np.ndarray], Tensor],  # ids [K] -> sigma [K, L]
                       delta_s: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 15 for every region of one view (pure): of the Gaussians under region ``t``, the
    ``max(floor(delta_s * E), 1)`` with the highest ``sigma(t)``, ties by index. Returns
    ``(gaussian ids [K], region [K])`` sorted by region.

    Args:
        regions: [H, W] int region index per pixel, -1 = none.
        probability: [K, L] ``probability(ids)``: sigma of K Gaussian ids [K] over the view's L regions.
    """
    ids, _, _, region = region_members(proj, regions)
    if len(ids) == 0:
        return ids, region
    p = probability(ids)  # [K, L]
    mine = p[torch.arange(len(ids)), torch.as_tensor(region)].numpy()
    order = np.lexsort((ids, -mine, region))  # by region, probability descending, then index
    region_sorted = region[order]
    start = np.flatnonzero(np.r_[True, region_sorted[1:] != region_sorted[:-1]])
    count = np.diff(np.r_[start, len(order)])
    rank = np.arange(len(order)) - np.repeat(start, count)
    quota = np.maximum(np.floor(delta_s * count).astype(np.int64), 1)
    keep = order[rank < np.repeat(quota, count)]
    return ids[keep], region[keep]


def semantic_sets(proj: Projection, regions: np.ndarray, probability: Callable[[np.ndarray], Tensor] | None,
                  config: AssociationConfig = AssociationConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The set of every region by ``config.mode`` (Eq. 10, 15 or their union, Eq. 16): pairs
    ``(gaussian ids [K], region [K])``, each Gaussian once per region, sorted by region then id.

    Args:
        regions: [H, W] int region index per pixel, -1 = none.
        probability: [K, L] ``probability(ids)``: sigma of K Gaussian ids [K] over the view's L regions;
            None in "depth" mode.
    """
    parts = []
    if config.mode in ("depth", "both"):
        parts.append(front_gaussians(proj, regions, config.gaga))
    if config.mode in ("probability", "both"):
        if probability is None:
            raise ValueError(f"mode {config.mode!r} needs the view's classifier probabilities")
        parts.append(probable_gaussians(proj, regions, probability, config.delta_s))
    ids = np.concatenate([p[0] for p in parts])
    region = np.concatenate([p[1] for p in parts])
    pairs = np.unique(np.stack([region, ids], axis=1), axis=0)  # sorted by region, then id
    return pairs[:, 1].astype(np.int64), pairs[:, 0].astype(np.int64)


def associate(views: Iterable[tuple[Projection, np.ndarray, Tensor | None]],  # (proj, regions [H, W], w_k [L, D])
              features: Tensor | None, config: AssociationConfig = AssociationConfig(),  # [N, D]
              num_gaussians: int | None = None) -> Iterator[np.ndarray]:
    """Consistent maps, view by view in order (the first view seeds the bank, Eq. 11): for each
    ``(projection, regions, classifier)`` a ``[H, W]`` int64 map of global ids (-1 = no mask).
    ``regions`` are the view's region indices (the classifier's classes); ``classifier`` may be None
    in "depth" mode.

    Args:
        views: [V] of (projection, regions [H, W] int, classifier w_k [L, D] or None).
        features: [N, D] per-Gaussian embeddings, or None in "depth" mode.
    """
    bank = None
    tau = ClassifierConfig.tau if config.tau is None else config.tau
    for proj, regions, weights in views:
        bank = bank or MemoryBank(num_gaussians or proj.num_gaussians)
        regions = np.asarray(regions)
        num = int(regions.max()) + 1 if weights is None else int(weights.shape[0])
        num = max(num, int(regions.max()) + 1, 0)
        prob = None
        if weights is not None and features is not None:
            prob = lambda ids, w=weights: gaussian_probabilities(features[torch.as_tensor(ids)], w, tau)  # noqa: E731
        ids, region = semantic_sets(proj, regions, prob, config)
        yield associate_regions(bank, regions, num, ids, region, config.gaga)

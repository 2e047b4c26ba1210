"""Gaga (Lyu et al., "Gaga: Group Any Gaussians via 3D-aware Memory Bank", 2024): the field's usual
mask-association baseline, as a peer method of the segmentation benchmark.

Views are visited in order. Each view's masks become disjoint regions (one label per pixel, the
smallest covering mask wins); a region's Gaussians are those whose projected centre falls inside
it, thinned to its front surface: per cell of a ``grid`` x ``grid`` partition of the image, the
nearest ``front_fraction`` of them by depth (at least one). That set ``F`` is scored against every
group ``B`` of a memory bank (sets of Gaussian ids) by ``|B n F| / (|F| + |B n F|)``; the region
joins the best group when the score reaches ``threshold``, else it starts a new group. Groups only
grow: nothing ever splits one, which is the method's known failure (DESIGN.md). The consistent
maps are then lifted onto the Gaussians in closed form (:func:`gs_core.lifting.lift_labels`),
where Gaga trains identity encodings with a classifier instead.

Read from the released code (``mask/projector.py``, ``mask/get_raw_mask.py``), not copied:
``front_percentage`` 0.2, ``overlap_threshold`` 0.1, ``num_patch`` 32 (cells per image side, not
pixels per cell), the score "IOCUR" above; a region matched to an existing group adds only the
Gaussians no group holds yet, a new group takes its whole set. The released code lets two masks of
one view join the same group; here that is ``conflicts="none"``, and the default ``"greedy"``
gives each group at most one region per view (pairs taken by descending score). Gaga draws its
masks by SAM score and drops those left with 10% of their area or less (``min_region_share``, off
by default: masks here are drawn smallest on top, as every method of the benchmark does).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse
import torch
from scipy.optimize import linear_sum_assignment

from ..camera import Camera
from ..engine import Gaussians, Projection, project
from ..labelmaps import masks_to_labels
from ..lifting.closed_form import LabelLiftConfig, lift_labels

if TYPE_CHECKING:  # the registry imports this module: import it lazily
    from .base import MethodInput, MethodResult

CONFLICTS = ("greedy", "hungarian", "none")


@dataclass(frozen=True)
class GagaConfig:
    """Association settings (defaults: Gaga's released ``associate.py``) and the lifting of its maps."""

    front_fraction: float = 0.2  # share of a region's Gaussians kept per cell, nearest first (-fp)
    threshold: float = 0.1  # smallest score |B n F| / (|F| + |B n F|) that joins a group (-ot)
    grid: int = 32  # the image is cut into grid x grid cells for the depth filter (-np)
    min_region_share: float = 0.0  # a mask keeps its region only above this share of its area (Gaga's
    # get_raw_mask: 0.1, masks drawn by score; here, smallest on top, 0.1 lowered As mIoU: docs/benchmarks.md)
    conflicts: str = "greedy"  # two regions of one view in one group: "greedy" | "hungarian" | "none" (Gaga's code)
    lift: LabelLiftConfig = field(default_factory=LabelLiftConfig)  # consistent maps -> per-Gaussian labels

    def __post_init__(self):
        if not 0 < self.front_fraction <= 1:
            raise ValueError(f"front_fraction must be in (0, 1], got {self.front_fraction}")
        if self.grid < 1:
            raise ValueError(f"grid must be >= 1, got {self.grid}")
        if self.conflicts not in CONFLICTS:
            raise ValueError(f"conflicts must be one of {CONFLICTS}, got {self.conflicts!r}")


# ---- per view: regions and the front Gaussians of each ------------------------------------------

def regions_of(masks: np.ndarray, min_share: float = 0.0) -> np.ndarray:  # masks [M, H, W] -> [H, W] int64
    """Disjoint regions of a mask stack (pure): the smallest covering mask wins a pixel
    (:func:`~gs_core.labelmaps.masks_to_labels`), and a mask left with no more than ``min_share``
    of its area loses its region (-1), as Gaga's ``get_raw_mask`` drops mostly hidden masks.

    Args:
        masks: [M, H, W] bool mask stack.
    """
    regions = masks_to_labels(masks)
    area = np.asarray(masks).reshape(len(masks), -1).sum(1)
    kept = np.bincount(regions[regions >= 0], minlength=len(masks))
    drop = np.r_[kept <= min_share * area, True]  # the extra entry maps -1 to -1
    return np.where(drop[regions], -1, regions)


def region_members(proj: Projection, regions: np.ndarray  # regions [H, W] int, -1 = none
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Gaussians of every region before any filter (pure; Eq. 9 of Proto-SaGa): those visible
    whose projected centre (pixel ``floor(means2d)``) lies in a region. Returns
    ``(gaussian ids [K], x [K], y [K], region [K])``, int64, ascending ids.

    Args:
        regions: [H, W] int region index per pixel, -1 = none.
    """
    regions = np.asarray(regions)
    H, W = regions.shape
    if (H, W) != (proj.height, proj.width):
        raise ValueError(f"regions are {W}x{H}, the view is {proj.width}x{proj.height}")
    xy = torch.floor(proj.means2d).cpu()
    inside = (proj.visible.cpu() & (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)).numpy()
    ids = np.flatnonzero(inside)
    x, y = xy[ids, 0].long().numpy(), xy[ids, 1].long().numpy()
    region = regions[y, x].astype(np.int64)
    keep = region >= 0
    return ids[keep], x[keep], y[keep], region[keep]


def front_gaussians(proj: Projection, regions: np.ndarray,  # regions [H, W] int, -1 = none
                    config: GagaConfig = GagaConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The front set ``F`` of every region of one view (pure; Gaga ``get_patch_front_gaussian_of_mask``).

    A Gaussian belongs to the region under its projected centre (pixel ``floor(means2d)``, centres
    at +0.5); per (region, cell) only the ``max(floor(front_fraction * n), 1)`` nearest by depth
    are kept, ties by index. Returns ``(gaussian ids [K] int64, region [K] int64)``, sorted by
    region; each Gaussian appears at most once.

    Args:
        regions: [H, W] int region index per pixel, -1 = none.
    """
    H, W = np.shape(regions)
    ids, x, y, region = region_members(proj, regions)
    cw, ch = -(-W // config.grid), -(-H // config.grid)  # cell size in pixels, as Gaga: ceil(size / grid)
    cell = (y // ch) * config.grid + x // cw
    depth = proj.depths.cpu().numpy()[ids]
    order = np.lexsort((ids, depth, cell, region))  # by region, cell, depth, then index
    key = (region * config.grid * config.grid + cell)[order]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])  # first row of each (region, cell)
    count = np.diff(np.r_[start, len(key)])
    rank = np.arange(len(key)) - np.repeat(start, count)
    quota = np.maximum(np.floor(config.front_fraction * count).astype(np.int64), 1)  # int(), as Gaga
    front = order[rank < np.repeat(quota, count)]
    return ids[front], region[front]


# ---- the memory bank -----------------------------------------------------------------------------

def match(scores: np.ndarray, threshold: float, conflicts: str = "greedy") -> np.ndarray:
    """Regions -> groups from ``scores`` [R, G] (pure). Returns [R] int64: a group, or -1 = new group.

    ``"none"``: each region takes its best group (Gaga's code; several regions may share one);
    ``"greedy"``: pairs by descending score, each region and group used once (ties: lower region,
    then lower group); ``"hungarian"``: the one-to-one assignment of largest total score. Only pairs
    with ``score >= threshold`` are ever made.

    Args:
        scores: [R, G] score of each region against each group.
    """
    R, G = scores.shape
    out = np.full(R, -1, dtype=np.int64)
    if R == 0 or G == 0:
        return out
    if conflicts == "none":
        best = scores.argmax(axis=1)
        ok = scores[np.arange(R), best] >= threshold
        out[ok] = best[ok]
    elif conflicts == "greedy":
        r, g = np.nonzero(scores >= threshold)
        used_g = np.zeros(G, dtype=bool)
        for k in np.lexsort((g, r, -scores[r, g])):
            if out[r[k]] < 0 and not used_g[g[k]]:
                out[r[k]], used_g[g[k]] = g[k], True
    elif conflicts == "hungarian":
        ok = scores >= threshold
        rows, cols = linear_sum_assignment(np.where(ok, scores, 0.0), maximize=True)
        good = ok[rows, cols]
        out[rows[good]] = cols[good]
    else:
        raise ValueError(f"conflicts must be one of {CONFLICTS}, got {conflicts!r}")
    return out


class MemoryBank:
    """Groups of Gaussian ids that only grow (Gaga ``gaussian_idx_bank``), and the set of Gaussians
    any group holds (``assigned_gaussians``)."""

    def __init__(self, num_gaussians: int):
        self.groups: list[np.ndarray] = []  # each a sorted array of Gaussian ids
        self.assigned = np.zeros(num_gaussians, dtype=bool)  # [N]

    def __len__(self) -> int:
        return len(self.groups)

    def scores(self, gaussians: np.ndarray, region: np.ndarray, num_regions: int) -> np.ndarray:
        """``|B n F| / (|F| + |B n F|)`` [R, G] for the front sets given as pairs (``gaussians`` [K],
        ``region`` [K]), each Gaussian at most once per region. 0 for an empty ``F``.

        Args:
            gaussians: [K] int Gaussian ids of the front sets.
            region: [K] int the region of each.
        """
        N, G = len(self.assigned), len(self.groups)
        if G == 0:
            return np.zeros((num_regions, 0))
        sizes = np.array([len(b) for b in self.groups])
        bank = scipy.sparse.csc_matrix((np.ones(sizes.sum(), dtype=np.float64),
                                        (np.concatenate(self.groups), np.repeat(np.arange(G), sizes))),
                                       shape=(N, G))
        front = scipy.sparse.csr_matrix((np.ones(len(gaussians)), (region, gaussians)), shape=(num_regions, N))
        inter = np.asarray((front @ bank).todense())  # [R, G]
        size = np.bincount(region, minlength=num_regions)[:, None]
        return inter / np.maximum(size + inter, 1e-12)

    def add(self, group: int, gaussians: np.ndarray) -> int:
        """Put ``gaussians`` [K] into ``group`` (-1: a new group, which takes them all; an existing one
        takes only those no group holds yet, as Gaga's code). Returns the group id.

        Args:
            gaussians: [K] int Gaussian ids.
        """
        if group < 0:
            self.groups.append(np.unique(gaussians))
            group = len(self.groups) - 1
        else:
            fresh = gaussians[~self.assigned[gaussians]]
            self.groups[group] = np.union1d(self.groups[group], fresh)
        self.assigned[gaussians] = True
        return group


# ---- association over views ----------------------------------------------------------------------

def associate_view(bank: MemoryBank, proj: Projection, masks: np.ndarray,  # masks [M, H, W] bool
                   config: GagaConfig = GagaConfig()) -> np.ndarray:  # -> [H, W] int64 group ids, -1 = none
    """Associate one view's masks with ``bank`` (updated in place) and return its consistent map.

    The masks become disjoint regions (:func:`regions_of`); every region that kept pixels is
    matched (:func:`match`) on the scores at the start of the view, then added to its group in mask
    order (a region without Gaussians still gets a new, empty group, as Gaga).

    Args:
        masks: [M, H, W] bool the view's mask stack.
    """
    regions = regions_of(masks, config.min_region_share)  # [H, W] mask index, -1 = none
    ids, region = front_gaussians(proj, regions, config)
    return associate_regions(bank, regions, len(masks), ids, region, config)


def associate_regions(bank: MemoryBank, regions: np.ndarray, num_regions: int,  # regions [H, W] int, -1 = none
                      gaussians: np.ndarray, region: np.ndarray,  # [K] the set of every region, sorted by region
                      config: GagaConfig = GagaConfig()) -> np.ndarray:  # -> [H, W] int64 group ids, -1 = none
    """The memory-bank step of one view (Eq. 11-13 of Proto-SaGa), for any choice of the regions'
    Gaussian sets (Gaga's front sets; Proto-SaGa's semantic sets): every region that has pixels is
    matched (:func:`match`) on the scores at the start of the view, then added to its group in
    region order (a region without Gaussians still gets a new, empty group, as Gaga).

    Args:
        regions: [H, W] int region index per pixel, -1 = none.
        gaussians: [K] int the Gaussian ids of every region's set.
        region: [K] int the region of each, sorted.
    """
    present = np.unique(regions[regions >= 0])  # regions that have pixels, ascending
    if len(present) == 0:  # a view without masks (SAM found nothing: a blank wall, a dark frame)
        return np.full(regions.shape, -1, np.int64)
    chosen = match(bank.scores(gaussians, region, num_regions)[present], config.threshold, config.conflicts)
    bounds = np.searchsorted(region, np.r_[present, num_regions])  # region is sorted
    group_of = np.full(num_regions, -1, dtype=np.int64)
    for k, m in enumerate(present):
        group_of[m] = bank.add(int(chosen[k]), gaussians[bounds[k]:bounds[k + 1]])
    return np.where(regions >= 0, group_of[np.maximum(regions, 0)], -1)


def associate(gaussians: Gaussians, views: Iterable[tuple[Camera, np.ndarray]],
              config: GagaConfig = GagaConfig()) -> Iterator[np.ndarray]:
    """Consistent label maps from ``(camera, masks [M, H, W] bool)`` views visited in order: one
    ``[H, W]`` int64 map of global group ids per view (-1 = no mask), yielded view by view.

    Args:
        views: [V] of (camera, masks [M, H, W] bool).
    """
    bank = MemoryBank(len(gaussians))
    for camera, masks in views:
        yield associate_view(bank, project(gaussians, camera), masks, config)


@torch.no_grad()
def segment(inp: MethodInput, config: GagaConfig = GagaConfig()) -> MethodResult:
    """The benchmark's entry: associate the training views' masks in order and lift the consistent
    maps onto the Gaussians. A view's group ids are final once it is associated (groups never merge),
    so each view is projected once and lifted as it goes. Views without masks get no map."""
    from .base import MethodResult

    ds = inp.dataset
    gaussians = ds.load_scene().to_gaussians()
    bank, maps = MemoryBank(len(gaussians)), {}

    def associated():
        for v in inp.train:
            masks, _ = ds.mask_stack(v)
            if masks is not None and len(masks):
                proj = project(gaussians, ds.cameras[v])
                maps[v] = associate_view(bank, proj, masks, config)
                yield proj, maps[v]

    lift = config.lift if inp.backend == "auto" else replace(config.lift, backend=inp.backend)
    views = associated()
    first = next(views, None)
    if first is None:  # no masks anywhere: nothing to lift
        return MethodResult(np.full(len(gaussians), -1, dtype=np.int64), {})
    lifted = lift_labels(itertools.chain([first], views), lift)
    return MethodResult(lifted.labels.numpy().astype(np.int64), maps)

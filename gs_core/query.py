"""Selections from what a user points at: Gaussians, clicked pixels, a reference mask; at a
granularity from part to group.

Every query works on per-Gaussian instance labels (``-1`` = none) at one level of the merge tree
(:class:`LabelLevels`) and returns a per-Gaussian score and a boolean selection; ``selection_mask``
renders any selection to a 2D mask in any view. The pixel queries use ``trace`` restricted to the
clicked pixels: the Gaussians that blend into a pixel vote for their labels with their weight there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import UserError

if TYPE_CHECKING:
    from .engine import Projection

QUERY_SHARE = 0.5  # a label is selected by a mask when this share of its traced weight lies inside
FIT_TOLERANCE = 0.02  # --fit: levels this close to the best weighted IoU tie (the nearest to 0.5 wins)
# the 3D split of an instance no level splits: colour distance (in units of the instance's colour spread)
# against position (in units of its extent); chosen by measurement (docs/benchmarks.md)
SPLIT_COLOUR_WEIGHT = 1.0
# rule "split-support": a later positive click adds its whole instance when that adds at most this many
# Gaussians per Gaussian already selected, else only the part of it nearest the clicked splats (:func:`supported_part`)
SUPPORT_SHARE = 1.0
RULES = ("split", "split-support", "split-whole", "remove")
PER_CLICK_RULES = ("split", "split-support")  # a positive click added whole (add) or by its support (refine)


def _no_grad(fn):
    """``torch.no_grad`` imported when called: the labels and levels here load without torch, so a
    click from the shell (:mod:`gs_core.click_rays`) never starts it."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)
    return wrapper


@dataclass
class LabelLevels:
    """Per-Gaussian labels at a grid of granularity levels in [0, 1] (0 finest, 0.5 the objects,
    1 the groups), from cuts of the merge tree."""

    levels: np.ndarray  # [L] float, ascending
    labels: np.ndarray  # [L, N] int32, -1 = none

    def at(self, level: float) -> np.ndarray:  # -> [N]
        """Labels at the grid level nearest ``level``."""
        return self.labels[self.index(level)].astype(np.int64)

    def index(self, level: float) -> int:
        """Index of the grid level nearest ``level``."""
        if not 0.0 <= level <= 1.0:
            raise UserError(f"--level must be in [0, 1], got {level}")
        return int(np.argmin(np.abs(self.levels - level)))

    def click_path(self, gaussians: np.ndarray, weights: np.ndarray, anchor: float = 0.5) -> np.ndarray:  # -> [L]
        """The label a click selects at every level, from the Gaussians ``gaussians`` [K] under the
        clicked pixel and their weights ``weights`` [K] there (:func:`pixel_weights`).

        At the ``anchor`` level it is the heaviest label under the pixel; above, its ancestors;
        below, the heaviest of its children under the pixel (the heaviest child overall where none
        is under it). With nested levels (:func:`gs_core.methods.trace3d.consistency.nested_level_labels`)
        the selections ``labels[l] == path[l]`` then grow monotonically with the level.

        Args:
            gaussians: [K] int64 the Gaussians under the clicked pixel.
            weights: [K] float32 their weights there.
        """
        L = len(self.levels)
        path = np.full(L, -1, np.int64)
        a = self.index(anchor)
        path[a] = heaviest_label(self.labels[a].astype(np.int64), gaussians, weights)
        if path[a] < 0:
            return path
        for i in range(a + 1, L):  # ancestors: the coarser label of the members
            members = self.labels[i - 1] == path[i - 1]
            up = self.labels[i][members]
            path[i] = int(np.bincount(up[up >= 0]).argmax()) if (up >= 0).any() else -1
        for i in range(a - 1, -1, -1):  # descendants: the heaviest child under the pixel
            inside = self.labels[i + 1] == path[i + 1]
            under = inside[gaussians]
            child = heaviest_label(self.labels[i].astype(np.int64), gaussians[under], weights[under])
            if child < 0:
                kids = self.labels[i][inside]
                child = int(np.bincount(kids[kids >= 0]).argmax()) if (kids >= 0).any() else -1
            path[i] = child
        return path

    def from_clicks(self, level: float, positive: list[tuple[np.ndarray, np.ndarray]],
                    negative: list[tuple[np.ndarray, np.ndarray]] = (), rule: str | list[str] = "split",
                    means: np.ndarray | None = None, colors: np.ndarray | None = None) -> Selection:
        """The selection of positive and negative clicks at ``level``, each click given as
        :func:`pixel_weights` of its pixel (Gaussian indices [K], weights [K]); monotone in ``level``
        (:meth:`click_path`) for positive clicks alone, except under ``rule="split-support"`` with ``means``
        (a later positive click's part of its instance depends on the selection before it, below). ``means``
        [N, 3]: the Gaussians' centres, for the splits in 3D below.

        Each positive click selects its instance at ``level``. A negative click that lands in that
        instance splits it (``rule="split"``): the positive click then selects its instance at the
        coarsest level no coarser than ``level`` at which it and every negative click fall in
        different instances, the finest split of the merge tree that separates them. Where no level
        does (the clicks share the finest instance), that finest instance is split in 3D
        (:func:`split_by_clicks`): the part nearer the positive clicks' Gaussians than the negative
        ones', by position and, with ``colors``, colour; with no ``means``, nothing.

        With ``means``, every positive click also adds the splats it points at (:func:`clicked_splats`,
        whatever the level), so its pixel shows selected even where those splats' instance is selected
        already or they have none. ``rule="split-support"`` (opt-in) makes a later positive click a
        correction of the selection before it: it adds its instance whole only where that adds at most as
        many Gaussians as are selected already (:data:`SUPPORT_SHARE`), else the part of it nearest the
        clicked splats in the split's space (:func:`supported_part`: a click on a tin's edge whose splats
        vote for the table adds the tin's edge, not the table); it cannot tell a correction from a second,
        larger object added on purpose (the add-on's shift-click), so it is not the default: the user says
        which (the add-on's shift+ctrl-click, ``gs-core query --refine``).
        ``rule="split-whole"`` is the split rule without the clicked splats (each positive click adds its
        whole instance); ``rule="remove"`` the earlier one still: instances under positive clicks minus
        the instances under negative ones, the wanted object included when both fall in one. ``rule``
        may also be one rule per positive click, each "split" or "split-support" (:func:`click_rules`:
        the add-on's add and refine gestures in one selection, each click added by its own rule).
        ``Selection.labels`` are the ids at ``level`` of the instances the selection lies in;
        ``Selection.partial`` says the selection is only a part of them (a split).

        Args:
            positive: [C] of (gaussians [K] int64, weights [K] float32), one per positive click.
            negative: [C'] of (gaussians [K] int64, weights [K] float32), one per negative click.
            means: [N, 3] the Gaussians' centres, for a split in 3D, or None.
            colors: [N, 3] the Gaussians' base colours (SH DC), for a split in 3D, or None.
        """
        refine = [r == "split-support" and means is not None for r in click_rules(rule, len(positive))]
        rule = rule if isinstance(rule, str) else "split"
        i = self.index(level)
        labels = self.labels[i].astype(np.int64)
        if rule == "remove":
            pos = np.array([self.click_path(g, w)[i] for g, w in positive], np.int64)
            neg = np.array([self.click_path(g, w)[i] for g, w in negative], np.int64)
            return _select_labels(labels, np.setdiff1d(pos, neg))
        neg_paths = np.array([self.click_path(g, w) for g, w in negative], np.int64).reshape(-1, len(self.levels))
        clicked = rule in ("split", "split-support") and means is not None
        found = []  # per positive click: (its path, the level it selects at; -1 = none separates it)
        unsplit: dict[int, list[int]] = {}  # finest instance -> the positive clicks no level separates
        for k, (g, w) in enumerate(positive):
            path = self.click_path(g, w)
            j = i
            while j >= 0 and path[j] >= 0 and (neg_paths[:, j] == path[j]).any():
                j -= 1  # a negative click shares this instance: one level finer
            found.append((path, j))
            if j < 0:
                unsplit.setdefault(int(path[0]), []).append(k)
        parts = {}  # finest instance -> its 3D split's positive side
        if means is not None:
            for inst, ks in unsplit.items():
                members = np.flatnonzero(self.labels[0] == inst)
                negs = [negative[n] for n in np.flatnonzero(neg_paths[:, 0] == inst)]
                parts[inst] = split_by_clicks(means, members, [positive[k] for k in ks], negs, colors)
        selected = np.zeros(labels.shape, bool)
        for (g, w), (path, j), support in zip(positive, found, refine):  # in order: a later click corrects
            if j >= 0 and path[j] >= 0:
                inst = self.labels[j] == path[j]
                if support and selected.any():  # a later positive click: the part of its instance it supports
                    inst = supported_part(means, np.flatnonzero(inst & ~selected), (g, w),
                                          int(selected.sum()), colors)
                selected[inst] = True
            elif j < 0 and int(path[0]) in parts:
                selected[parts[int(path[0])]] = True
            if clicked:
                selected[clicked_splats(g, w, negative)] = True
        return _selection(labels, selected)


def click_rules(rule: str | list[str], count: int) -> list[str]:
    """The rule of each of ``count`` positive clicks (:meth:`LabelLevels.from_clicks`): ``rule`` for all,
    one of :data:`RULES`, or ``rule`` itself, one per click, each "split" (add) or "split-support" (refine)."""
    if isinstance(rule, str):
        if rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(map(repr, RULES))}, got {rule!r}")
        return [rule] * count
    rules = list(rule)
    if len(rules) != count or any(r not in PER_CLICK_RULES for r in rules):
        raise ValueError(f"rule must be one per positive click ({count}), each one of "
                         f"{', '.join(map(repr, PER_CLICK_RULES))}, got {rules!r}")
    return rules


def click_point(means: np.ndarray, members: np.ndarray, gaussians: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Where a click lands in 3D on an instance: the weighted mean of the centres ``means`` [N, 3] of the
    clicked pixel's Gaussians ``gaussians`` [K] (weights ``weights`` [K]) that belong to ``members``
    [M] (indices); all of the pixel's Gaussians where none does. -> [3]

    Args:
        means: [N, 3] the Gaussians' centres.
        members: [M] int64 indices of the instance's Gaussians.
        gaussians: [K] int64 the clicked pixel's Gaussians.
        weights: [K] float32 their blending weights there.
    """
    inside = np.isin(gaussians, members)
    if inside.any() and weights[inside].sum() > 0:
        gaussians, weights = gaussians[inside], weights[inside]
    if len(gaussians) == 0 or weights.sum() <= 0:
        return np.full(3, np.nan)
    return np.average(np.asarray(means, np.float64)[gaussians], axis=0, weights=weights.astype(np.float64))


def split_by_clicks(means: np.ndarray, members: np.ndarray, positive: list[tuple[np.ndarray, np.ndarray]],
                    negative: list[tuple[np.ndarray, np.ndarray]], colors: np.ndarray | None = None) -> np.ndarray:
    """The positive side of a 3D split of one instance ``members`` [M] (indices into ``means`` [N, 3])
    that no level of the merge tree splits, from the clicks in it. -> [M'] indices.

    Each click's sites are its pixel's Gaussians among the members (:func:`pixel_weights`); a Gaussian
    that blends into several clicked pixels is a site of the side (positive or negative) where it weighs
    most, each click's weights summing to one (a tie: negative); a click with none of its Gaussians among the members
    has one site, the member nearest its :func:`click_point`. Every member goes with its nearest site,
    by centre in units of the instance's extent (the mean of its centres' per-axis spread) and, with
    ``colors`` [N, 3], by colour in units of the instance's colour spread, weighted
    :data:`SPLIT_COLOUR_WEIGHT`: touching things of different colours (a pen on a desk, an apple in a
    bowl) come apart along their colour edge, look-alikes by position.

    Args:
        means: [N, 3] the Gaussians' centres.
        members: [M] int64 indices of the instance's Gaussians.
        positive: [P] of (gaussians [K] int64, weights [K] float32), the positive clicks in the instance.
        negative: [P'] of (gaussians [K] int64, weights [K] float32), the negative clicks in it.
        colors: [N, 3] the Gaussians' base colours, or None.
    """
    members = np.asarray(members, np.int64)
    if len(members) == 0 or not positive:
        return members[:0]
    if not negative:
        return members
    x = np.asarray(means, np.float64)
    weight: dict[int, list[float]] = {}  # site -> [positive weight, negative weight]
    for side, clicks in ((0, positive), (1, negative)):
        for g, w in clicks:
            g, w = click_sites(x, members, g, w)
            for a, b in zip(g.tolist(), w.tolist()):
                weight.setdefault(a, [0.0, 0.0])[side] += b
    if not weight:
        return members[:0]
    sites = np.fromiter(weight, np.int64, len(weight))
    site_positive = np.array([p > n for p, n in weight.values()])  # a tie: the negative click wins
    if site_positive.all():
        return members
    if not site_positive.any():
        return members[:0]
    f = split_features(x, members, colors)
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(f[sites]).query(f[members])
    return members[site_positive[nearest]]


def click_sites(means: np.ndarray, members: np.ndarray, gaussians: np.ndarray,
                weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A click's sites in an instance for a split in 3D: its pixel's Gaussians among ``members`` [M]
    with their weights there, summing to one; where none is a member, the member nearest its
    :func:`click_point` (weight 1); none where the pixel has no Gaussian. -> (indices [S] int64, [S] float64)

    Args:
        means: [N, 3] the Gaussians' centres.
        members: [M] int64 indices of the instance's Gaussians.
        gaussians: [K] int64 the clicked pixel's Gaussians.
        weights: [K] float32 their blending weights there.
    """
    x = np.asarray(means, np.float64)
    g, w = np.asarray(gaussians, np.int64), np.asarray(weights, np.float64)
    keep = np.isin(g, members) & (w > 0)
    if keep.any():
        return g[keep], w[keep] / w[keep].sum()
    point = click_point(x, members, g, w.astype(np.float32))
    if len(members) == 0 or not np.isfinite(point).all():
        return g[:0], w[:0]
    return members[[int(np.argmin(((x[members] - point) ** 2).sum(1)))]], np.ones(1)


def split_features(means: np.ndarray, members: np.ndarray, colors: np.ndarray | None = None) -> np.ndarray:
    """The space in which an instance ``members`` [M] is split in 3D (:func:`split_by_clicks`,
    :func:`supported_part`): centres ``means`` [N, 3] in units of the instance's extent (the mean of its
    centres' per-axis spread) and, with ``colors`` [N, 3], base colours in units of its colour spread,
    weighted :data:`SPLIT_COLOUR_WEIGHT`. -> [N, 3] or [N, 6]

    Args:
        means: [N, 3] the Gaussians' centres.
        members: [M] int64 indices of the instance's Gaussians.
        colors: [N, 3] the Gaussians' base colours, or None.
    """
    x = np.asarray(means, np.float64)
    feats = [x / (x[members].std(0).mean() + 1e-12)]
    if colors is not None:
        c = np.asarray(colors, np.float64)
        feats.append(SPLIT_COLOUR_WEIGHT * c / (c[members].std(0).mean() + 1e-6))
    return np.concatenate(feats, 1)


def supported_part(means: np.ndarray, members: np.ndarray, click: tuple[np.ndarray, np.ndarray],
                   selected: int, colors: np.ndarray | None = None) -> np.ndarray:
    """What a later positive click adds of its instance: ``members`` [M] (indices into ``means`` [N, 3],
    the instance's Gaussians not yet selected), whole when they number at most :data:`SUPPORT_SHARE` x
    ``selected`` (the Gaussians the earlier clicks selected: the click corrects a selection, it does not
    outweigh it); else only that many of them, those nearest the click's sites (:func:`click_sites`) in the
    space of the 3D split (:func:`split_features`): the clicked splats and their neighbourhood, not an
    instance the selection's object is a small part of (a table under a tin whose edge splats vote for
    it). -> [M'] indices.

    Args:
        means: [N, 3] the Gaussians' centres.
        members: [M] int64 the candidates: the instance's Gaussians not selected yet.
        click: ([K] int64, [K] float32) the clicked pixel's Gaussians and their weights there.
        selected: how many Gaussians are selected already.
        colors: [N, 3] the Gaussians' base colours, or None.
    """
    members = np.asarray(members, np.int64)
    count = int(np.ceil(SUPPORT_SHARE * selected))
    if len(members) <= count:
        return members
    x = np.asarray(means, np.float64)
    sites, _ = click_sites(x, members, *click)
    if count == 0 or len(sites) == 0:
        return members[:0]
    f = split_features(x, members, colors)
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(f[sites]).query(f[members])
    return members[np.argsort(dist, kind="stable")[:count]]


def clicked_splats(gaussians: np.ndarray, weights: np.ndarray,
                   negative: list[tuple[np.ndarray, np.ndarray]] = ()) -> np.ndarray:
    """The splats a positive click points at, whatever their labels: the heaviest of the clicked pixel's
    Gaussians ``gaussians`` [K] (weights ``weights`` [K]) until they carry half the pixel's weight
    (:func:`selection_mask`'s rule: selected, they show the pixel selected), leaving out a Gaussian that
    weighs more under a negative click (each click's weights summing to one, a tie going negative), as in
    :func:`split_by_clicks`. -> [K'] indices.

    Args:
        gaussians: [K] int64 the clicked pixel's Gaussians.
        weights: [K] float32 their weights there.
        negative: [C] of (gaussians [K] int64, weights [K] float32), the negative clicks.
    """
    g, w = np.asarray(gaussians, np.int64), np.asarray(weights, np.float64)
    if len(g) == 0 or w.sum() <= 0:
        return g[:0]
    share = w / w.sum()
    against = np.zeros(len(g))
    for ng, nw in negative:
        ng, nw = np.asarray(ng, np.int64), np.asarray(nw, np.float64)
        if nw.sum() > 0:
            hit = dict(zip(ng.tolist(), (nw / nw.sum()).tolist()))
            against += np.array([hit.get(a, 0.0) for a in g.tolist()])
    free = np.flatnonzero(share > against)
    order = free[np.argsort(-share[free], kind="stable")]
    need = int(np.searchsorted(np.cumsum(share[order]), 0.5 - 1e-9)) + 1
    return g[order[:need]]


@dataclass
class Selection:
    score: np.ndarray  # [N] float in [0, 1]
    selected: np.ndarray  # [N] bool
    labels: np.ndarray  # [K] int64 the instance labels selected
    partial: bool = False  # only a part of those instances is selected (a negative click split one)


def _selection(labels: np.ndarray, selected: np.ndarray) -> Selection:
    """The selection ``selected`` [N] bool, with the instances of ``labels`` [N] it lies in, partial
    when it leaves some of their Gaussians out."""
    chosen = np.unique(labels[selected & (labels >= 0)])
    whole = np.isin(labels, chosen) & (labels >= 0)
    return Selection(selected.astype(np.float32), selected, chosen, bool((whole & ~selected).any()))


def _select_labels(labels: np.ndarray, chosen: np.ndarray) -> Selection:
    chosen = np.unique(chosen[chosen >= 0])
    selected = np.isin(labels, chosen) & (labels >= 0)
    return Selection(selected.astype(np.float32), selected, chosen)


def from_gaussians(labels: np.ndarray, picked: np.ndarray) -> Selection:
    """The instances of the picked Gaussians ``picked`` [K] (indices).

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        picked: [K] int Gaussian indices, or [N] bool.
    """
    picked = np.asarray(picked)
    if picked.dtype == bool:
        if picked.shape != labels.shape:
            raise UserError(f"the picked mask has {picked.shape[0]} entries, the scene {labels.shape[0]} Gaussians")
        picked = np.flatnonzero(picked)
    picked = picked.astype(np.int64).ravel()
    if picked.size and (picked.min() < 0 or picked.max() >= len(labels)):
        raise UserError(f"Gaussian ids must be in [0, {len(labels) - 1}], got {picked.min()}..{picked.max()}")
    return _select_labels(labels, labels[picked])


@_no_grad
def pixel_weights(proj: Projection, pixels: np.ndarray, backend: str = "auto") -> list[tuple[np.ndarray, np.ndarray]]:
    """Per pixel of ``pixels`` [P, 2] (x, y): the Gaussians that blend into it and their weights
    ``w = alpha T`` there, as (indices [K] int64, weights [K] float32). ``proj`` may be any camera.

    Args:
        pixels: [P, 2] int (x, y).
    """
    import torch

    from .engine import trace

    pixels = np.asarray(pixels, np.int64).reshape(-1, 2)
    bad = (pixels[:, 0] < 0) | (pixels[:, 0] >= proj.width) | (pixels[:, 1] < 0) | (pixels[:, 1] >= proj.height)
    if bad.any():
        x, y = pixels[np.argmax(bad)]
        raise UserError(f"pixel ({x}, {y}) is outside the {proj.width}x{proj.height} view")
    out = []
    for xy in pixels:  # one traced pixel each: its Gaussians and their weights there
        w = trace(proj, torch.ones(1, 1), pixels=torch.from_numpy(xy[None]), backend=backend).weight_sum.numpy()
        hit = np.flatnonzero(w > 0)
        out.append((hit, w[hit].astype(np.float32)))
    return out


# a click computes in numpy while at most this many splats may reach its pixels; beyond, the native
# projection costs less than projecting them all in numpy (gs-core bench query --shell)
NUMPY_CLICK_LIMIT = 400_000


def click_weights(scene, camera, positive: np.ndarray, negative: np.ndarray = (), backend: str = "auto",
                  gaussians=None, proj: Projection | None = None) -> tuple[list, list]:
    """The one way a clicked pixel becomes Gaussians, for ``gs-core query --pixel``, the add-on's server
    and ``gs-core bench clicks``: per pixel of the positive and the negative clicks in ``camera`` on the
    :class:`~gs_core.scene.GaussianScene` ``scene``, the Gaussians that blend into it and their weights
    there, as (indices [K] int64, weights [K] float32): the two arguments :meth:`LabelLevels.from_clicks`
    takes. A 3DGS scene with backend ``auto`` is computed in numpy (:mod:`gs_core.click_rays`, no torch
    to start) unless more than :data:`NUMPY_CLICK_LIMIT` splats may reach the pixels; otherwise (2DGS, a
    named backend) traced by the engine (:func:`pixel_weights`), on ``gaussians`` (the scene's
    :meth:`~gs_core.scene.GaussianScene.to_gaussians`) when the caller has them, on ``proj`` (their
    projection in ``camera``) when the caller has that (the benchmark clicks many pixels of one view).

    Args:
        positive: [P, 2] int (x, y) positive clicks.
        negative: [P', 2] int (x, y) negative clicks.
        gaussians: the scene's engine Gaussians, or None (made here when needed).
        proj: the scene's projection in ``camera``, or None (made here when needed).
    """
    pixels = [np.asarray(p, np.int64).reshape(-1, 2) for p in (positive, negative)]
    if backend == "auto" and scene.kind == "3dgs":
        from . import click_rays

        clicks = [click_rays.pixel_weights(scene, camera, p, limit=NUMPY_CLICK_LIMIT) for p in pixels]
        if not any(c is None for c in clicks):
            return clicks[0], clicks[1]
    if proj is None:
        import torch

        from .engine import project

        with torch.no_grad():
            proj = project(scene.to_gaussians() if gaussians is None else gaussians, camera)
    return pixel_weights(proj, pixels[0], backend=backend), pixel_weights(proj, pixels[1], backend=backend)


def heaviest_label(labels: np.ndarray, gaussians: np.ndarray, weights: np.ndarray) -> int:
    """The label carrying most of the weights ``weights`` [K] of Gaussians ``gaussians`` [K] (-1 none).

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        gaussians: [K] int64 Gaussian indices.
        weights: [K] their weights.
    """
    lab = labels[gaussians]
    has = lab >= 0
    if not has.any():
        return -1
    return int(np.argmax(np.bincount(lab[has], weights[has])))


def pixel_labels(proj: Projection, labels: np.ndarray, pixels: np.ndarray, backend: str = "auto") -> np.ndarray:
    """The label of heaviest blending weight at each pixel ``pixels`` [P, 2] (x, y) -> [P] (-1 none).

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        pixels: [P, 2] int (x, y).
    """
    return np.asarray([heaviest_label(labels, g, w) for g, w in pixel_weights(proj, pixels, backend)], np.int64)


def from_clicks(proj: Projection, labels: np.ndarray, positive: np.ndarray, negative: np.ndarray | None = None,
                backend: str = "auto", means: np.ndarray | None = None, colors: np.ndarray | None = None) -> Selection:
    """The instances under the positive clicks (pixels [P, 2] x, y), at one level ``labels`` [N]: the
    rule of :meth:`LabelLevels.from_clicks` with that one level. A negative click in the instance of a
    positive one splits it in 3D, and a later positive click adds the part of its instance it supports,
    by the Gaussians' centres ``means`` [N, 3] (default: their centres in the camera of ``proj``,
    reconstructed from its projection; those it culls stay out of a split) and, given, their colours
    ``colors``; every positive click adds the splats it points at.

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        positive: [P, 2] int (x, y) positive clicks.
        negative: [P', 2] int (x, y) negative clicks, or None.
        means: [N, 3] the Gaussians' centres, or None.
        colors: [N, 3] the Gaussians' base colours (SH DC), for the split, or None (by position only).
    """
    pos = pixel_weights(proj, positive, backend)
    neg = pixel_weights(proj, negative if negative is not None else np.zeros((0, 2)), backend)
    if means is None and (pos or neg):
        means = camera_means(proj)
    one = LabelLevels(np.array([0.5]), np.asarray(labels)[None])
    return one.from_clicks(0.5, pos, neg, means=means, colors=colors)


def camera_means(proj: Projection) -> np.ndarray:  # -> [N, 3]
    """The Gaussians' centres in the camera frame of ``proj``, from their pixel positions and depths
    (distances between them are those in the world); NaN where the projection culls a Gaussian."""
    cam = proj.camera
    uv = proj.means2d.detach().cpu().numpy().astype(np.float64)
    z = proj.depths.detach().cpu().numpy().astype(np.float64)
    out = np.stack([(uv[:, 0] - cam.cx) * z / cam.fx, (uv[:, 1] - cam.cy) * z / cam.fy, z], 1)
    culled = (proj.radii.detach().cpu().numpy().reshape(len(z), -1) <= 0).all(1) | ~np.isfinite(out).all(1)
    out[culled] = np.nan
    return out


@_no_grad
def mask_weights(proj: Projection, mask: np.ndarray, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Per Gaussian, its traced weight inside ``mask`` [H, W] bool and over the whole view.

    Args:
        mask: [H, W] bool.
    """
    import torch

    from .engine import trace

    lab = torch.from_numpy(np.where(mask, 1, 0).astype(np.int32))
    out = trace(proj, lab, top_k=2, backend=backend)
    inside = np.where(out.labels.numpy() == 1, out.weights.numpy(), 0).sum(1)
    return inside, out.weight_sum.numpy()


def from_mask_weights(labels: np.ndarray, inside: np.ndarray, total: np.ndarray) -> Selection:
    """The instances with more than half their traced weight inside a reference mask (the label of
    most weight inside when none has), as Trace3D queries an image and a mask (Sec. 4.1).

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        inside: [N] traced weight inside the mask (:func:`mask_weights`).
        total: [N] traced weight over the whole view.
    """
    has = labels >= 0
    if not has.any():
        return Selection(np.zeros(len(labels), np.float32), np.zeros(len(labels), bool), np.zeros(0, np.int64))
    n = int(labels.max()) + 1
    w_in = np.bincount(labels[has], inside[has], minlength=n)
    w_all = np.bincount(labels[has], total[has], minlength=n)
    chosen = w_in > QUERY_SHARE * w_all
    if not chosen.any() and w_in.max() > 0:
        chosen[np.argmax(w_in)] = True
    share = np.where(w_all > 0, w_in / np.maximum(w_all, 1e-30), 0.0)
    sel = _select_labels(labels, np.flatnonzero(chosen))
    sel.score = np.where(has, share[np.maximum(labels, 0)], 0.0).astype(np.float32)
    return sel


def from_mask(proj: Projection, labels: np.ndarray, mask: np.ndarray, backend: str = "auto") -> Selection:
    """:func:`from_mask_weights` for ``mask`` [H, W] bool in the view of ``proj``.

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        mask: [H, W] bool.
    """
    return from_mask_weights(labels, *mask_weights(proj, mask, backend))


@_no_grad
def selection_mask(proj: Projection, selected: np.ndarray, min_alpha: float = 0.5, backend: str = "auto") -> np.ndarray:
    """The 2D mask [H, W] bool of a selection: pixels where the selected Gaussians' share of the
    blend is at least ``min_alpha`` (occluders in front hide it, as in the image).

    Args:
        selected: [N] bool (or float in [0, 1]) per Gaussian.
    """
    import torch

    from .engine import render

    out = render(proj, torch.from_numpy(np.asarray(selected, np.float32)), backend=backend)
    return out.features[..., 0].numpy() >= min_alpha


def fit_mask_weights(labels: np.ndarray, inside: np.ndarray, total: np.ndarray) -> tuple[Selection, float]:
    """The set of instances that best covers a reference mask, and its weighted IoU with it.

    Instances are ranked by the share of their traced weight that falls inside the mask; the
    selection is the prefix of that ranking with the largest IoU measured in traced weight
    (``TP = inside weight of the chosen``, ``FP = their weight outside``, ``FN = inside weight of
    the rest``, unlabelled Gaussians included). The share threshold thus adapts to each mask,
    where :func:`from_mask_weights` fixes it at one half: a large object that is half hidden
    behind the mask's edge is kept, a support that the mask only grazes is not.

    Args:
        labels: [N] int64 instance label per Gaussian, -1 = none.
        inside: [N] traced weight inside the mask (:func:`mask_weights`).
        total: [N] traced weight over the whole view.
    """
    n_gauss = len(labels)
    has = labels >= 0
    fn_unlabelled = float(inside[~has].sum())
    if not has.any():
        return Selection(np.zeros(n_gauss, np.float32), np.zeros(n_gauss, bool), np.zeros(0, np.int64)), 0.0
    n = int(labels.max()) + 1
    w_in = np.bincount(labels[has], inside[has], minlength=n)
    w_all = np.bincount(labels[has], total[has], minlength=n)
    share = np.where(w_all > 0, w_in / np.maximum(w_all, 1e-30), 0.0)
    order = np.argsort(-share, kind="stable")
    order = order[w_in[order] > 0]
    if len(order) == 0:
        return Selection(np.zeros(n_gauss, np.float32), np.zeros(n_gauss, bool), np.zeros(0, np.int64)), 0.0
    tp = np.cumsum(w_in[order])
    fp = np.cumsum(w_all[order] - w_in[order])
    fn = w_in.sum() - tp + fn_unlabelled
    iou = tp / np.maximum(tp + fp + fn, 1e-30)
    k = int(np.argmax(iou))  # first maximum: the smallest best set
    sel = _select_labels(labels, order[:k + 1])
    sel.score = np.where(has, share[np.maximum(labels, 0)], 0.0).astype(np.float32)
    return sel, float(iou[k])


def fit_mask_levels(levels: LabelLevels, inside: np.ndarray, total: np.ndarray) -> tuple[Selection, float, float]:
    """:func:`fit_mask_weights` at every granularity level; the level whose best set fits the mask
    best wins (ties: the level nearest 0.5, the objects). Returns (selection, level, weighted IoU).

    This is our form of Trace3D's iterative query-point finding (Sec. 3.5): the paper searches query
    features and thresholds in feature space until the selection matches the reference mask; here
    the search runs over the instance hierarchy that the consistent maps' merge tree provides,
    which every method with per-Gaussian labels has (one level when it has no tree).

    Levels within ``FIT_TOLERANCE`` of the best fit count as ties. One view cannot see hidden
    Gaussians, so a finer level can gain a little by adding an instance whose few visible splats
    lie inside the mask: on the CLI test's tiny room, a wall fragment with a little of its traced
    weight in the view, most of it inside, raised the fit slightly above the object's level and
    took the wall along (docs/benchmarks.md).

    On whole-object masks it can do worse than the half-share rule of :func:`from_mask_weights`, where an
    instance that mixes an object with its support fits the mask's weight better than the object alone
    (measured: docs/benchmarks.md, "Choices made by measurement"). Use it for masks of parts or groups.

    Args:
        inside: [N] traced weight inside the mask (:func:`mask_weights`).
        total: [N] traced weight over the whole view.
    """
    fits = [(float(level), *fit_mask_weights(labels.astype(np.int64), inside, total))
            for level, labels in zip(levels.levels, levels.labels)]
    top = max(iou for _, _, iou in fits)
    level, sel, iou = min((f for f in fits if f[2] >= top - FIT_TOLERANCE), key=lambda f: abs(f[0] - 0.5))
    return sel, level, iou

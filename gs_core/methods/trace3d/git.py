"""Gaussian Instance Tracing (Trace3D Sec. 3.2): per Gaussian and view, its distribution over that
view's instance patches, by reverse rasterization (the engine's label ``trace``).

The per-view step, :func:`trace_view`, is a pure function of (Gaussians, camera, patches) that
returns sparse sums, so views can be traced in any order or on other workers and reduced by
concatenation (:class:`GITStore`). Only Gaussians *seen* in a view (:mod:`gs_core.visibility`)
get entries there: a Gaussian hidden behind a thin surface would otherwise vote for the occluder.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import scipy.sparse as sp
import torch

from ...engine import Projection, project, trace
from ...engine.gaussians import Gaussians
from ...parallel import LOCAL, Executor, Shared, derived, forget
from ...visibility import DEFAULT_VISIBILITY, VisibilityRule
from ...patches import InstancePatches, patch_dtype

if TYPE_CHECKING:
    from ...camera import Camera
    from ...scene import GaussianScene

DEFAULT_TOP_K = 8
MIN_LABELLED_SHARE = 0.5  # a seen Gaussian is labelled in a view when half its weight lands on patches


@dataclass
class ViewGIT:
    """The sparse GIT of one view: ``weights[e]`` = sum of ``w^k`` over the pixels of patch
    ``patches[e]`` that Gaussian ``gaussians[e]`` blends into; only seen Gaussians appear."""

    gaussians: np.ndarray  # [E] int32
    patches: np.ndarray  # [E] int16 (int32 past 32767 patches) local patch id
    weights: np.ndarray  # [E] float32
    seen: np.ndarray  # [S] int32: Gaussians seen in this view (labelled or not)
    total: np.ndarray  # [S] float32: their sum of w^k over every pixel, covered or not
    num_patches: int

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.gaussians, self.patches, self.weights, self.seen, self.total))


@torch.no_grad()
def trace_view(proj: Projection, patches: InstancePatches, *, top_k: int = DEFAULT_TOP_K, power: int = 1,
               visibility: VisibilityRule = DEFAULT_VISIBILITY, backend: str = "auto",
               own: int | None = None) -> ViewGIT:
    """GIT of one view: ``trace`` of its patch map, uncovered pixels traced as one more label so
    the visibility rule sees each Gaussian's whole footprint. ``power`` 1 weighs by ``alpha T``
    (the paper), 2 by its square. The trace returns entries (``sparse``), so the per-view cost
    beyond the kernel is a few passes over them and over [N] sums, not over [N, top_k] arrays.

    With ``own``, only the first ``own`` Gaussians of ``proj`` are the scene's; the rest are
    occluders (the scene around a block: :func:`occluders_in_view`): they hide what lies behind
    them, so a Gaussian they cover is not seen, but get no entries and are never seen themselves."""
    p = patches.num_patches
    labels = torch.from_numpy(np.where(patches.patch_map >= 0, patches.patch_map, p).astype(np.int32, copy=False))
    out = trace(proj, labels, top_k=top_k + 1, power=power, sparse=True, backend=backend)
    sums = out if power == 1 else trace(proj, labels, top_k=1, power=1, sparse=True, backend=backend)
    seen_mask = visibility.of(sums).cpu().numpy()  # [N] bool
    if own is not None:
        seen_mask[own:] = False  # occluders: no entries
    g, lab, w = out.gaussians.cpu().numpy(), out.labels.cpu().numpy(), out.weights.cpu().numpy()  # [E]
    entry = seen_mask[g] & (lab < p)  # the uncovered label only counted in the total
    seen = np.flatnonzero(seen_mask).astype(np.int32)
    return ViewGIT(g[entry], lab[entry].astype(patch_dtype(p)), w[entry].astype(np.float32, copy=False), seen,
                   out.weight_sum.cpu().numpy()[seen].astype(np.float32, copy=False), p)


@dataclass
class GITStore:
    """GIT of all training views of one scene, reduced by concatenation.

    Patch ``j`` of view ``v`` has the global patch index ``offsets[v] + j``.
    """

    num_gaussians: int
    views: list[ViewGIT] = field(default_factory=list)

    def add(self, view: ViewGIT) -> None:
        self.views.append(view)

    @property
    def offsets(self) -> np.ndarray:  # [V + 1] int64
        return np.concatenate([[0], np.cumsum([v.num_patches for v in self.views])]).astype(np.int64)

    @property
    def num_patches(self) -> int:
        return int(sum(v.num_patches for v in self.views))

    @property
    def patch_view(self) -> np.ndarray:  # [P] int64: the view of each global patch
        return np.repeat(np.arange(len(self.views)), [v.num_patches for v in self.views])

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.views)

    @property
    def visible_pairs(self) -> int:
        """Number of (Gaussian, view) pairs where the Gaussian is seen."""
        return sum(len(v.seen) for v in self.views)

    def weights(self, *, normalise: bool = True, labelled_only: bool = True, hard: bool = False,
                rows: np.ndarray | None = None) -> sp.csr_matrix:
        """``[N, P]`` sparse: per Gaussian and global patch, the traced weight, or with
        ``normalise`` the Gaussian's distribution over that view's patches (rows of a view sum to 1).

        ``labelled_only`` drops (Gaussian, view) pairs where less than :data:`MIN_LABELLED_SHARE`
        of the weight lands on patches. ``hard`` keeps only each Gaussian's heaviest patch per view,
        with weight 1. ``rows`` [n] keeps only those Gaussians (in that order).

        Args:
            rows: [n] int64 the Gaussians to keep, in that order, or None for all N.
        """
        offsets = self.offsets
        r, c, d = [], [], []
        for k, v in enumerate(self.views):
            g, w = v.gaussians.astype(np.int64), v.weights.astype(np.float64)
            if normalise or labelled_only:
                total = np.zeros(self.num_gaussians)
                total[v.seen] = v.total
                labelled = np.bincount(g, w, minlength=self.num_gaussians)
                keep = np.ones(len(g), bool)
                if labelled_only:
                    keep = labelled[g] >= MIN_LABELLED_SHARE * total[g]
                if normalise:
                    w = w / np.maximum(labelled[g], 1e-30)
                g, w, pj = g[keep], w[keep], v.patches[keep]
            else:
                pj = v.patches
            if hard:  # the heaviest entry of each Gaussian (entries are grouped by Gaussian)
                order = np.lexsort((-w, g))
                first = order[np.r_[True, g[order][1:] != g[order][:-1]]] if len(g) else order
                g, w, pj = g[first], np.ones(len(first)), pj[first]
            r.append(g)
            c.append(pj.astype(np.int64) + offsets[k])
            d.append(w)
        shape = (self.num_gaussians, self.num_patches)
        m = sp.csr_matrix((np.concatenate(d) if d else np.zeros(0), (np.concatenate(r) if r else np.zeros(0, int),
                           np.concatenate(c) if c else np.zeros(0, int))), shape=shape)
        return m[rows] if rows is not None else m

    def seen_matrix(self) -> sp.csr_matrix:  # [N, V] bool: Gaussian seen in view
        r = np.concatenate([v.seen for v in self.views]).astype(np.int64)
        c = np.repeat(np.arange(len(self.views)), [len(v.seen) for v in self.views])
        return sp.csr_matrix((np.ones(len(r), bool), (r, c)), shape=(self.num_gaussians, len(self.views)))


class ViewCache(Protocol):
    """Where :func:`trace_all` keeps per-view results so an interrupted run resumes."""

    def get(self, scene: GaussianScene, view: int) -> ViewGIT | None: ...
    def put(self, scene: GaussianScene, view: int, git: ViewGIT) -> None: ...


def geometry_only(scene: GaussianScene) -> GaussianScene:
    """The scene without its colours, normals and extra columns: what a worker needs to project and
    trace (a quarter of an SH-degree-3 scene's bytes to send)."""
    from dataclasses import replace

    return replace(scene, sh_rest=scene.sh_rest[:, :0], normals=None, extra={})


CELLS = 64  # occluders are grouped in cubes of 1/CELLS of the scene's widest extent (occluder_cells)


def occluder_cells(others: Gaussians) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``others`` grouped in cubes, each with a sphere that holds its Gaussians' 3-sigma reach, so
    that :func:`occluders_in_view` tests cubes first: (order [M] the Gaussians by cube, starts
    [C + 1] each cube's first place in ``order``, centres [C, 3], radii [C])."""
    m = others.means.detach().cpu().numpy().astype(np.float64)
    if len(m) == 0:
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros((0, 3)), np.zeros(0)
    reach = 3.0 * others.scales.detach().cpu().numpy().max(1).astype(np.float64)
    lo = m.min(0)
    size = max(float((m.max(0) - lo).max()) / CELLS, 1e-9)
    cube = np.minimum(np.floor((m - lo) / size).astype(np.int64), CELLS)
    key = (cube[:, 0] * (CELLS + 1) + cube[:, 1]) * (CELLS + 1) + cube[:, 2]
    order = np.argsort(key, kind="stable")
    k = key[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    centres = (np.minimum.reduceat(m[order], starts) + np.maximum.reduceat(m[order], starts)) / 2
    member = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(k)]))
    radii = np.maximum.reduceat(np.linalg.norm(m[order] - centres[member], axis=1) + reach[order], starts)
    return order, np.r_[starts, len(k)].astype(np.int64), centres, radii


def occluders_in_view(own: Gaussians, others: Gaussians, cam: Camera, cells: tuple | None = None) -> torch.Tensor:
    """The Gaussians of ``others`` that can hide one of ``own`` in ``cam`` (sorted indices [K]
    int64): in front of the camera and nearer than the farthest of ``own`` there, their footprint
    (3 sigma and a pixel) reaching the image box of ``own``'s footprints. The rest change no
    ``own`` Gaussian's transmittance. ``cells`` (:func:`occluder_cells` of ``others``) skips the
    cubes that cannot hold one (a cube's sphere moves on screen by at most ``f R (1 + |x / z|) /
    (z - R)``), with the same result.

    Args:
        own: [N] the Gaussians traced (a block).
        others: [M] the Gaussians around them.
    """
    R = torch.as_tensor(cam.world_to_camera[:3, :3], dtype=own.means.dtype, device=own.means.device)
    t = torch.as_tensor(cam.world_to_camera[:3, 3], dtype=own.means.dtype, device=own.means.device)
    focal = max(float(cam.fx), float(cam.fy))

    def screen(g: Gaussians) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # u, v, z, reach
        pc = g.means @ R.T + t
        z = pc[:, 2]
        safe = torch.where(z > 1e-6, z, torch.ones_like(z))
        return (cam.fx * pc[:, 0] / safe + cam.cx, cam.fy * pc[:, 1] / safe + cam.cy, z,
                3.0 * g.scales.max(1).values * focal / safe + 1.0)

    empty = torch.zeros(0, dtype=torch.int64)
    if len(own) == 0 or len(others) == 0:
        return empty
    u, v, z, r = screen(own)
    inside = (z > 1e-6) & (u + r >= 0) & (u - r < cam.width) & (v + r >= 0) & (v - r < cam.height)
    if not bool(inside.any()):
        return empty
    u0, u1 = max(float((u - r)[inside].min()), 0.0), min(float((u + r)[inside].max()), float(cam.width))
    v0, v1 = max(float((v - r)[inside].min()), 0.0), min(float((v + r)[inside].max()), float(cam.height))
    far = float(z[inside].max())
    rows = None
    if cells is not None:
        order, starts, centres, radii = cells
        Rn, tn = cam.world_to_camera[:3, :3].astype(np.float64), cam.world_to_camera[:3, 3].astype(np.float64)
        cc = centres @ Rn.T + tn
        near = cc[:, 2] - radii
        straddle = near <= 1e-6
        zs = np.where(straddle, 1.0, near)
        zc = np.where(straddle, 1.0, cc[:, 2])
        x, y = cc[:, 0] / zc, cc[:, 1] / zc
        cu, cv = cam.fx * x + cam.cx, cam.fy * y + cam.cy
        du = np.maximum(np.maximum(u0 - cu, cu - u1), 0.0)
        dv = np.maximum(np.maximum(v0 - cv, cv - v1), 0.0)
        keep = straddle | ((near < far) & (du <= focal * radii * (1 + np.abs(x)) / zs + 1.0)
                           & (dv <= focal * radii * (1 + np.abs(y)) / zs + 1.0))
        rows = np.sort(order[np.repeat(keep, np.diff(starts))])
        if len(rows) == 0:
            return empty
        others = others.subset(torch.from_numpy(rows).to(others.means.device))
    ou, ov, oz, reach = screen(others)
    du = torch.clamp(torch.maximum(u0 - ou, ou - u1), min=0)
    dv = torch.clamp(torch.maximum(v0 - ov, ov - v1), min=0)
    keep = (oz > 1e-6) & (oz < far) & (du <= reach) & (dv <= reach)
    found = torch.nonzero(keep).ravel().cpu()
    return found if rows is None else torch.from_numpy(rows)[found]


def _trace_one(item, shared: Shared, config) -> tuple[ViewGIT, float]:
    """One view's GIT (projection and label trace) and the trace's seconds: the per-view step of
    :func:`trace_all`, run here or on a worker. ``shared`` holds the scene, or a pair (a block, the
    scene around it), the second traced as occluders only (:func:`occluders_in_view`)."""
    cam, p = item
    device = config.device
    own = None
    if isinstance(shared.value, tuple):
        gaussians = derived(shared, "gaussians:" + device, lambda v: v[0].to_gaussians(device))
        others = derived(shared, "around:" + device, lambda v: v[1].to_gaussians(device))
        cells = derived(shared, "cells:" + device, lambda v: occluder_cells(others))
        near = others.subset(occluders_in_view(gaussians, others, cam, cells).to(others.means.device))
        own = len(gaussians)
        gaussians = Gaussians(torch.cat([gaussians.means, near.means]), torch.cat([gaussians.quats, near.quats]),
                              torch.cat([gaussians.scales, near.scales]),
                              torch.cat([gaussians.opacities, near.opacities]), gaussians.kind)
    else:
        gaussians = derived(shared, "gaussians:" + device, lambda scene: scene.to_gaussians(device))
    proj = project(gaussians, cam)
    t0 = time.perf_counter()
    git = trace_view(proj, p, top_k=config.top_k, power=config.power, visibility=config.visibility,
                     backend=config.backend, own=own)
    return git, time.perf_counter() - t0


def trace_all(scene: GaussianScene, cameras: list[Camera], patches: list[InstancePatches],
              config, progress: Callable[[int, int], None] | None = None,
              cache: ViewCache | None = None, executor: Executor | None = None,
              occluders: GaussianScene | None = None) -> tuple[GITStore, float]:
    """GIT of every view, streamed: one projection and one label trace per view. ``config`` gives
    ``top_k``, ``power``, ``visibility``, ``backend`` and ``device`` (a
    :class:`~gs_core.methods.trace3d.Trace3DConfig`). ``executor`` runs the views not in ``cache``
    (default: here, one after the other); each is cached as it finishes and the store is reduced in
    view order, so it is the same wherever the views ran. ``occluders`` (the rest of the scene when
    ``scene`` is a block of it) are traced with each view's Gaussians where they can hide them
    (:func:`occluders_in_view`), so what they hide is not seen there; the store holds ``scene``'s
    Gaussians only. Returns the store and the seconds spent in the traces alone."""
    views: list[ViewGIT | None] = [cache.get(scene, k) if cache is not None else None for k in range(len(cameras))]
    todo = [k for k, v in enumerate(views) if v is None]
    done = len(cameras) - len(todo)
    if progress and done:
        progress(done, len(cameras))
    # one Shared (what a process derives is kept for the latest one only): the scene, or a block and around it
    shared = Shared(geometry_only(scene) if occluders is None else (geometry_only(scene), geometry_only(occluders)))
    traced = 0.0
    try:
        for j, (git, seconds) in (executor or LOCAL).map(_trace_one, [(cameras[k], patches[k]) for k in todo],
                                                         shared, config):
            k = todo[j]
            views[k] = git
            traced += seconds
            if cache is not None:
                cache.put(scene, k, git)
            done += 1
            if progress:
                progress(done, len(cameras))
    finally:
        forget(shared)
    store = GITStore(len(scene))
    for git in views:
        store.add(git)
    return store, traced

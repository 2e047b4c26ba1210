"""GIT-guided density control, training-free (Trace3D Sec. 3.4): find the Gaussians that straddle
two instances, split each in two along the boundary, prune the children still ambiguous, and refit
the changed Gaussians' colour and opacity in closed form so the picture does not suffer.

* Ambiguity (Eq. 4): ``As_i = |{v in V_i : max_j W^v_ij < gamma}| / |V_i|`` over the views where the
  Gaussian is seen and labelled, with ``W`` summed per global instance id; ambiguous above ``theta``
  (paper 0.5, released code 0.4).
* Split: the paper samples the children from the parent's density and retrains. Without retraining
  we place them where each instance's share of the parent's weight actually lands: per view, a
  ``trace`` of ``[1, x, y]`` per instance gives the screen centroid of each instance's share; the
  3D offsets solve a least-squares problem over views through the projection's Jacobian (3DGS: in
  3D; 2DGS: in the splat's tangent plane). The children's covariances keep the parent's second
  moment (``Sigma = Sigma_child + sum_a m_a o_a o_a^T``), so together they cover what it covered.
* Refit: Jacobi steps of the linear-inverse solver on the training images (colour, Eq. 24 with
  ``k = 1`` over ``k = 2``) and on the original scene's alpha (opacity), for the changed Gaussians
  only. Children inherit every other column, unknown PLY columns included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import torch

from ...camera import Camera
from ...engine import project, render, trace
from ...metrics import psnr
from ...parallel import Executor, Shared, derived, forget, narrow_ids, ordered, travels
from ...scene import SH_C0, GaussianScene
from ...splat_transform import quat_to_matrix, quats_from_matrices
from .consistency import ConsistentInstances
from .git import MIN_LABELLED_SHARE, GITStore, geometry_only
from ...patches import InstancePatches


@dataclass(frozen=True)
class DensityConfig:
    gamma: float = 0.8  # a view finds a Gaussian ambiguous when its top instance has less than this share
    theta: float = 0.5  # ambiguous when more than this share of its views do (paper 0.5, code 0.4)
    rounds: int = 1  # detect / split / prune rounds
    max_offset: float = 0.9  # a child's offset, in the parent's standard deviations, at most
    min_spread: float = 0.3  # a child's std, as a share of the parent's along that axis, at least
    refit_iterations: int = 4
    refit_damping: float = 0.7
    # the refit (and its PSNR figures) uses at most this many training views, evenly spaced: each pass
    # renders and traces every view it uses, and keeps their projections (memory grows with the views:
    # docs/benchmarks.md); a changed Gaussian is seen by enough of 32 views to fit 4 numbers
    refit_views: int = 32


@dataclass
class DensityReport:
    gaussians_before: int = 0
    ambiguous_before: int = 0
    split: int = 0
    pruned: int = 0
    ambiguous_after: int = 0
    gaussians_after: int = 0
    psnr_train_before: float = float("nan")  # base colours vs the training photos (the refit's views)
    psnr_train_split: float = float("nan")  # after split and prune, before the refit
    psnr_train_after: float = float("nan")
    seconds: dict = field(default_factory=dict)
    # per output Gaussian: the input row it continues (a child: its parent's row), and whether it is a
    # child of a split (retraining carries the survivors' optimiser state by these); not in the JSON
    source_rows: np.ndarray | None = field(default=None, repr=False)  # [N'] int64
    children: np.ndarray | None = field(default=None, repr=False)  # [N'] bool

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("source_rows", "children")}


# ---- ambiguity ---------------------------------------------------------------------------------

def instance_shares(store: GITStore, patch_ids: np.ndarray, k: int):
    """View ``k``'s GIT summed per instance: (gaussian [E], instance [E], weight [E]) and the
    labelled weight per Gaussian [N] (the rows of Eq. 4's ``W^v``).

    Args:
        patch_ids: [P] int global instance id of each global patch.
    """
    v = store.views[k]
    off = store.offsets[k]
    ids = patch_ids[off + v.patches]
    K = int(patch_ids.max()) + 1 if len(patch_ids) else 1
    key = v.gaussians.astype(np.int64) * K + ids
    uniq, inv = np.unique(key, return_inverse=True)
    w = np.bincount(inv.ravel(), v.weights.astype(np.float64))
    g = uniq // K
    labelled = np.bincount(g, w, minlength=store.num_gaussians)
    return g, uniq % K, w, labelled


def ambiguity(store: GITStore, patch_ids: np.ndarray, gamma: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 4: per Gaussian the share of its labelled views whose top instance has less than
    ``gamma`` of its weight, and the number of those views. -> (score [N], views [N]).

    Args:
        patch_ids: [P] int global instance id of each global patch.
    """
    N = store.num_gaussians
    ambiguous_views = np.zeros(N)
    views = np.zeros(N)
    for k, v in enumerate(store.views):
        g, _, w, labelled = instance_shares(store, patch_ids, k)
        top = np.zeros(N)
        np.maximum.at(top, g, w)
        total = np.zeros(N)
        total[v.seen] = v.total
        is_labelled = (labelled > 0) & (labelled >= MIN_LABELLED_SHARE * total)
        views += is_labelled
        ambiguous_views += is_labelled & (top < gamma * labelled)
    return np.where(views > 0, ambiguous_views / np.maximum(views, 1), 0.0), views


def top_two(store: GITStore, patch_ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The two instances of most traced weight over all views for Gaussians ``rows`` [R] -> [R, 2]
    (-1 when there is no second).

    Args:
        patch_ids: [P] int global instance id of each global patch.
        rows: [R] int64 the Gaussians asked about.
    """
    W = store.weights(normalise=False, labelled_only=False, rows=rows)  # [R, P]
    K = int(patch_ids.max()) + 1
    votes = (W @ sp.csr_matrix((np.ones(len(patch_ids)), (np.arange(len(patch_ids)), patch_ids)),
                               shape=(len(patch_ids), K))).tocoo()
    order = np.lexsort((-votes.data, votes.row))
    r, c = votes.row[order], votes.col[order]
    first = np.searchsorted(r, np.arange(len(rows)))
    out = np.full((len(rows), 2), -1, np.int64)
    for slot in range(2):
        at = first + slot
        ok = (at < len(r)) & (r[np.minimum(at, len(r) - 1)] == np.arange(len(rows)))
        out[ok, slot] = c[at[ok]]
    return out


# ---- where each instance's share lands ---------------------------------------------------------

def _projection_jacobians(cam: Camera, means: np.ndarray) -> np.ndarray:  # [R, 3] -> [R, 2, 3]
    """d(pixel) / d(world position) of the pinhole projection at ``means``."""
    R, t = cam.world_to_camera[:3, :3], cam.world_to_camera[:3, 3]
    pc = means @ R.T + t
    z = np.maximum(pc[:, 2], 1e-6)
    J = np.zeros((len(means), 2, 3))
    J[:, 0, 0] = cam.fx / z
    J[:, 0, 2] = -cam.fx * pc[:, 0] / z**2
    J[:, 1, 1] = cam.fy / z
    J[:, 1, 2] = -cam.fy * pc[:, 1] / z**2
    return J @ R


@torch.no_grad()
def _offset_terms(item, shared: Shared, rows: np.ndarray, pair: np.ndarray, backend: str):
    """One view's terms of :func:`instance_offsets`' normal equations (``A`` [R, 2, 3, 3], ``b``
    [R, 2, 3], mass [R, 2]), or None where the view shows neither instance."""
    cam, ids = item
    H, W = ids.shape
    wanted = np.unique(pair[pair >= 0])
    present = wanted[np.isin(wanted, ids)]
    if len(present) == 0:
        return None
    gaussians = derived(shared, "gaussians", lambda scene: scene.to_gaussians())
    means = shared.value.means[rows].astype(np.float64)
    A = np.zeros((len(rows), 2, 3, 3))
    b = np.zeros((len(rows), 2, 3))
    mass = np.zeros((len(rows), 2))
    slot = np.full(int(max(ids.max(), pair.max())) + 2, -1)
    slot[present] = np.arange(len(present))
    ys, xs = np.mgrid[:H, :W].astype(np.float32) + 0.5
    base = np.stack([np.ones_like(xs), xs, ys], -1)  # [H, W, 3]
    values = np.zeros((H, W, len(present) + 1, 3), np.float32)
    values[:, :, 0] = base
    s = np.where(ids >= 0, slot[np.maximum(ids, 0)], -1)
    yy, xx = np.nonzero(s >= 0)
    values[yy, xx, s[yy, xx] + 1] = base[yy, xx]
    proj = project(gaussians, cam)
    out = trace(proj, torch.from_numpy(values.reshape(H, W, -1)), backend=backend).weighted_sum.numpy()
    acc = out[rows].reshape(len(rows), len(present) + 1, 3).astype(np.float64)
    whole = acc[:, 0]
    seen = whole[:, 0] > 1e-8
    centre = whole[:, 1:] / np.maximum(whole[:, :1], 1e-12)  # where the whole footprint lands
    J = _projection_jacobians(cam, means)
    JtJ = np.einsum("rki,rkj->rij", J, J)
    for c in range(2):
        sl = np.where(pair[:, c] >= 0, slot[np.maximum(pair[:, c], 0)], -1)
        has = seen & (sl >= 0)
        part = np.zeros((len(rows), 3))
        part[has] = acc[has, sl[has] + 1]
        m = part[:, 0]
        ok = has & (m > 1e-8)
        delta = part[:, 1:] / np.maximum(m[:, None], 1e-12) - centre  # [R, 2] pixels
        A[ok, c] = m[ok, None, None] * JtJ[ok]
        b[ok, c] = m[ok, None] * np.einsum("rki,rk->ri", J[ok], delta[ok])
        mass[ok, c] = m[ok]
    return A, b, mass


def instance_offsets(scene: GaussianScene, cameras: list[Camera], view_maps: list[np.ndarray],
                     rows: np.ndarray, pair: np.ndarray, backend: str = "auto",
                     executor: Executor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For Gaussians ``rows`` [R] and their two instances ``pair`` [R, 2]: the world offset from the
    Gaussian's mean to the centroid of each instance's share of its weight, and the share itself.

    Per view, one dense ``trace`` of ``[1, x, y]`` for every pixel and per wanted instance gives
    screen centroids; offsets solve ``min_d sum_v m_v |J_v d - delta_v|^2`` (3DGS) or the same in
    the tangent plane (2DGS). The views' terms are summed in view order (``executor`` runs them).
    -> (offsets [R, 2, 3], masses [R, 2]).

    Args:
        view_maps: [V] of [H, W] int instance id per pixel, -1 = none, one per camera.
        rows: [R] int64 the Gaussians to split.
        pair: [R, 2] int64 the two instances of each (:func:`top_two`).
    """
    A = np.zeros((len(rows), 2, 3, 3))
    b = np.zeros((len(rows), 2, 3))
    mass = np.zeros((len(rows), 2))
    shared = Shared(geometry_only(scene))
    try:
        send = travels(executor)  # a narrower copy of each view map only to send it, made as it goes
        items = ((cam, narrow_ids(m) if send else m) for cam, m in zip(cameras, view_maps))
        for terms in ordered(executor, _offset_terms, items, shared, rows, pair, backend):
            if terms is not None:
                A += terms[0]
                b += terms[1]
                mass += terms[2]
    finally:
        forget(shared)
    quats = quat_to_matrix(scene.quats[rows])
    offsets = np.zeros((len(rows), 2, 3))
    for c in range(2):
        if scene.kind == "2dgs":  # in the tangent plane spanned by the first two local axes
            T = quats[:, :, :2]  # [R, 3, 2]
            At = np.einsum("rai,rab,rbj->rij", T, A[:, c], T)
            bt = np.einsum("rai,ra->ri", T, b[:, c])
            ridge = 1e-9 + 1e-6 * np.trace(At, axis1=1, axis2=2)
            u = np.linalg.solve(At + ridge[:, None, None] * np.eye(2), bt[..., None])[..., 0]
            offsets[:, c] = np.einsum("rai,ri->ra", T, u)
        else:
            ridge = 1e-9 + 1e-6 * np.trace(A[:, c], axis1=1, axis2=2)
            offsets[:, c] = np.linalg.solve(A[:, c] + ridge[:, None, None] * np.eye(3), b[:, c][..., None])[..., 0]
    return offsets, mass


def split_gaussians(scene: GaussianScene, rows: np.ndarray, offsets: np.ndarray, masses: np.ndarray,
                    config: DensityConfig = DensityConfig()) -> GaussianScene:
    """Replace Gaussians ``rows`` [R] by two children each, appended at the end in the order
    (row 0 child a, row 0 child b, row 1 child a, ...). ``offsets`` [R, 2, 3] world offsets of the
    children from the parent's mean, ``masses`` [R, 2] their shares (module docstring).

    The children's means are the parent's plus the centred, capped offsets; their covariances are the
    parent's minus the between-children second moment, floored at ``min_spread``; every other column
    is the parent's.

    Args:
        rows: [R] int64 the Gaussians to split.
        offsets: [R, 2, 3] world offsets of the two children from the parent's mean.
        masses: [R, 2] each child's share of the parent's weight.
    """
    rows = np.asarray(rows, np.int64)
    R = quat_to_matrix(scene.quats[rows])  # [R, 3, 3] local -> world
    flat = scene.kind == "2dgs"
    s = np.exp(scene.log_scales[rows].astype(np.float64))
    if flat:
        s = np.concatenate([s, np.zeros((len(rows), 1))], 1)
    m = masses / np.maximum(masses.sum(1, keepdims=True), 1e-12)
    m = np.where(masses.sum(1, keepdims=True) > 0, m, 0.5)
    local = np.einsum("rji,rcj->rci", R, offsets)  # [R, 2, 3] in the parent's frame
    scaled = local / np.where(s > 0, s, np.inf)[:, None, :]  # in standard deviations (normal axis 0)
    scaled -= np.einsum("rc,rci->ri", m, scaled)[:, None, :]  # children's mixture mean = parent's mean
    norm = np.linalg.norm(scaled, axis=2, keepdims=True)
    scaled *= np.minimum(1.0, config.max_offset / np.maximum(norm, 1e-12))
    between = np.einsum("rc,rci,rcj->rij", m, scaled, scaled)
    dims = 2 if flat else 3
    cov = np.eye(dims)[None] - between[:, :dims, :dims]  # child covariance in parent-std units
    lam, vec = np.linalg.eigh(cov)
    lam = np.maximum(lam, config.min_spread**2)
    vec = vec * np.where(np.linalg.det(vec) < 0, -1.0, 1.0)[:, None, None]  # proper rotation
    # back to physical units: Sigma = S V diag(lam) V^T S; re-diagonalise in the parent's frame
    S = s[:, :dims]
    phys = S[:, :, None] * np.einsum("rij,rj,rkj->rik", vec, lam, vec) * S[:, None, :]
    lam2, vec2 = np.linalg.eigh(phys)
    vec2[:, :, -1] *= np.where(np.linalg.det(vec2) < 0, -1.0, 1.0)[:, None]  # proper (2x2: -V keeps det)
    local_rot = np.tile(np.eye(3), (len(rows), 1, 1))
    local_rot[:, :dims, :dims] = vec2
    child_rot = R @ local_rot
    child_scales = np.sqrt(np.maximum(lam2, 1e-20))  # [R, dims]
    child_means = scene.means[rows][:, None, :] + np.einsum("rij,rcj->rci", R, scaled * s[:, None, :])
    parents = np.repeat(rows, 2)
    children = scene.subset(parents)
    children = replace(children, means=child_means.reshape(-1, 3).astype(scene.means.dtype),
                       quats=np.repeat(quats_from_matrices(child_rot), 2, axis=0).astype(scene.quats.dtype),
                       log_scales=np.repeat(np.log(child_scales), 2, axis=0).astype(scene.log_scales.dtype))
    keep = np.ones(len(scene), bool)
    keep[rows] = False
    return scene.subset(keep).concat(children)


# ---- closed-form refit -------------------------------------------------------------------------

@torch.no_grad()
def render_psnr(projections: list, colors: torch.Tensor, images: list[np.ndarray], backend: str = "auto") -> float:
    """Mean PSNR of ``colors`` [N, 3] rendered in ``projections`` against ``images`` [H, W, 3].

    Args:
        colors: [N, 3] per-Gaussian colours.
        images: [V] of [H, W, 3] float photos in [0, 1], one per projection.
    """
    return float(np.mean([psnr(render(p, colors, backend=backend).features.numpy(), img)
                          for p, img in zip(projections, images)]))


def train_psnr(scene: GaussianScene, cameras: list[Camera], images: list[np.ndarray], backend: str = "auto") -> float:
    """Mean PSNR of the scene's base-colour renders against ``images``.

    Args:
        images: [V] of [H, W, 3] float photos in [0, 1], one per camera.
    """
    gaussians = scene.to_gaussians()
    return render_psnr([project(gaussians, cam) for cam in cameras],
                       torch.as_tensor(scene.base_colors, dtype=torch.float32), images, backend)


@torch.no_grad()
def _residual_one(k: int, shared: Shared, colors: torch.Tensor, opac: torch.Tensor, backend: str):
    """View ``k``'s share of one refit pass: squared error against its photo, and its Jacobi
    numerators and denominators on the Gaussians where they are not zero (those the view blends):
    ``(sse, rows [R] int64, num [R, 4], den [R])``, so a worker sends back the view's Gaussians, not
    all N. ``shared`` holds (scene, cameras, photos, target alphas)."""
    scene, cameras, images, target_alpha = shared.value
    gaussians = derived(shared, "gaussians", lambda v: v[0].to_gaussians())
    proj = derived(shared, f"projection:{k}", lambda v: project(gaussians, cameras[k]))  # kept across passes
    p = proj.with_opacities(opac)
    out = render(p, colors, backend=backend)
    rgb_err = torch.from_numpy(images[k]).float() - out.features
    resid = torch.cat([rgb_err, (torch.from_numpy(target_alpha[k]).float() - out.alpha)[..., None]], -1)
    num = trace(p, resid, backend=backend).weighted_sum
    den = trace(p, torch.zeros(p.height, p.width, 1), power=2, backend=backend).weight_sum
    rows = torch.nonzero((num != 0).any(dim=1) | (den != 0)).squeeze(1)
    return float((rgb_err**2).sum()), rows, num[rows], den[rows]


@torch.no_grad()
def refit(scene: GaussianScene, changed: np.ndarray, cameras: list[Camera], images: list[np.ndarray],
          target_alpha: list[np.ndarray], config: DensityConfig = DensityConfig(), backend: str = "auto",
          executor: Executor | None = None) -> GaussianScene:
    """Jacobi steps of the linear-inverse solver for the ``changed`` [N] bool Gaussians only:
    colour ``c += damping * sum w (I - R) / sum w^2`` against ``images``; opacity
    ``o += damping * o * sum w (A* - A) / sum w^2`` against ``target_alpha`` (first-order in ``o``).
    Each pass's views run on ``executor`` and are summed in view order.

    Args:
        changed: [N] bool the Gaussians to refit.
        images: [V] of [H, W, 3] float photos in [0, 1], one per camera.
        target_alpha: [V] of [H, W] the original scene's alpha, one per camera.
    """
    gaussians = scene.to_gaussians()
    colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
    opac = gaussians.opacities.clone()
    sel = torch.from_numpy(changed)
    shared = Shared((geometry_only(scene), cameras, images, target_alpha))

    def residual_pass(colors: torch.Tensor, opac: torch.Tensor):
        """Squared error against the photos, and the Jacobi numerators / denominators."""
        sse, num, den = 0.0, torch.zeros(len(scene), 4), torch.zeros(len(scene))
        for view_sse, rows, view_num, view_den in ordered(executor, _residual_one, list(range(len(cameras))),
                                                          shared, colors, opac, backend):
            sse += view_sse  # elsewhere the view's terms are zeros: adding them would change no sum
            num[rows] += view_num
            den[rows] += view_den
        return sse, num, den

    damping = config.refit_damping
    best = (colors.clone(), opac.clone(), *residual_pass(colors, opac))
    for _ in range(config.refit_iterations):
        colors, opac, _, num, den = (x.clone() if torch.is_tensor(x) else x for x in best)
        ok = sel & (den > 1e-10)
        step = damping * num[ok] / den[ok, None]
        colors[ok] = (colors[ok] + step[:, :3]).clamp(0, 1)
        opac[ok] = (opac[ok] * (1 + step[:, 3])).clamp(0.01, 0.99)
        trial = residual_pass(colors, opac)
        if trial[0] < best[2]:  # monotone: a step that does not lower the photometric error is undone
            best = (colors, opac, *trial)
        else:
            damping *= 0.5
    forget(shared)
    colors, opac = best[0], best[1]
    c = colors.numpy().astype(np.float64)
    dc = np.where(changed[:, None], (c - 0.5) / SH_C0, scene.sh_dc)
    logits = np.where(changed, np.log(opac.numpy() / (1 - opac.numpy())), scene.opacity_logits)
    return replace(scene, sh_dc=dc.astype(scene.sh_dc.dtype), opacity_logits=logits.astype(scene.opacity_logits.dtype))


# ---- the loop ----------------------------------------------------------------------------------

def density_control(scene: GaussianScene, cameras: list[Camera], instances: ConsistentInstances,
                    patches: list[InstancePatches], config: DensityConfig = DensityConfig(), *,
                    images: Callable[[int], np.ndarray] | None = None, trace_config=None,
                    backend: str = "auto", executor: Executor | None = None) -> tuple[GaussianScene, DensityReport, GITStore]:
    """Detect ambiguous Gaussians, split them, re-trace, prune the children still ambiguous, refit.
    Returns the refined scene, the report and the refined scene's GIT (its last trace, reused).

    ``instances`` gives the global id of every patch (consistent maps, or per-view ids for the
    ablation); the ids are kept across rounds (patches do not change, only the Gaussians).
    ``trace_config`` is the :class:`~gs_core.methods.trace3d.Trace3DConfig` used to re-trace.
    ``executor`` runs the per-view steps (traces, offsets, refit passes); each is reduced in view order.

    Args:
        images: [H, W, 3] float in [0, 1], ``images(k)`` the photo of view k; None skips the refit.
    """
    from .git import trace_all

    # the re-traces run where trace_config says (its device); offsets and the refit run on CPU tensors,
    # where a CUDA-only backend cannot: there it becomes auto
    backend = "auto" if backend == "gsplat" else backend
    report = DensityReport(gaussians_before=len(scene))
    t0 = time.perf_counter()
    patch_ids = instances.patch_ids
    view_maps = [instances.view_map(k, p.patch_map) for k, p in enumerate(patches)]
    fit_views = np.unique(np.linspace(0, len(cameras) - 1, min(len(cameras), config.refit_views)).round().astype(int))
    fit_cameras = [cameras[k] for k in fit_views]
    photos = [images(int(k)) for k in fit_views] if images is not None else None
    original = scene
    store = instances.store
    changed = np.zeros(len(scene), bool)  # the children (of any round)
    source = np.arange(len(scene))  # the input row each Gaussian continues
    for rnd in range(config.rounds):
        score, views = ambiguity(store, patch_ids, config.gamma)
        amb = np.flatnonzero((score > config.theta) & (views > 0))
        if rnd == 0:
            report.ambiguous_before = len(amb)
        if len(amb) == 0:
            break
        pair = top_two(store, patch_ids, amb)
        offsets, masses = instance_offsets(scene, cameras, view_maps, amb, pair, backend, executor)
        n_old = len(scene) - len(amb)
        scene = split_gaussians(scene, amb, offsets, masses, config)
        changed = np.concatenate([np.delete(changed, amb), np.ones(2 * len(amb), bool)])
        source = np.concatenate([np.delete(source, amb), np.repeat(source[amb], 2)])
        report.split += len(amb)
        store, _ = trace_all(scene, cameras, patches, trace_config, executor=executor)
        score, views = ambiguity(store, patch_ids, config.gamma)
        children = np.arange(n_old, len(scene))
        drop = children[(score[children] > config.theta) & (views[children] > 0)]
        keep = np.ones(len(scene), bool)
        keep[drop] = False
        scene = scene.subset(keep)
        changed, source = changed[keep], source[keep]
        report.pruned += len(drop)
        if rnd + 1 < config.rounds:
            store, _ = trace_all(scene, cameras, patches, trace_config, executor=executor)
    report.seconds["split_prune"] = time.perf_counter() - t0
    if photos is not None and report.split:
        t = time.perf_counter()
        target_alpha = _alphas(original, fit_cameras, backend)
        report.psnr_train_before = train_psnr(original, fit_cameras, photos, backend)
        report.psnr_train_split = train_psnr(scene, fit_cameras, photos, backend)
        scene = refit(scene, changed, fit_cameras, photos, target_alpha, config, backend, executor)
        report.psnr_train_after = train_psnr(scene, fit_cameras, photos, backend)
        report.seconds["refit"] = time.perf_counter() - t
    report.gaussians_after = len(scene)
    report.source_rows, report.children = source, changed
    if report.split:  # the refined scene traced once: for the report here and for the caller's association
        store, _ = trace_all(scene, cameras, patches, trace_config, executor=executor)
        score, views = ambiguity(store, patch_ids, config.gamma)
        report.ambiguous_after = int(((score > config.theta) & (views > 0)).sum())
    return scene, report, store


@torch.no_grad()
def _alphas(scene: GaussianScene, cameras: list[Camera], backend: str) -> list[np.ndarray]:
    gaussians = scene.to_gaussians()
    ones = torch.ones(len(scene), 1)
    return [render(project(gaussians, cam), ones, backend=backend).alpha.numpy() for cam in cameras]

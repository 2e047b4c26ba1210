"""IQGS training on sampled pixels (Eq. 15) and inference (per-Gaussian labels, masks in any view).

A step takes one training view at random and ``pixels_per_step`` pixels of it, uniformly (the mask
losses are means over pixels, so a uniform sample estimates them without bias, as MaskFormer's
point sampling does). It renders the attributes there (``render(..., pixels=xy)``, whose backward
is the engine's ``trace``), enriches the queries over those pixels' features, matches queries to the
view's masks (:mod:`.matching`) and minimises

    L = l_mask L_focal + l_dice L_dice + l_reg L_reg3D + l_geom L_consist        (Eq. 15)

with the paper's weights 20, 1, 1, 1 (Tab. 4). Not in the paper (which has no class head and does
not say what unmatched queries learn): every query left unmatched in a step gets the focal loss
against the empty mask, weighted ``unmatched_weight``, so queries of objects absent from the view,
and queries of no object at all, stay off. The consistency loss (Eq. 14) is taken over the matched
queries (it renders one channel per query, and unmatched queries are already held at zero).

Inference: a query is *active* if it has an id (ID matching) or was matched in the last fifth of
training (Hungarian). A Gaussian's label is the active query of largest mask probability, averaged
over the enriched queries of every training view (Eq. 6 with each view's ``Q``), when that
probability reaches ``score_threshold``; Gaussians no training pixel ever reached get -1. A view's
2D labels (Eq. 7) use that view's own enriched queries. The paper gives no rule for which queries
are instances (it has no class head); ``min_overlap`` adds Mask2Former's overlap test
(:func:`dominant_queries`), which under Hungarian matching drops the queries that swap objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ...engine import Projection, render
from .losses import consistency_loss, dice_loss, focal_loss, knn_regulariser
from .matching import hungarian_matching, id_matching
from .model import IQGSModel, mask_logits

MATCHINGS = ("id", "hungarian")


@dataclass
class TrainConfig:
    matching: str = "id"  # "id" (IQGS, Eq. 8) | "hungarian" (IQGS-H, Eq. 9-10)
    steps: int | None = None  # None: ``epochs`` passes over the views' pixels (paper: 30k steps on a GPU)
    epochs: float = 5.0  # CPU budget: sampled pixels / all training pixels, within [min_steps, max_steps]
    min_steps: int = 200  # Hungarian matching needs them on tiny scenes (tests/iqgs/test_train.py)
    max_steps: int = 600
    pixels_per_step: int = 4096
    memory_pixels: int = 1024  # of those, the keys/values of the queries' cross-attention (Eq. 5)
    unmatched_pixels: int = 1024  # of those, where unmatched queries are held at the empty mask
    lr_attributes: float = 1e-2  # Adam on the per-Gaussian attributes
    lr_head: float = 1e-2  # Adam on P, Q' and the decoder (paper: 5e-4 over 30k GPU steps)
    w_mask: float = 20.0  # lambda_mask (focal), Eq. 15
    w_dice: float = 1.0  # lambda_dice
    w_reg: float = 1.0  # lambda_reg (3D kNN regulariser)
    w_geom: float = 1.0  # lambda_geom (2D-3D consistency)
    unmatched_weight: float = 1.0  # focal towards the empty mask for unmatched queries (ours, see above)
    knn: int = 8  # neighbours per Gaussian in Eq. 13
    reg_samples: int = 4096  # Gaussians per step in Eq. 13
    score_threshold: float = 0.5  # inference: least mask probability that labels a Gaussian / pixel
    min_overlap: float | None = None  # inference: keep only queries winning this share of their own 3D
    # mask (:func:`dominant_queries`); None keeps every active query
    threads: int | None = 1  # torch threads while training (restored after); None: leave as is. Its many small
    # ops ran several times slower with 2 threads than with 1 on a shared machine (docs/benchmarks.md)
    train_head: bool = True  # False: only the attributes learn (a head carried over from another scene)
    seed: int = 0
    backend: str = "auto"

    def num_steps(self, pixels: int) -> int:
        """Steps for views of ``pixels`` pixels in all."""
        if self.steps is not None:
            return self.steps
        return int(np.clip(np.ceil(self.epochs * pixels / self.pixels_per_step), self.min_steps, self.max_steps))

    def __post_init__(self):
        if self.matching not in MATCHINGS:
            raise ValueError(f"matching must be one of {MATCHINGS}, got {self.matching!r}")


@dataclass
class TrainView:
    proj: Projection
    targets: np.ndarray  # [H, W] int64 mask id per pixel, -1 = none (global ids for "id", per view for "hungarian")


@dataclass
class TrainResult:
    active: np.ndarray  # [Nq] bool: queries used at inference
    trained: np.ndarray  # [N] bool: Gaussians some sampled pixel reached
    losses: dict[str, list[float]] = field(default_factory=dict)  # term -> per step
    match_counts: np.ndarray | None = None  # [Nq] steps in which each query was matched
    seconds: float = 0.0


def _targets(lm: Tensor, idx: Tensor) -> tuple[np.ndarray, Tensor]:  # lm [H*W], idx [P] -> ids [M], [M, P]
    sampled = lm[idx]
    ids = torch.unique(sampled[sampled >= 0])
    return ids.numpy(), (sampled[None, :] == ids[:, None]).float()


def train_iqgs(model: IQGSModel, views: list[TrainView], neighbours: Tensor,  # [N, k] kNN of each Gaussian
               config: TrainConfig = TrainConfig(), query_ids: np.ndarray | None = None,  # [Nq] for "id"
               progress: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train ``model`` on ``views`` (Eq. 15). ``progress(done, total)`` is called every 25 steps;
    Ctrl-C (KeyboardInterrupt) stops it between steps like any other Python work.

    Args:
        neighbours: [N, k] int kNN of each Gaussian (:func:`knn_neighbours`).
        query_ids: [Nq] int64 global id of each query (ID matching), or None (Hungarian matching).
    """
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _train(model, views, neighbours, config, query_ids, progress)
    finally:
        torch.set_num_threads(threads)


def _train(model, views, neighbours, config, query_ids, progress) -> TrainResult:
    t0 = time.perf_counter()
    if not views:
        raise ValueError("no views to train on")
    if config.matching == "id" and query_ids is None:
        raise ValueError("ID matching needs query_ids (query -> global id)")
    nq, n = model.config.num_queries, model.attributes.shape[0]
    gen = torch.Generator().manual_seed(config.seed)
    groups = [{"params": [model.attributes], "lr": config.lr_attributes}]
    if config.train_head:
        groups.append({"params": list(model.head.parameters()), "lr": config.lr_head})
    else:
        model.head.requires_grad_(False)
    opt = torch.optim.Adam(groups, fused=True)  # one kernel per group: 4x less than the default loop on a CPU
    pools = [(v.proj, torch.as_tensor(np.asarray(v.targets)).long().reshape(-1)) for v in views]
    for (proj, lm), v in zip(pools, views):
        if lm.numel() != proj.width * proj.height:
            raise ValueError(f"target map is {np.asarray(v.targets).shape}, view is {(proj.height, proj.width)}")
    losses: dict[str, list[float]] = {k: [] for k in ("total", "focal", "dice", "unmatched", "reg", "consist")}
    counts = np.zeros(nq, np.int64)
    late = np.zeros(nq, bool)
    trained = torch.zeros(n, dtype=torch.bool)
    steps = config.num_steps(sum(p.width * p.height for p, _ in pools))
    for step in range(steps):
        proj, lm = pools[int(torch.randint(len(pools), (1,), generator=gen))]
        hw = proj.width * proj.height
        idx = torch.randperm(hw, generator=gen)[:min(config.pixels_per_step, hw)]
        xy = torch.stack([idx % proj.width, idx // proj.width], dim=1)
        f2d, _ = model.features_2d(proj, xy, backend=config.backend)  # [P, D]
        q = model.queries(f2d[:config.memory_pixels])  # [Nq, D]; the sample is random, so its head is too
        mask_ids, target = _targets(lm, idx)
        if config.matching == "id":
            qi, mi = id_matching(query_ids, mask_ids)
        else:
            with torch.no_grad():
                qi, mi = hungarian_matching(mask_logits(q, f2d), target, config.w_mask, config.w_dice)
        counts[qi] += 1
        if step >= 0.8 * steps:
            late[qi] = True
        k = max(len(qi), 1)
        qi_t, mi_t = torch.from_numpy(qi), torch.from_numpy(mi)
        # logits only where a loss reads them (matched queries: all P pixels; the rest: the first
        # unmatched_pixels): an [Nq, P] logit map in the graph cost a zero-filled [Nq, P] gradient per use
        s2d = mask_logits(q[qi_t], f2d)  # [K, P]
        l_focal = focal_loss(s2d, target[mi_t]).sum() / k
        l_dice = dice_loss(s2d, target[mi_t]).sum() / k
        rest = torch.ones(nq, dtype=torch.bool)
        rest[qi_t] = False
        if rest.any() and config.unmatched_weight:
            off = mask_logits(q[rest], f2d[:config.unmatched_pixels])  # [Nq-K, unmatched_pixels]
            l_empty = focal_loss(off, torch.zeros_like(off)).mean()
        else:
            l_empty = f2d.sum() * 0.0
        f3d = model.features_3d()  # [N, D]
        sample = torch.randint(n, (min(config.reg_samples, n),), generator=gen)
        l_reg = knn_regulariser(f3d, neighbours, sample) if config.w_reg else f3d.sum() * 0.0
        if config.w_geom and len(qi):
            p3d = torch.sigmoid(mask_logits(q[qi_t], f3d))  # [K, N]
            rendered = render(proj, p3d.T, pixels=xy, backend=config.backend).features  # [P, K]
            l_geom = consistency_loss(rendered, torch.sigmoid(s2d).T)
        else:
            l_geom = f2d.sum() * 0.0
        loss = (config.w_mask * (l_focal + config.unmatched_weight * l_empty) + config.w_dice * l_dice
                + config.w_reg * l_reg + config.w_geom * l_geom)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        trained |= model.attributes.grad.abs().sum(dim=1) > 0
        opt.step()
        for name, value in (("total", loss), ("focal", l_focal), ("dice", l_dice), ("unmatched", l_empty),
                            ("reg", l_reg), ("consist", l_geom)):
            losses[name].append(float(value.detach()))
        if progress and ((step + 1) % 25 == 0 or step + 1 == steps):
            progress(step + 1, steps)
    if not config.train_head:
        model.head.requires_grad_(True)
    active = (query_ids >= 0) & (counts > 0) if config.matching == "id" else late
    return TrainResult(active, trained.numpy(), losses, counts, time.perf_counter() - t0)


# ---- inference -------------------------------------------------------------------------------------

@torch.no_grad()
def view_probabilities(model: IQGSModel, proj: Projection, active: np.ndarray,  # [Nq] bool
                       backend: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """A whole view decoded: (2D mask probabilities [A, H, W] of the active queries, alpha [H, W],
    the view's enriched queries [Nq, D]).

    Args:
        active: [Nq] bool the queries to decode (A of them).
    """
    f2d, alpha = model.features_2d(proj, backend=backend)
    q = model.queries(f2d)
    act = torch.from_numpy(np.asarray(active, bool))
    probs = torch.sigmoid(mask_logits(q[act], f2d)).reshape(-1, proj.height, proj.width)
    return probs, alpha.reshape(proj.height, proj.width), q


def _pixel_labels(probs: Tensor, alpha: Tensor, ids: np.ndarray, score_threshold: float,  # [A, H, W], [H, W]
                  min_alpha: float) -> np.ndarray:  # -> [H, W] int64
    best, arg = probs.max(dim=0)
    out = torch.from_numpy(ids)[arg]
    out[(best < score_threshold) | (alpha < min_alpha)] = -1
    return out.numpy()


@torch.no_grad()
def view_labels(model: IQGSModel, proj: Projection, active: np.ndarray, score_threshold: float = 0.5,
                min_alpha: float = 0.5, backend: str = "auto") -> np.ndarray:  # -> [H, W] int64 query, -1 none
    """2D instance labels of any view (Eq. 7): per pixel the active query of largest probability,
    -1 below ``score_threshold`` or where the scene's alpha is below ``min_alpha``.

    Args:
        active: [Nq] bool the queries that may label a pixel.
    """
    ids = np.flatnonzero(active)
    if len(ids) == 0:
        return np.full((proj.height, proj.width), -1, np.int64)
    probs, alpha, _ = view_probabilities(model, proj, active, backend)
    return _pixel_labels(probs, alpha, ids, score_threshold, min_alpha)


@torch.no_grad()
def gaussian_labels(model: IQGSModel, projections: list[Projection], active: np.ndarray,
                    trained: np.ndarray | None = None, score_threshold: float = 0.5,
                    backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:  # -> labels [N] int64, score [N]
    """3D instance labels (Eq. 6): each Gaussian's active query of largest mask probability averaged
    over the views' enriched queries; -1 below ``score_threshold`` and for untrained Gaussians.

    Args:
        active: [Nq] bool the queries that may label a Gaussian.
        trained: [N] bool Gaussians some sampled pixel reached, or None for all.
    """
    labels, scores, _, _ = decode(model, projections, active, trained, score_threshold, backend=backend,
                                  view_maps=False)
    return labels, scores


@torch.no_grad()
def dominant_queries(prob: Tensor, score_threshold: float = 0.5, min_overlap: float = 0.5,  # prob [A, N]
                     rounds: int = 10) -> Tensor:  # -> [A] bool
    """The queries that own their masks: a query is kept when it wins (argmax) at least ``min_overlap``
    of the Gaussians where its own probability reaches ``score_threshold``; the others are dropped and
    the test repeated on the rest (at most ``rounds`` times). Mask2Former's panoptic inference drops
    segments by this overlap test (there at 0.8, once, after a class-score filter that IQGS has no head
    for); here it removes the duplicate and object-swapping queries Hungarian matching leaves.

    Args:
        prob: [A, N] mask probability of each active query on each Gaussian.
    """
    keep = torch.ones(prob.shape[0], dtype=torch.bool)
    for _ in range(rounds):
        idx = torch.nonzero(keep)[:, 0]
        if len(idx) == 0:
            break
        p = prob[idx]
        best, win = p.max(dim=0)
        own = (p >= score_threshold).sum(1)
        won = torch.bincount(win[best >= score_threshold], minlength=len(idx))
        ok = (own > 0) & (won >= min_overlap * own)
        if ok.all():
            break
        keep[idx[~ok]] = False
    return keep


@torch.no_grad()
def decode(model: IQGSModel, projections: list[Projection], active: np.ndarray,  # [Nq] bool
           trained: np.ndarray | None = None, score_threshold: float = 0.5, min_alpha: float = 0.5,
           backend: str = "auto", view_maps: bool = True, min_overlap: float | None = None,
           ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], np.ndarray]:
    """:func:`gaussian_labels` and (``view_maps``) :func:`view_labels` of every view in one pass: each
    view is rendered and its queries enriched once for both. ``min_overlap`` keeps only the
    :func:`dominant_queries` (on the trained Gaussians). Returns (labels [N], scores [N], maps, the
    queries used [Nq] bool).

    Args:
        active: [Nq] bool the queries that may label.
        trained: [N] bool Gaussians some sampled pixel reached, or None for all.
    """
    active = np.asarray(active, bool).copy()
    ids = np.flatnonzero(active)
    n = model.attributes.shape[0]
    if len(ids) == 0 or not projections:
        return (np.full(n, -1, np.int64), np.zeros(n, np.float32),
                [np.full((p.height, p.width), -1, np.int64) for p in projections] if view_maps else [], active)
    f3d = model.features_3d()
    total = torch.zeros(len(ids), n)
    views = []
    for proj in projections:
        f2d, alpha = model.features_2d(proj, backend=backend)
        q = model.queries(f2d)
        total += torch.sigmoid(mask_logits(q[torch.from_numpy(ids)], f3d))
        if view_maps:
            views.append((f2d, alpha, q))
    prob = total / len(projections)  # [A, N]
    if min_overlap is not None:
        seen = torch.ones(n, dtype=torch.bool) if trained is None else torch.from_numpy(np.asarray(trained, bool))
        keep = dominant_queries(prob[:, seen], score_threshold, min_overlap).numpy()
        active[ids[~keep]] = False
        ids, prob = ids[keep], prob[torch.from_numpy(keep)]
    if len(ids) == 0:
        return (np.full(n, -1, np.int64), np.zeros(n, np.float32),
                [np.full((p.height, p.width), -1, np.int64) for p in projections] if view_maps else [], active)
    best, arg = prob.max(dim=0)
    labels = torch.from_numpy(ids)[arg].numpy().astype(np.int64)
    labels[best.numpy() < score_threshold] = -1
    if trained is not None:
        labels[~np.asarray(trained, bool)] = -1
    maps = []
    for proj, (f2d, alpha, q) in zip(projections, views):
        probs = torch.sigmoid(mask_logits(q[torch.from_numpy(ids)], f2d)).reshape(-1, proj.height, proj.width)
        maps.append(_pixel_labels(probs, alpha.reshape(proj.height, proj.width), ids, score_threshold, min_alpha))
    return labels, best.numpy().astype(np.float32), maps, active

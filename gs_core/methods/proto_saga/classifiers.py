"""Per-Gaussian embeddings trained with view-specific cosine classifiers (Proto-SaGa Sec. 3.1).

Each Gaussian carries ``f_i`` [D] (D = 16); view ``k`` has its own classifier ``w_k`` [L_k, D], one
row per region of its raw SAM masks, so the masks need not agree across views. A step picks one
view, samples ``pixels_per_step`` labelled pixels, renders their features with
``render(proj, features, pixels=xy)`` (Eq. 5; differentiable, its backward is the engine's
``trace``) and minimises ``lambda_ce`` times the cross-entropy of

    sigma_k(p) = softmax(tau * cos(w_k, F_k(p)))                                       (Eq. 6-7)

The scene's geometry is given and frozen: the paper trains it jointly with ``L_REC`` (Eq. 3, 8);
without that term ``lambda_ce`` only scales the loss, which Adam's update ignores (kept for
fidelity). Adam: lr 2.5e-3 for embeddings, 5e-4 for classifiers (the paper's). ``tau`` is 3, not the
paper's 10: with 600 steps of 2048 pixels (the paper: 30K full images) tau 10 leaves the Gaussians'
own embeddings split between the directions of the views that trained them (a lower nearest-object
agreement than tau 3; ``gs-core bench proto-saga``, docs/benchmarks.md).

:func:`gaussian_probabilities` is Eq. 14: the same classifier applied to a Gaussian's own
embedding. With ``shared=True`` every view uses one classifier (Tab. 4's "Cls": a unified
classifier trained on the associated masks, as Gaga does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...engine import Projection, render
from .prototypes import cosine_logits, view_prototypes


@dataclass(frozen=True)
class ClassifierConfig:
    dim: int = 16  # embedding width D (paper: 16)
    steps: int = 600  # the paper runs 30K GPU iterations over 180 views; a CPU budget here (README)
    pixels_per_step: int = 2048  # labelled pixels of one view rendered per step; 0 = all of them (the
    # paper renders whole images)
    tau: float = 3.0  # softmax temperature of the cosine logits (Eq. 6). The paper's 10 saturates the
    # cross-entropy within our CPU budget, so the views' classifiers stop pulling one object's Gaussians
    # together; 3 scores better (``gs-core bench proto-saga``, docs/benchmarks.md)
    lambda_ce: float = 0.05  # Eq. 8 (a pure scale here: geometry is frozen, no L_REC)
    lr_features: float = 2.5e-3
    lr_classifiers: float = 5e-4
    init_std: float = 0.1  # embeddings start ~ N(0, init_std^2)
    normalize: bool = False  # render unit embeddings f_i / |f_i| (Eq. 5) and return them so; the paper
    # does not normalise (the cosine of Eq. 6 normalises the blended feature only)
    classifier_init: str = "pooled"  # "pooled": a row starts at its region's mean rendered feature (Eq. 17
    # on the raw masks, at the initial embeddings); "random": N(0, 1). See the module docstring.
    seed: int = 0
    backend: str = "auto"

    def __post_init__(self):
        if self.steps < 0 or self.pixels_per_step < 0 or self.dim < 1:
            raise ValueError("steps >= 0, pixels_per_step >= 0 and dim >= 1 are required")
        if self.classifier_init not in ("pooled", "random"):
            raise ValueError(f"classifier_init must be 'pooled' or 'random', got {self.classifier_init!r}")


@dataclass
class TrainedClassifiers:
    features: Tensor  # [N, D] per-Gaussian embeddings f_i
    classifiers: list[Tensor]  # per view [L_k, D] (one shared entry with shared=True)
    trained: Tensor  # [N] bool: received a gradient at least once
    loss: list[float] = field(default_factory=list)  # per step
    seconds: float = 0.0

    def classifier(self, view: int) -> Tensor:  # -> [L, D]
        return self.classifiers[0 if len(self.classifiers) == 1 else view]


def train_classifiers(views: Sequence[tuple[Projection, np.ndarray]], num_classes: Sequence[int] | int,
                      config: ClassifierConfig = ClassifierConfig(), *, init: Tensor | None = None,  # [N, D]
                      progress: Callable[[int, int], None] | None = None,
                      checkpoints: Sequence[int] = (),
                      on_checkpoint: Callable[[int, TrainedClassifiers], None] | None = None) -> TrainedClassifiers:
    """Train embeddings and classifiers on ``views`` = ``(Projection, label_map [H, W] int)``, -1 = unlabelled.

    ``num_classes``: one int per view (view-specific classifiers, labels are the view's region
    indices) or a single int (one classifier shared by all views, labels are global ids).
    ``progress(step, steps)`` is called every 50 steps; Ctrl-C stops it (KeyboardInterrupt).
    ``on_checkpoint(step, snapshot)`` gets a copy of the state after each step in ``checkpoints``
    (a diagnostic: ``gs-core bench proto-saga`` scores training curves with it).

    Args:
        views: [V] of (projection, label map [H, W] int, -1 = unlabelled).
        init: [N, D] starting embeddings, or None for N(0, init_std^2).
    """
    t0 = time.perf_counter()
    if not views:
        raise ValueError("no views to train on")
    shared = isinstance(num_classes, (int, np.integer))
    sizes = [int(num_classes)] if shared else [int(c) for c in num_classes]
    if not shared and len(sizes) != len(views):
        raise ValueError(f"{len(sizes)} class counts for {len(views)} views")
    n = views[0][0].num_gaussians
    gen = torch.Generator().manual_seed(config.seed)
    feats = torch.randn(n, config.dim, generator=gen) * config.init_std if init is None else init.clone().float()
    feats.requires_grad_(True)
    unit = (lambda f: F.normalize(f, dim=-1, eps=1e-12)) if config.normalize else (lambda f: f)  # noqa: E731
    pools = []
    for k, (proj, lm) in enumerate(views):
        lm = torch.as_tensor(np.asarray(lm)).long().reshape(-1)
        if lm.numel() != proj.height * proj.width:
            raise ValueError(f"view {k}: label map has {lm.numel()} pixels, the view {proj.height * proj.width}")
        flat = torch.nonzero(lm >= 0).squeeze(1)
        if len(flat) and int(lm.max()) >= sizes[0 if shared else k]:
            raise ValueError(f"view {k}: label {int(lm.max())} beyond its {sizes[0 if shared else k]} classes")
        if len(flat):
            pools.append((k, proj, lm, flat))
    if not pools:
        raise ValueError("no view has labelled pixels")
    weights = [torch.randn(max(c, 1), config.dim, generator=gen) for c in sizes]
    if config.classifier_init == "pooled":
        _pool_rows(weights, views, unit(feats.detach()), shared, config.backend)
    for w in weights:
        w.requires_grad_(True)
    opt = torch.optim.Adam([{"params": [feats], "lr": config.lr_features},
                            {"params": weights, "lr": config.lr_classifiers}])
    trained = torch.zeros(n, dtype=torch.bool)
    losses = []
    checkpoints, paused = set(checkpoints), 0.0  # seconds spent in on_checkpoint, not training

    def snapshot() -> TrainedClassifiers:
        return TrainedClassifiers(unit(feats.detach()).clone(), [w.detach()[:c].clone() for w, c in zip(weights, sizes)],
                                  trained.clone(), list(losses), time.perf_counter() - t0 - paused)

    for step in range(config.steps):
        k, proj, lm, flat = pools[int(torch.randint(len(pools), (1,), generator=gen))]
        idx = flat[torch.randperm(len(flat), generator=gen)[:config.pixels_per_step]] if config.pixels_per_step else flat
        xy = torch.stack([idx % proj.width, idx // proj.width], dim=1)
        rendered = render(proj, unit(feats), pixels=xy, backend=config.backend).features  # [P, D]  (Eq. 5)
        logits = cosine_logits(weights[0 if shared else k], rendered, config.tau)  # [P, L_k]  (Eq. 6)
        loss = config.lambda_ce * F.cross_entropy(logits, lm[idx])  # Eq. 7-8
        opt.zero_grad(set_to_none=False)
        loss.backward()
        trained |= feats.grad.abs().sum(dim=1) > 0
        opt.step()
        losses.append(float(loss.detach()) / config.lambda_ce)
        if progress and (step + 1) % 50 == 0:
            progress(step + 1, config.steps)
        if on_checkpoint and step + 1 in checkpoints:
            t_pause = time.perf_counter()
            on_checkpoint(step + 1, snapshot())
            paused += time.perf_counter() - t_pause
    if progress:
        progress(config.steps, config.steps)
    return snapshot()


@torch.no_grad()
def _pool_rows(weights: list[Tensor], views, feats: Tensor, shared: bool, backend: str) -> None:
    """Classifier rows set to their regions' mean rendered feature (pooled over all views when shared);
    rows without pixels keep their random start."""
    sums = [torch.zeros_like(w) for w in weights]
    counts = [torch.zeros(len(w)) for w in weights]
    for k, (proj, lm) in enumerate(views):
        j = 0 if shared else k
        ids, protos = view_prototypes(render(proj, feats, backend=backend).features, lm)
        sums[j][ids] += protos
        counts[j][ids] += 1
    for w, s, c in zip(weights, sums, counts):
        w[c > 0] = s[c > 0] / c[c > 0, None]


@torch.no_grad()
def gaussian_probabilities(features: Tensor, weights: Tensor, tau: float = 10.0) -> Tensor:  # [K, D], [L, D] -> [K, L]
    """``sigma_{i,k} = softmax(tau * cos(w_k, f_i))`` (Eq. 14): the view classifier on a Gaussian's own embedding.

    Args:
        features: [K, D] embeddings of K Gaussians.
        weights: [L, D] one view's classifier rows.
    """
    if weights.shape[0] == 0:
        return features.new_zeros(features.shape[0], 0)
    return torch.softmax(cosine_logits(weights, features, tau), dim=-1)

"""Contrastive lifting: per-Gaussian instance features trained from 2D label maps (Trace3D Sec. 3.5).

Each Gaussian carries a feature ``f_g`` [d] (d = 16); geometry is frozen. A step picks one view,
samples ``pixels_per_step`` labelled pixels ``U``, renders their features with
``render(proj, features, pixels=xy)`` (differentiable w.r.t. the features; its backward is the
engine's ``trace``) and minimises Trace3D's Eq. 5,

    L = -1/|U| sum_u log( sum_{u' in U+(u)} k(u, u') / sum_{u' in U, u' != u} k(u, u') ),

where ``U+(u)`` are the other sampled pixels with ``u``'s label and
``k(u, u') = exp(-||F_u - F_u'||^2 / tau)`` (the released code's Gaussian kernel, DESIGN.md, not the
paper's ``exp(exp(-tau d^2))``), ``tau = tau_same`` for same-label pairs and ``tau_diff`` otherwise.
Anchors with no same-label partner in the sample are skipped; the log-ratio is computed with
log-sum-exps of the pair logits ``-d^2 / tau``.

``tau_same`` defaults to 1, not the released code's 100: with 100, same-label attraction is so weak
(a quadratic pull of ``d / 50``) that within the 1-2k CPU steps we run per scene objects stay diffuse
shells as wide as their separation although the loss is near 0 (measured: docs/benchmarks.md,
"Choices made by measurement").

Pairs are formed within one view per step, so labels may be per-view ids (raw masks, with disjoint
offsets) or consistent global ids: only equality within a view matters. Optimiser: Adam, lr 5e-3
(the released code's; the paper's 1e-5 is for its GPU step counts).

Queries (:func:`query_scores`): per-Gaussian similarity to reference features taken from
Gaussians or from rendered pixels, ``mean_r exp(-||f_g - f_r||^2 / tau)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ..engine import Projection, render


@dataclass
class ContrastiveConfig:
    dim: int = 16  # feature width (Trace3D: 16)
    steps: int = 1500
    lr: float = 5e-3  # Adam (the released code's)
    pixels_per_step: int = 4096  # labelled pixels sampled from one view per step
    tau_same: float = 1.0  # kernel width for same-label pairs (the released code: 100; see above)
    tau_diff: float = 1.0  # kernel width for different-label pairs
    init_std: float = 0.1  # features start ~ N(0, init_std^2)
    seed: int = 0
    backend: str = "auto"


@dataclass
class ContrastiveResult:
    features: Tensor  # [N, dim]
    trained: Tensor  # [N] bool: received a gradient at least once (others keep their random init)
    loss: list[float] = field(default_factory=list)  # per step
    seconds: float = 0.0


def contrastive_loss(feats: Tensor, labels: Tensor,  # [P, d], [P] int
                     tau_same: float = 1.0, tau_diff: float = 1.0, chunk: int = 512) -> Tensor:  # -> scalar
    """Trace3D Eq. 5 with the released code's per-pair kernel widths (see the module docstring).

    Pixels are sorted by label, so each anchor's positives are one contiguous column range: the
    [rows, P] blocks need no masks (a different-label logit is ``-d^2 / tau_diff`` everywhere but that
    range, which is computed apart with ``tau_same``). Row blocks of at most ``chunk`` anchors, a
    hand-written backward, and the blocks' exponentials kept for it: memory is one [P, P] float
    matrix at most, never several.

    Args:
        feats: [P, d] rendered features of P pixels.
        labels: [P] int their labels.
    """
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    _, counts = torch.unique_consecutive(sorted_labels, return_counts=True)
    return _ContrastiveLoss.apply(feats[order], counts.tolist(), 1.0 / tau_same, 1.0 / tau_diff, chunk)


def _blocks(counts: list[int], chunk: int):
    """(row lo, row hi, segment start, segment end) over labels with >= 2 pixels (the anchors)."""
    seg = 0
    for n in counts:
        if n >= 2:
            for lo in range(seg, seg + n, chunk):
                yield lo, min(lo + chunk, seg + n), seg, seg + n
        seg += n


class _ContrastiveLoss(torch.autograd.Function):
    @staticmethod
    def forward(ctx, feats, counts, inv_same, inv_diff, chunk):  # feats [P, d] sorted by label
        sq = (feats * feats).sum(dim=1)
        total, n_anchors, saved = feats.new_zeros(()), 0, []
        for lo, hi, s, e in _blocks(counts, chunk):
            fi = feats[lo:hi]
            # different-label logits -d^2 / tau = x_ij + r_i, x_ij = (2 f_i.f_j - |f_j|^2) / tau, r_i = -|f_i|^2 / tau
            x = torch.addmm(sq[None, :], fi, feats.T, beta=-inv_diff, alpha=2.0 * inv_diff)
            x[:, s:e] = -torch.inf  # same-label columns: below, with tau_same
            m = x.amax(dim=1)  # [c]
            finite = torch.isfinite(m)
            m = torch.where(finite, m, torch.zeros_like(m))
            ex = torch.exp_(x.sub_(m[:, None]))  # [c, P]
            log_neg = torch.log(ex.sum(dim=1)) + m - inv_diff * sq[lo:hi]  # -inf if no other label
            d2 = torch.cdist(fi, feats[s:e]).square_()  # [c, n]
            lp = d2.mul_(-inv_same)
            rows = torch.arange(lo, hi)
            lp[rows - lo, rows - s] = -torch.inf  # not its own positive
            log_num = torch.logsumexp(lp, dim=1)
            log_den = torch.logaddexp(log_num, log_neg)
            total = total + (log_den - log_num).sum()
            n_anchors += hi - lo
            saved.append((ex, m, lp, log_num, log_den))
        ctx.save_for_backward(feats)
        ctx.blocks, ctx.saved = list(_blocks(counts, chunk)), saved
        ctx.consts = (inv_same, inv_diff, max(n_anchors, 1))
        if n_anchors == 0:
            return feats.sum() * 0.0
        return total / n_anchors

    @staticmethod
    def backward(ctx, grad_out):
        (feats,) = ctx.saved_tensors
        inv_same, inv_diff, n_anchors = ctx.consts
        sq = (feats * feats).sum(dim=1)
        grad = torch.zeros_like(feats)
        scale = grad_out / n_anchors
        for (lo, hi, s, e), (ex, m, lp, log_num, log_den) in zip(ctx.blocks, ctx.saved):
            # dL_i/dd2_ij = -1/tau_ij (softmax_den_ij - [same] softmax_num_ij), softmax_den = exp(logit - log_den)
            coef = torch.exp(m - inv_diff * sq[lo:hi] - log_den) * (-inv_diff * scale)  # [c]
            g = ex.mul_(coef[:, None])  # [c, P], zero on same-label columns
            g[:, s:e] = (torch.exp(lp - log_den[:, None]) - torch.exp(lp - log_num[:, None])) * (-inv_same * scale)
            # d2_ij = |f_i|^2 + |f_j|^2 - 2 f_i.f_j
            grad[lo:hi] += 2.0 * (g.sum(dim=1)[:, None] * feats[lo:hi] - g @ feats)
            grad += 2.0 * (g.sum(dim=0)[:, None] * feats - g.T @ feats[lo:hi])
        ctx.saved = None
        return grad, None, None, None, None


def train_contrastive(views: Iterable[tuple[Projection, object]],
                      config: ContrastiveConfig = ContrastiveConfig(),
                      init: Tensor | None = None) -> ContrastiveResult:  # init [N, dim]
    """Train per-Gaussian features on ``views`` = ``(Projection, label_map [H, W] int)``, -1 = unlabelled.

    All views are held (projections and labelled-pixel lists); each step uses one view at random.

    Args:
        views: [V] of (projection, label map [H, W] int, -1 = unlabelled).
        init: [N, dim] starting features, or None for N(0, init_std^2).
    """
    t0 = time.perf_counter()
    views = [(p, torch.as_tensor(np.asarray(m) if not torch.is_tensor(m) else m).long()) for p, m in views]
    if not views:
        raise ValueError("no views to train on")
    n = views[0][0].num_gaussians
    gen = torch.Generator().manual_seed(config.seed)
    feats = (torch.randn(n, config.dim, generator=gen) * config.init_std) if init is None else init.clone().float()
    feats.requires_grad_(True)
    opt = torch.optim.Adam([feats], lr=config.lr)
    pools = []
    for proj, lm in views:
        if tuple(lm.shape) != (proj.height, proj.width):
            raise ValueError(f"label map is {tuple(lm.shape)}, view is {(proj.height, proj.width)}")
        flat = torch.nonzero(lm.reshape(-1) >= 0).squeeze(1)
        if len(torch.unique(lm.reshape(-1)[flat])) >= 2:  # a view with one label has no negatives
            pools.append((proj, lm.reshape(-1), flat))
    if not pools:
        raise ValueError("no view has two or more labels")
    trained = torch.zeros(n, dtype=torch.bool)
    losses = []
    for _ in range(config.steps):
        proj, lm, flat = pools[int(torch.randint(len(pools), (1,), generator=gen))]
        k = min(config.pixels_per_step, len(flat))
        idx = flat[torch.randperm(len(flat), generator=gen)[:k]]
        xy = torch.stack([idx % proj.width, idx // proj.width], dim=1)
        rendered = render(proj, feats, pixels=xy, backend=config.backend).features  # [k, dim]
        loss = contrastive_loss(rendered, lm[idx], config.tau_same, config.tau_diff)
        opt.zero_grad(set_to_none=False)
        loss.backward()
        trained |= feats.grad.abs().sum(dim=1) > 0
        opt.step()
        losses.append(float(loss.detach()))
    return ContrastiveResult(feats.detach(), trained, losses, time.perf_counter() - t0)


@torch.no_grad()
def query_scores(features: Tensor, *, gaussians: Tensor | None = None,  # [N, d], [G] index or [N] bool
                 proj: Projection | None = None, pixels: Tensor | None = None,  # [P, 2] (x, y)
                 tau: float = 1.0, max_refs: int = 512, backend: str = "auto") -> Tensor:  # -> [N]
    """Similarity of every Gaussian to a reference: ``mean_r exp(-||f_g - f_r||^2 / tau)`` in [0, 1].

    The reference features ``f_r`` are those of ``gaussians`` (indices or mask), or the features
    rendered at ``pixels`` of ``proj``'s view (a click or a mask's pixels). At most ``max_refs``
    references are used (evenly spaced). Threshold with :func:`~gs_core.lifting.thresholds.auto_threshold`.

    Args:
        features: [N, d] per-Gaussian features.
        gaussians: [G] int64 index or [N] bool mask of the reference Gaussians, or None.
        pixels: [P, 2] int (x, y) reference pixels of ``proj``'s view, or None.
    """
    if (gaussians is None) == (pixels is None):
        raise ValueError("give either gaussians or (proj, pixels)")
    if gaussians is not None:
        refs = features[torch.as_tensor(gaussians)]
    else:
        if proj is None:
            raise ValueError("pixels need the view's projection")
        out = render(proj, features, pixels=torch.as_tensor(pixels), backend=backend)
        refs = out.features  # as rendered in training (premultiplied by alpha)
    if len(refs) == 0:
        raise ValueError("empty reference")
    if len(refs) > max_refs:
        refs = refs[torch.linspace(0, len(refs) - 1, max_refs).long()]
    scores = torch.zeros(features.shape[0])
    for start in range(0, features.shape[0], 65536):
        chunk = features[start:start + 65536]
        scores[start:start + len(chunk)] = torch.exp(-torch.cdist(chunk, refs).square() / tau).mean(dim=1)
    return scores

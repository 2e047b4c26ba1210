"""Closed-form lifting: per-pixel signals onto Gaussians as ``trace(B) / trace(1)`` summed over views.

Linear-inverse paper (Feature Splat Solver): rendering is ``A x = B`` with ``A_ij = w_ij`` (Eq. 3-4);
the row-sum preconditioned solution is ``x_g = sum_v sum_p w^k b_p / sum_v sum_p w^k`` (Eq. 7 with
k = 1, Eq. 24 with k = 2), and Tikhonov guidance polarises opacities ``sigmoid(lambda logit(o))``
before tracing (Eq. 19, 23). Two signals:

* float maps ``[H, W, D]`` (embeddings of any width): :func:`lift_features`, streamed over views in
  ``O(N D)`` memory (two accumulators, one map at a time);
* integer label maps ``[H, W]`` (masks, patch ids, instance ids): :func:`lift_labels`, a sparse
  per-(Gaussian, label) weight histogram from the engine's top-k label trace (FlashSplat's argmax,
  Gaussian Instance Tracing summed over views).

Per-view work is a pure function (:func:`feature_view_sums`, :func:`label_view_sums`) returning sums
that add across views, so views can be sharded over workers and the sums added afterwards
(:meth:`FeatureSums.add`, :func:`reduce_label_sums`).

Visibility (DESIGN.md): with a :class:`~gs_core.visibility.VisibilityRule`, a Gaussian contributes
in a view only where it is really seen. The rule needs power-1 sums over *every* pixel the Gaussian
reaches (a label trace skips pixels labelled -1), so it is decided from one extra trace of a
constant map with the scene's own opacities (geometry, not the polarised lifting operator); for
power-1, unpolarised float maps the lifting trace itself is reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..engine import Projection, trace
from ..visibility import VisibilityRule

# ---- visibility -----------------------------------------------------------------------------


def seen_in_view(proj: Projection, rule: VisibilityRule, backend: str = "auto") -> Tensor:  # -> [N] bool
    """Which Gaussians ``rule`` counts as seen in ``proj``'s view (one power-1 trace over every pixel)."""
    ones = torch.ones(proj.height, proj.width, 1, device=proj.means2d.device)
    return rule.of(trace(proj, ones, power=1, backend=backend))


# ---- integer label maps --------------------------------------------------------------------------


@dataclass
class LabelLiftConfig:
    """How label maps are traced. Defaults: plain ``alpha T`` weights (GIT, FlashSplat)."""

    top_k: int = 8  # labels kept per Gaussian and view (the rest only counts in ``total``)
    power: int = 1  # weights w^power (2: the linear-inverse paper's Eq. 24)
    opacity_lambda: float | None = None  # opacity polarisation (Eq. 23); None or 1 = none
    visibility: VisibilityRule | None = None  # a Gaussian votes in a view only where it is seen
    backend: str = "auto"


@dataclass
class LabelSums:
    """Sparse per-(Gaussian, label) weights: triplets (gaussian, label, weight), plus the total
    labelled weight per Gaussian (which includes labels beyond the top-k). Sums add across views."""

    gaussians: Tensor  # [M] int64
    labels: Tensor  # [M] int64
    weights: Tensor  # [M] float32
    total: Tensor  # [N] float32: sum of w^k over all labelled pixels (top-k labels and the rest)

    @property
    def num_gaussians(self) -> int:
        return int(self.total.shape[0])

    def coalesced(self) -> "LabelSums":
        """One triplet per (Gaussian, label), sorted by Gaussian then label."""
        if self.gaussians.numel() == 0:
            return self
        span = int(self.labels.max()) + 1 if self.labels.numel() else 1
        key = self.gaussians * span + self.labels
        uniq, inv = torch.unique(key, sorted=True, return_inverse=True)
        w = torch.zeros(uniq.shape[0], dtype=self.weights.dtype).index_add_(0, inv, self.weights)
        return LabelSums(uniq // span, uniq % span, w, self.total)

    def to_scipy(self):
        """A ``scipy.sparse.csr_matrix`` [N, max label + 1] of the weights."""
        import scipy.sparse

        s = self.coalesced()
        cols = int(s.labels.max()) + 1 if s.labels.numel() else 0
        return scipy.sparse.csr_matrix((s.weights.numpy(), (s.gaussians.numpy(), s.labels.numpy())),
                                       shape=(self.num_gaussians, cols))


def reduce_label_sums(parts: Iterable[LabelSums]) -> LabelSums:
    """Add per-view (or per-shard) :class:`LabelSums`; coalesces as it goes so memory stays bounded."""
    acc: LabelSums | None = None
    pending: list[LabelSums] = []
    pending_size = 0
    for part in parts:
        pending.append(part)
        pending_size += part.gaussians.numel()
        if acc is None or pending_size > max(4 * acc.gaussians.numel(), 1 << 20):
            acc = _concat(([acc] if acc is not None else []) + pending).coalesced()
            pending, pending_size = [], 0
    if acc is None:
        raise ValueError("no views to lift")
    if pending:
        acc = _concat([acc] + pending).coalesced()
    return acc


def _concat(parts: list[LabelSums]) -> LabelSums:
    total = parts[0].total.clone()
    for p in parts[1:]:
        if p.total.shape != total.shape:
            raise ValueError("label sums from scenes with different numbers of Gaussians")
        total += p.total
    return LabelSums(torch.cat([p.gaussians for p in parts]), torch.cat([p.labels for p in parts]),
                     torch.cat([p.weights for p in parts]), total)


def label_view_sums(proj: Projection, label_map, config: LabelLiftConfig = LabelLiftConfig()) -> LabelSums:
    """One view's sparse label weights (pure; ``label_map`` [H, W] int, negative = unlabelled).

    Per Gaussian, the top-``config.top_k`` labels of ``trace(proj, label_map)`` with their summed
    ``w^k``; with ``config.visibility``, Gaussians not seen in this view contribute nothing.

    Args:
        label_map: [H, W] int label per pixel, negative = unlabelled (array or tensor).
    """
    labels = torch.as_tensor(np.asarray(label_map) if not torch.is_tensor(label_map) else label_map)
    if torch.is_floating_point(labels):
        raise TypeError("label_map must be an integer map [H, W]")
    out = trace(proj, labels.to(torch.int32), power=config.power, opacity_lambda=config.opacity_lambda,
                top_k=config.top_k, sparse=True, backend=config.backend)  # entries: no [N, k] arrays
    g, lab, w = out.gaussians.long().cpu(), out.labels.long().cpu(), out.weights.float().cpu()
    total = out.weight_sum.float().cpu()
    keep = (lab >= 0) & (w > 0)
    if config.visibility is not None:
        seen = seen_in_view(proj, config.visibility, config.backend).cpu()
        keep &= seen[g]
        total = torch.where(seen, total, torch.zeros_like(total))
    return LabelSums(g[keep], lab[keep], w[keep], total)


@dataclass
class LiftedLabels:
    """Per-Gaussian labels from summed label weights (FlashSplat-style argmax over views)."""

    labels: Tensor  # [N] int64: label of largest summed weight; -1 = no weight
    confidence: Tensor  # [N]: winning weight / total labelled weight (0 where no weight)
    total: Tensor  # [N]: total labelled weight summed over views
    sums: LabelSums | None = None  # the coalesced sparse weights, when asked for


def labels_from_sums(sums: LabelSums) -> LiftedLabels:
    """Argmax per Gaussian of coalesced :class:`LabelSums` (ties go to the smaller label)."""
    s = sums.coalesced()
    n = sums.num_gaussians
    labels = torch.full((n,), -1, dtype=torch.long)
    conf = torch.zeros(n)
    if s.gaussians.numel():
        # coalesced triplets are sorted by (gaussian, label); stable sorts keep ties at the smaller label
        order = torch.sort(-s.weights, stable=True).indices
        order = order[torch.sort(s.gaussians[order], stable=True).indices]
        g = s.gaussians[order]
        first = torch.ones_like(g, dtype=torch.bool)
        first[1:] = g[1:] != g[:-1]
        win = order[first]
        labels[s.gaussians[win]] = s.labels[win]
        conf[s.gaussians[win]] = s.weights[win] / s.total[s.gaussians[win]].clamp_min(1e-12)
    return LiftedLabels(labels, conf.clamp_max(1.0), s.total, s)


def lift_labels(views: Iterable[tuple[Projection, object]], config: LabelLiftConfig = LabelLiftConfig(), *,
                return_sums: bool = False) -> LiftedLabels:
    """Lift integer label maps onto Gaussians: ``argmax_l sum_v sum_p w^k [label_p = l]`` (Eq. 7/24
    applied to one-hot labels, kept sparse).

    ``views``: iterable of ``(Projection, label_map [H, W] int)``, consumed once (stream it); ids may be
    global (consistent maps) or per view with disjoint offsets. Returns labels [N] (-1 = no weight),
    confidence [N] (share of the winning label) and, with ``return_sums``, the sparse weights.

    Args:
        views: [V] of (projection, label map [H, W] int, negative = unlabelled).
    """
    sums = reduce_label_sums(label_view_sums(proj, lm, config) for proj, lm in views)
    out = labels_from_sums(sums)
    if not return_sums:
        out.sums = None
    return out


# ---- float feature maps --------------------------------------------------------------------------


@dataclass
class FeatureLiftConfig:
    """How float maps are traced. Defaults: the paper's Tikhonov-guided solver (Eq. 23-24)."""

    power: int = 2  # weights w^power: 1 = Eq. 7 (row-sum preconditioner), 2 = Eq. 24
    opacity_lambda: float | None = 1.2  # Tikhonov guidance by opacity polarisation (Eq. 23); 1 = none
    visibility: VisibilityRule | None = None  # a Gaussian takes a view's pixels only where it is seen
    backend: str = "auto"


@dataclass
class FeatureSums:
    """Numerator and denominator of Eq. 7/24 over some views; sums of views add."""

    weighted_sum: Tensor  # [N, D]: sum_v sum_p w^k b_p
    weight_sum: Tensor  # [N]: sum_v sum_p w^k

    def add_(self, other: "FeatureSums") -> "FeatureSums":
        """In place (no second [N, D] buffer)."""
        self.weighted_sum += other.weighted_sum
        self.weight_sum += other.weight_sum
        return self

    def solve(self, eps: float = 1e-12) -> Tensor:  # -> [N, D]
        """``x_g = sum w^k b / sum w^k`` (Eq. 7/24); 0 for Gaussians with no weight."""
        return self.weighted_sum / self.weight_sum.clamp_min(eps)[:, None] * (self.weight_sum > 0)[:, None]


def feature_view_sums(proj: Projection, feature_map: Tensor,  # [H, W, D] or [H, W]
                      config: FeatureLiftConfig = FeatureLiftConfig()) -> FeatureSums:
    """One view's ``sum_p w^k b_p`` [N, D] and ``sum_p w^k`` [N] (pure; Eq. 24 per view).

    Args:
        feature_map: [H, W, D] or [H, W] float.
    """
    fmap = torch.as_tensor(feature_map)
    if not torch.is_floating_point(fmap):
        raise TypeError("feature_map must be a float map [H, W, D]; use lift_labels for label maps")
    out = trace(proj, fmap.to(torch.float32), power=config.power, opacity_lambda=config.opacity_lambda,
                backend=config.backend)
    acc, wsum = out.weighted_sum, out.weight_sum
    if config.visibility is not None:
        if config.power == 1 and config.opacity_lambda in (None, 1.0):
            seen = config.visibility.of(out)  # this trace is already power 1 over every pixel
        else:
            seen = seen_in_view(proj, config.visibility, config.backend)
        acc = acc * seen[:, None]
        wsum = wsum * seen
    return FeatureSums(acc, wsum)


@dataclass
class LiftedFeatures:
    features: Tensor  # [N, D]: Eq. 7/24 solution; 0 where no weight
    weight: Tensor  # [N]: sum_v sum_p w^k (0 = never seen)


def lift_features(views: Iterable[tuple[Projection, Tensor]],
                  config: FeatureLiftConfig = FeatureLiftConfig()) -> LiftedFeatures:
    """Closed-form lifting of float maps (Eq. 7 with power 1, Eq. 19-24 with power 2 and lambda).

    ``views``: iterable of ``(Projection, feature_map [H, W, D])``, consumed once; memory is two
    accumulators [N, D] + [N] and the current view's map and trace, whatever the number of views.

    Args:
        views: [V] of (projection, feature map [H, W, D] float).
    """
    acc: FeatureSums | None = None
    for proj, fmap in views:
        part = feature_view_sums(proj, fmap, config)
        acc = part if acc is None else acc.add_(part)
    if acc is None:
        raise ValueError("no views to lift")
    return LiftedFeatures(acc.solve(), acc.weight_sum)

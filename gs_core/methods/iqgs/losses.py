"""IQGS losses (paper Sec. "Loss Function", Eq. 9 and 11-14).

Mask losses follow MaskFormer/DETR, which the paper cites for them: the sigmoid focal loss (Lin et
al. 2017, alpha 0.25, gamma 2) averaged over pixels, and the dice loss (Milletari et al. 2016) with
+1 smoothing; the pairwise forms (:func:`focal_cost`, :func:`dice_cost`) give every (query, mask)
pair's loss at once for the Hungarian cost (Eq. 9) as two matrix products, and equal the per-pair
losses exactly (tests check it).

The 3D kNN regulariser (Eq. 13) is the mean squared feature difference over (Gaussian, spatial
neighbour) pairs; neighbours come from :class:`scipy.spatial.cKDTree` once per scene. The 2D-3D
consistency loss (Eq. 14) compares a query's 3D mask rendered into the view,
``Render(sigmoid(S_3D(m)))``, with its 2D mask ``sigmoid(S_2D(m))``; the paper leaves
``L_overlap`` unspecified, here it is the mean squared difference, zero exactly when they agree.
Rendering the probabilities (not the logits, which render linearly and would agree by
construction) is what makes it bite: a pixel's Gaussians must agree, the 2DGS failure the paper
targets.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def focal_loss(logits: Tensor, targets: Tensor,  # [M, P], [M, P] in {0, 1}
               alpha: float = 0.25, gamma: float = 2.0) -> Tensor:  # -> [M]
    """Sigmoid focal loss per mask, mean over its pixels (Eq. 11's summand).

    Args:
        logits: [M, P] mask logits at P pixels.
        targets: [M, P] in {0, 1}.
    """
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss.mean(dim=1)


def dice_loss(logits: Tensor, targets: Tensor) -> Tensor:  # [M, P], [M, P] -> [M]
    """``1 - (2 |p t| + 1) / (|p| + |t| + 1)`` per mask (Eq. 12's summand).

    Args:
        logits: [M, P] mask logits at P pixels.
        targets: [M, P] in {0, 1}.
    """
    p = torch.sigmoid(logits)
    targets = targets.to(p.dtype)
    return 1 - (2 * (p * targets).sum(1) + 1) / (p.sum(1) + targets.sum(1) + 1)


def focal_cost(logits: Tensor, targets: Tensor,  # [Q, P], [M, P]
               alpha: float = 0.25, gamma: float = 2.0) -> Tensor:  # -> [Q, M]
    """:func:`focal_loss` of every query against every mask (MaskFormer's batch form).

    Args:
        logits: [Q, P] each query's mask logits at P pixels.
        targets: [M, P] in {0, 1}, the masks.
    """
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    pos = (1 - p) ** gamma * F.softplus(-logits)  # BCE-with-logits against 1, without a [Q, P] tensor of ones
    neg = p ** gamma * F.softplus(logits)  # ... against 0
    if alpha >= 0:
        pos, neg = alpha * pos, (1 - alpha) * neg
    return (pos @ targets.T + neg @ (1 - targets).T) / logits.shape[1]


def dice_cost(logits: Tensor, targets: Tensor) -> Tensor:  # [Q, P], [M, P] -> [Q, M]
    """:func:`dice_loss` of every query against every mask.

    Args:
        logits: [Q, P] each query's mask logits at P pixels.
        targets: [M, P] in {0, 1}, the masks.
    """
    p = torch.sigmoid(logits)
    targets = targets.to(p.dtype)
    return 1 - (2 * p @ targets.T + 1) / (p.sum(1)[:, None] + targets.sum(1)[None, :] + 1)


def knn_neighbours(means: np.ndarray, k: int = 8) -> np.ndarray:  # [N, 3] -> [N, k] int64
    """The ``k`` nearest other Gaussians of each Gaussian by centre (scipy's cKDTree).

    Args:
        means: [N, 3] Gaussian centres.
    """
    from scipy.spatial import cKDTree

    means = np.asarray(means, np.float64)
    k = min(k, len(means) - 1)
    if k < 1:
        return np.zeros((len(means), 0), np.int64)
    _, idx = cKDTree(means).query(means, k=k + 1)
    return idx[:, 1:].astype(np.int64)  # drop the point itself (distance 0 comes first)


def knn_regulariser(features: Tensor, neighbours: Tensor,  # [N, D], [N, k] int
                    sample: Tensor | None = None) -> Tensor:  # [S] Gaussian ids, None = all
    """``1/|N| sum_(i,j) ||f_i - f_j||^2`` over Gaussians ``i`` (of ``sample``) and their kNN (Eq. 13).

    Args:
        features: [N, D] per-Gaussian features.
        neighbours: [N, k] int ids of each Gaussian's neighbours.
        sample: [S] int Gaussian ids to average over, or None for all.
    """
    rows = sample if sample is not None else torch.arange(features.shape[0])
    nbrs = neighbours[rows]  # [S, k]
    if nbrs.numel() == 0:
        return features.sum() * 0.0
    return (features[rows][:, None, :] - features[nbrs]).square().sum(-1).mean()


def consistency_loss(rendered_3d: Tensor, masks_2d: Tensor) -> Tensor:  # [P, M] each -> scalar
    """``L_overlap(Pi_v(S_3D(m)), S_2D(m))`` (Eq. 14): mean squared difference between the 3D masks'
    probabilities rendered at the sampled pixels and the 2D masks' probabilities there.

    Args:
        rendered_3d: [P, M] the 3D masks' probabilities rendered at P pixels.
        masks_2d: [P, M] the 2D masks' probabilities there.
    """
    if rendered_3d.numel() == 0:
        return rendered_3d.sum() * 0.0
    return (rendered_3d - masks_2d).square().mean()

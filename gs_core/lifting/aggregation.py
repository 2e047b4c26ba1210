"""Post-lifting aggregation (linear-inverse paper, Eq. 20-22 and appendix B).

1. Cluster the lifted per-Gaussian features: ``y = Agg(x)`` in ``{-1, ..., K-1}`` (Eq. 20a; PCA to
   at most 50 dimensions, then HDBSCAN, -1 = noise).
2. Render each cluster back into every view as a one-hot signal and take the per-pixel argmax
   (Eq. 20b-c): :func:`gs_core.labelmaps.render_labels`, the one rendering rule for label maps.
3. For every pixel ``r_i``, ``M(j, B)`` is the input mask containing it and ``M(j, k)`` the cluster
   region containing it (Eq. 21); the observation is kept when ``IoU(m_j, m_k) > threshold`` and
   dropped otherwise (Eq. 22). :func:`filter_view` returns the kept label map (dropped pixels -1),
   to be lifted again.
4. Appendix B's cluster-level rule ("compute its mIoU against the original masks"): in each view a
   cluster's region is matched to the input mask of largest IoU with it; its agreement is the mean
   of those IoUs over the views, each weighted by the region's pixels there, and clusters at or
   below ``threshold`` are dropped (their Gaussians get -1). A region matched by no mask scores 0.

Per view, :func:`view_agreement` is a pure function returning per-pixel IoU and per-cluster sums
(add them over views or shards).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..engine import Projection
from ..labelmaps import render_labels


@dataclass
class AggregationConfig:
    pca_dim: int = 50  # PCA first when the features are wider (the paper: PCA(50))
    min_cluster_size: int = 30  # HDBSCAN
    min_samples: int | None = None  # HDBSCAN (None = min_cluster_size)
    selection: str = "eom"  # HDBSCAN cluster selection: "eom" (excess of mass) or "leaf" (finer clusters)
    max_fit: int = 20000  # HDBSCAN is fitted on at most this many Gaussians; the rest join their nearest
    iou_threshold: float = 0.5  # Eq. 22 (pixels) and appendix B (clusters)
    min_alpha: float = 0.5  # pixels rendered below this alpha have no cluster
    seed: int = 0
    backend: str = "auto"


def cluster_features(features: Tensor, config: AggregationConfig = AggregationConfig(),  # [N, D]
                     mask: Tensor | None = None) -> Tensor:  # mask [N] bool -> [N] int64, -1 = noise/unclustered
    """Eq. 20a: PCA(<= ``pca_dim``) + HDBSCAN on the Gaussians in ``mask`` (all by default).

    HDBSCAN runs on a random subset of at most ``max_fit`` Gaussians; the others take the cluster of
    their nearest fitted neighbour (noise stays noise).

    Args:
        features: [N, D] per-Gaussian features.
        mask: [N] bool the Gaussians to cluster, or None for all.
    """
    from sklearn.cluster import HDBSCAN
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    x = features.detach().cpu().float().numpy()
    n = len(x)
    idx = np.arange(n) if mask is None else np.flatnonzero(np.asarray(mask))
    out = np.full(n, -1, dtype=np.int64)
    if len(idx) < max(2, config.min_cluster_size):
        return torch.from_numpy(out)
    x = x[idx]
    if x.shape[1] > config.pca_dim:
        x = PCA(config.pca_dim, random_state=config.seed).fit_transform(x)
    rng = np.random.default_rng(config.seed)
    fit = rng.permutation(len(x))[:config.max_fit] if len(x) > config.max_fit else np.arange(len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.8+: the default of ``copy`` changes
        labels = HDBSCAN(min_cluster_size=config.min_cluster_size, min_samples=config.min_samples,
                         cluster_selection_method=config.selection).fit_predict(x[fit])
    full = np.full(len(x), -1, dtype=np.int64)
    full[fit] = labels
    if len(fit) < len(x):
        rest = np.setdiff1d(np.arange(len(x)), fit)
        nn = NearestNeighbors(n_neighbors=1).fit(x[fit])
        full[rest] = labels[nn.kneighbors(x[rest], return_distance=False)[:, 0]]
    out[idx] = full
    return torch.from_numpy(out)


@dataclass
class ViewAgreement:
    """One view's Eq. 21-22 quantities."""

    cluster_map: np.ndarray  # [H, W] int64: rendered cluster per pixel (Eq. 20c), -1 = none
    iou: np.ndarray  # [H, W] float32: IoU of the pixel's input mask and its cluster region (0 if either is -1)
    cluster_iou_sum: np.ndarray  # [K] IoU of each cluster's region with its best mask, times the region's pixels
    cluster_pixels: np.ndarray  # [K] pixels of each cluster's region


def view_agreement(proj: Projection, label_map, clusters: Tensor, num_clusters: int,  # [H, W], [N]
                   config: AggregationConfig = AggregationConfig()) -> ViewAgreement:
    """Render ``clusters`` into the view and score each pixel's input mask against its cluster (pure).

    Args:
        label_map: [H, W] int input mask id per pixel, -1 = none (array or tensor).
        clusters: [N] int64 cluster per Gaussian, -1 = noise.
    """
    lm = np.asarray(label_map.cpu() if torch.is_tensor(label_map) else label_map).astype(np.int64)
    cmap = render_labels(proj, clusters, min_alpha=config.min_alpha, backend=config.backend)
    both = (lm >= 0) & (cmap >= 0)
    iou = np.zeros(lm.shape, dtype=np.float32)
    sums, counts = np.zeros(num_clusters), np.zeros(num_clusters)
    if both.any():
        _, m_idx = np.unique(lm, return_inverse=True)  # masks -> 0..a-1
        _, c_idx = np.unique(cmap, return_inverse=True)
        m_idx, c_idx = m_idx.reshape(lm.shape), c_idx.reshape(lm.shape)
        m_size = np.bincount(m_idx[lm >= 0].ravel(), minlength=m_idx.max() + 1)
        c_size = np.bincount(c_idx[cmap >= 0].ravel(), minlength=c_idx.max() + 1)
        pair = m_idx[both].astype(np.int64) * (c_idx.max() + 1) + c_idx[both]
        upair, inv = np.unique(pair, return_inverse=True)
        inter = np.bincount(inv).astype(np.float64)
        pm, pc = upair // (c_idx.max() + 1), upair % (c_idx.max() + 1)
        pair_iou = inter / (m_size[pm] + c_size[pc] - inter)
        iou[both] = pair_iou[inv]
        cluster_ids = np.unique(cmap)  # c_idx -> cluster id (-1 first when present)
        best = np.zeros(len(cluster_ids))
        np.maximum.at(best, pc, pair_iou)
        valid = cluster_ids >= 0
        counts = np.zeros(num_clusters)
        counts[cluster_ids[valid]] = c_size[valid]
        sums[cluster_ids[valid]] = best[valid] * c_size[valid]
    elif (cmap >= 0).any():  # regions, but no input labels under them: agreement 0
        counts = np.bincount(cmap[cmap >= 0], minlength=num_clusters)[:num_clusters].astype(np.float64)
    return ViewAgreement(cmap, iou, sums, counts)


def filter_view(label_map, agreement: ViewAgreement, threshold: float = 0.5) -> np.ndarray:  # -> [H, W]
    """Eq. 22: keep a pixel's input label when ``IoU(m_j, m_k) > threshold``, else -1.

    Args:
        label_map: [H, W] int input mask id per pixel, -1 = none (array or tensor).
    """
    lm = np.asarray(label_map.cpu() if torch.is_tensor(label_map) else label_map).astype(np.int64)
    return np.where(agreement.iou > threshold, lm, -1)


@dataclass
class AggregationResult:
    clusters: Tensor  # [N] int64: Eq. 20a clusters, -1 = noise
    labels: Tensor  # [N] int64: clusters with the dropped ones set to -1
    agreement: np.ndarray  # [K]: each cluster's best-mask IoU, mean over views weighted by its pixels
    kept: np.ndarray  # [K] bool: agreement > threshold (appendix B)
    pixels: np.ndarray  # [K]: pixels each cluster's region covers over all views


def aggregate(views: Iterable[tuple[Projection, object]], features: Tensor,  # [N, D]
              config: AggregationConfig = AggregationConfig(), clusters: Tensor | None = None,  # [N]
              mask: Tensor | None = None) -> AggregationResult:  # mask [N] bool
    """Cluster ``features`` (or take ``clusters``), render the clusters into ``views`` = ``(Projection,
    label_map [H, W])`` and drop clusters the input masks contradict (Eq. 20-22, appendix B).

    Args:
        views: [V] of (projection, label map [H, W] int, -1 = none).
        features: [N, D] per-Gaussian features.
        clusters: [N] int64 given clusters (-1 = noise), or None to cluster ``features``.
        mask: [N] bool the Gaussians to cluster, or None for all.
    """
    if clusters is None:
        clusters = cluster_features(features, config, mask)
    clusters = torch.as_tensor(clusters).long().cpu()
    k = int(clusters.max()) + 1 if clusters.numel() else 0
    sums, counts = np.zeros(k), np.zeros(k)
    for proj, lm in views:
        a = view_agreement(proj, lm, clusters, k, config)
        sums += a.cluster_iou_sum
        counts += a.cluster_pixels
    agreement = sums / np.maximum(counts, 1)
    kept = (agreement > config.iou_threshold) & (counts > 0)
    keep_g = torch.from_numpy(np.append(kept, False))[clusters.clamp_min(-1)]  # -1 indexes the appended False
    labels = torch.where(keep_g & (clusters >= 0), clusters, torch.full_like(clusters, -1))
    return AggregationResult(clusters, labels, agreement, kept, counts)

"""Prototype inference (Proto-SaGa Sec. 3.3, Eq. 17-19) and the alternatives of its Tab. 4.

A view's prototype of instance ``t`` is the masked average of its rendered feature map over the
pixels its consistent map gives ``t`` (Eq. 17); the instance's prototype averages those over the
views that show it (Eq. 18). A pixel of any view takes the prototype of largest cosine with its
rendered feature (Eq. 19), a Gaussian the one of largest cosine with its own embedding; the
softmax of ``tau * cos`` is the confidence. Tab. 4's "K-means" clusters the per-view prototypes
into as many classes as the association found (k-means++, scikit-learn) and uses the centres.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ...engine import Projection, render


@dataclass
class Prototypes:
    ids: Tensor  # [T] int64 instance id of each row
    vectors: Tensor  # [T, D] v(t), Eq. 18
    per_view: Tensor  # [S, D] every v_k(t) (Eq. 17), one row per (view, instance) seen
    per_view_ids: Tensor  # [S] int64 the instance of each row
    views: Tensor  # [T] int64 number of views K that show each instance


def cosine_logits(weights: Tensor, feats: Tensor, tau: float) -> Tensor:  # [L, D], [P, D] -> [P, L]
    """``tau * cos(w_l, F_p)`` (Eq. 6, 14, 19).

    Args:
        weights: [L, D] classifier rows or prototypes.
        feats: [P, D] rendered (or Gaussian) features.
    """
    return tau * F.normalize(feats, dim=-1, eps=1e-12) @ F.normalize(weights, dim=-1, eps=1e-12).T


@torch.no_grad()
def view_prototypes(feature_map: Tensor, ids_map) -> tuple[Tensor, Tensor]:  # [H, W, D], [H, W] -> [T], [T, D]
    """Eq. 17 for one view: masked average pooling of ``feature_map`` per id of ``ids_map`` (-1 skipped).

    Args:
        feature_map: [H, W, D] the view's rendered features.
        ids_map: [H, W] int instance id per pixel, -1 = skipped (any array-like).
    """
    ids_map = torch.as_tensor(np.asarray(ids_map)).reshape(-1).long()
    feats = feature_map.reshape(len(ids_map), -1)
    keep = ids_map >= 0
    ids, inv = torch.unique(ids_map[keep], return_inverse=True)
    sums = torch.zeros(len(ids), feats.shape[1]).index_add_(0, inv, feats[keep])
    counts = torch.bincount(inv, minlength=len(ids)).clamp_min(1)
    return ids, sums / counts[:, None]


@torch.no_grad()
def prototypes(views: Iterable[tuple[Projection, object]], features: Tensor,  # [N, D]
               backend: str = "auto") -> Prototypes:
    """Eq. 17-18 over ``views`` = ``(Projection, consistent map [H, W] int)``: each view's feature map
    is rendered once and pooled per instance; prototypes average over the views showing an instance.

    Args:
        views: [V] of (projection, consistent map [H, W] int, -1 = none).
        features: [N, D] per-Gaussian embeddings.
    """
    rows, row_ids = [], []
    for proj, ids_map in views:
        ids, protos = view_prototypes(render(proj, features, backend=backend).features, ids_map)
        rows.append(protos)
        row_ids.append(ids)
    if not rows:
        raise ValueError("no views to pool")
    per_view, per_view_ids = torch.cat(rows), torch.cat(row_ids)
    ids, inv = torch.unique(per_view_ids, return_inverse=True)
    sums = torch.zeros(len(ids), per_view.shape[1]).index_add_(0, inv, per_view)
    counts = torch.bincount(inv, minlength=len(ids))
    return Prototypes(ids, sums / counts.clamp_min(1)[:, None], per_view, per_view_ids, counts)


def kmeans_classes(protos: Prototypes, seed: int = 0) -> tuple[Tensor, Tensor]:  # -> ids [T], centres [T, D]
    """Tab. 4 "K-means": the per-view prototypes (unit length, so Euclidean k-means ranks by cosine)
    clustered into as many classes as there are instances; returns class ids 0..T-1 and centres."""
    from sklearn.cluster import KMeans

    x = F.normalize(protos.per_view, dim=-1).numpy().astype(np.float64)
    k = min(len(protos.ids), len(x))
    km = KMeans(n_clusters=k, init="k-means++", n_init=4, random_state=seed).fit(x)
    return torch.arange(k), torch.as_tensor(km.cluster_centers_, dtype=torch.float32)


@torch.no_grad()
def classify(feats: Tensor, ids: Tensor, vectors: Tensor, tau: float = 10.0) -> tuple[Tensor, Tensor]:
    """Eq. 19: ``argmax_t cos(v(t), F)`` for rows ``feats`` [P, D] -> (ids [P], softmax confidence [P]).

    Args:
        feats: [P, D] features to label.
        ids: [T] int64 instance id of each prototype.
        vectors: [T, D] the prototypes.
    """
    if len(ids) == 0:
        return torch.full((feats.shape[0],), -1, dtype=torch.long), torch.zeros(feats.shape[0])
    logits = cosine_logits(vectors, feats, tau)
    conf, best = torch.softmax(logits, dim=-1).max(dim=-1)
    return ids[best], conf


@torch.no_grad()
def label_view(proj: Projection, features: Tensor, ids: Tensor, vectors: Tensor, *,  # features [N, D]
               min_alpha: float = 0.5, backend: str = "auto") -> np.ndarray:  # -> [H, W] int64
    """Eq. 19 on a whole view: render the features, label every pixel; pixels whose alpha is below
    ``min_alpha`` are background (-1), the rule :func:`gs_core.labelmaps.render_labels` uses.

    Args:
        features: [N, D] per-Gaussian embeddings.
        ids: [T] int64 instance id of each prototype.
        vectors: [T, D] the prototypes.
    """
    out = render(proj, features, backend=backend)
    labels, _ = classify(out.features.reshape(-1, features.shape[1]), ids, vectors)
    labels = labels.reshape(proj.height, proj.width)
    return torch.where(out.alpha >= min_alpha, labels, torch.full_like(labels, -1)).numpy()

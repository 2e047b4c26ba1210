"""Label maps: per-Gaussian labels rendered to per-pixel labels, and SAM mask stacks flattened to
one label per pixel.

The label of a pixel is the label whose Gaussians carry the largest summed blending weight
``sum_g w_{p,g} [label_g = l]`` there (Gaussians without a label, -1, form a class of their own);
pixels whose alpha is below ``min_alpha`` are background (-1). Ground-truth instance maps of the
synthetic world and the instance maps of every method are rendered with this one rule.
"""

from __future__ import annotations

import numpy as np
import torch

from .engine import Projection, render


def labels_from_weights(weights: torch.Tensor, classes: torch.Tensor, alpha: torch.Tensor,
                        min_alpha: float = 0.5) -> np.ndarray:
    """``weights`` [H, W, C] per class ``classes`` [C] -> [H, W] label of the heaviest class,
    -1 where ``alpha`` [H, W] < ``min_alpha``. Ties go to the earlier class.

    Args:
        weights: [H, W, C] summed blending weight of each class.
        classes: [C] int64 the label of each class.
        alpha: [H, W] rendered alpha.
    """
    best = classes[weights.argmax(dim=-1)]
    return torch.where(alpha >= min_alpha, best, torch.full_like(best, -1)).cpu().numpy()


NO_LABEL = np.iinfo(np.int64).max  # no label in this (tile, channel)


def label_channels(proj: Projection, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature channels for rendering per-Gaussian ``labels``: one channel per colour of a colouring
    of the labels in which two labels blended into a common tile differ (greedy, the labels in most
    tiles first). A pixel only receives the weights of its tile's Gaussians, so a channel's sum there
    is the summed weight of at most one label, the one ``lookup`` names: rendering the K channels
    gives every label's weight at every pixel (:func:`labels_from_channels`), and K is the most
    labels the colouring puts in one tile, not the labels the view shows.

    Args:
        labels: [N] int64 label per Gaussian (-1 included: it is a class like the others).

    Returns ``(channel, lookup)``: channel [N] int64, the Gaussian's channel (-1: never blended);
    lookup [tiles, K] int64, the label of each (tile, channel), :data:`NO_LABEL` where none.
    """
    T = proj.tiles_x * proj.tiles_y
    ids = proj.flat_ids.long()
    tile = torch.repeat_interleave(torch.arange(T, device=ids.device), proj.tile_offsets.diff())
    classes, inv = torch.unique(labels[ids], return_inverse=True)
    C = len(classes)
    pairs = torch.unique(tile * C + inv).cpu().numpy()  # (tile, class) blended together, by class
    tiles_of, cls_of = pairs // C, pairs % C
    by_cls = np.argsort(cls_of, kind="stable")
    bounds = np.searchsorted(cls_of[by_cls], np.arange(C + 1))
    used = np.zeros((T, 8), bool)  # [tile, colour] taken
    colour = np.zeros(C, np.int64)
    for c in np.argsort(-np.diff(bounds), kind="stable"):
        ts = tiles_of[by_cls[bounds[c]:bounds[c + 1]]]
        free = np.flatnonzero(~used[ts].any(axis=0))
        if len(free) == 0:
            free = np.array([used.shape[1]])
            used = np.concatenate([used, np.zeros_like(used)], axis=1)
        colour[c] = free[0]
        used[ts, free[0]] = True
    K = int(colour.max()) + 1 if C else 0
    lookup = np.full((T, K), NO_LABEL, np.int64)
    lookup[tiles_of, colour[cls_of]] = classes.cpu().numpy()[cls_of]
    channel = torch.full_like(labels, -1)
    if C:
        pos = torch.searchsorted(classes, labels).clamp_max(C - 1)
        present = classes[pos] == labels
        channel[present] = torch.as_tensor(colour, device=labels.device)[pos[present]]
    return channel, torch.as_tensor(lookup, device=labels.device)


def _heaviest(proj: Projection, weights: torch.Tensor, lookup: torch.Tensor, best_w: torch.Tensor | None = None,
              best: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pixel the heaviest label of the channels ``weights`` [H, W, k] whose labels per tile are
    ``lookup`` [tiles, k], ties to the smaller label; folded into an earlier ``(best_w, best)``."""
    H, W = proj.height, proj.width
    ts = proj.tile_size
    y, x = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    lab = lookup[(y // ts) * proj.tiles_x + x // ts]  # [H, W, k]
    w_max = weights.max(dim=-1).values
    cand = torch.where(weights == w_max[..., None], lab, torch.full_like(lab, NO_LABEL)).min(dim=-1).values
    if best_w is None:
        return w_max, cand
    better = (w_max > best_w) | ((w_max == best_w) & (cand < best))
    return torch.where(better, w_max, best_w), torch.where(better, cand, best)


def labels_from_channels(proj: Projection, weights: torch.Tensor, lookup: torch.Tensor, alpha: torch.Tensor,
                         min_alpha: float = 0.5) -> np.ndarray:
    """The label map of a render of :func:`label_channels`' channels: per pixel the label of the
    largest summed weight (ties to the smaller label), -1 where ``alpha`` < ``min_alpha``.

    Args:
        weights: [H, W, K] the rendered channels.
        lookup: [tiles, K] int64 from :func:`label_channels`.
        alpha: [H, W] rendered alpha.
    """
    if lookup.shape[1] == 0:
        return np.full((proj.height, proj.width), -1, np.int64)
    _, best = _heaviest(proj, weights, lookup)
    return torch.where((alpha >= min_alpha) & (best != NO_LABEL), best, torch.full_like(best, -1)).cpu().numpy()


@torch.no_grad()
def render_labels(proj: Projection, labels: np.ndarray | torch.Tensor, *, min_alpha: float = 0.5, chunk: int = 256,
                  backend: str = "auto") -> np.ndarray:  # -> [H, W] int64, -1 = background/unlabelled
    """Render per-Gaussian integer ``labels`` [N] (-1 = none) to a label map of ``proj``'s view.

    Labels that no tile blends together share a feature channel (:func:`label_channels`), rendered
    ``chunk`` channels at a time, so the cost grows with the labels that overlap on screen, not with
    those the view shows. Ties go to the smaller label.

    Args:
        labels: [N] int label per Gaussian, -1 = none (array or tensor).
    """
    labels = torch.as_tensor(np.asarray(labels), device=proj.means2d.device).long()
    if labels.shape != (proj.num_gaussians,):
        raise ValueError(f"labels must be [{proj.num_gaussians}], got {tuple(labels.shape)}")
    channel, lookup = label_channels(proj, labels)
    K = lookup.shape[1]
    if K == 0:  # nothing in view: all background
        return np.full((proj.height, proj.width), -1, np.int64)
    best_w = best = alpha = None
    for start in range(0, K, chunk):
        cols = torch.arange(start, min(start + chunk, K), device=labels.device)
        out = render(proj, (channel[:, None] == cols[None, :]).float(), backend=backend)
        alpha = out.alpha
        best_w, best = _heaviest(proj, out.features, lookup[:, start:start + len(cols)], best_w, best)
    return torch.where((alpha >= min_alpha) & (best != NO_LABEL), best, torch.full_like(best, -1)).cpu().numpy()


def masks_to_labels(masks: np.ndarray) -> np.ndarray:  # masks [M, H, W] bool -> [H, W] int64
    """One label per pixel from a possibly overlapping stack: the index of the smallest mask that
    covers the pixel (small masks drawn over large ones, as SAM's viewers do); -1 = uncovered.

    Args:
        masks: [M, H, W] bool, possibly overlapping.
    """
    masks = np.asarray(masks, dtype=bool)
    out = np.full(masks.shape[1:], -1, dtype=np.int64)
    for m in np.argsort(-masks.reshape(len(masks), -1).sum(1), kind="stable"):
        out[masks[m]] = m
    return out

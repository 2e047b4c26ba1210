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


@torch.no_grad()
def render_labels(proj: Projection, labels: np.ndarray | torch.Tensor, *, min_alpha: float = 0.5, chunk: int = 256,
                  backend: str = "auto") -> np.ndarray:  # -> [H, W] int64, -1 = background/unlabelled
    """Render per-Gaussian integer ``labels`` [N] (-1 = none) to a label map of ``proj``'s view.

    One-hot columns are rendered in chunks of ``chunk`` labels (only labels of Gaussians inside
    the view), so the cost grows with the number of labels a view shows, not with the total.

    Args:
        labels: [N] int label per Gaussian, -1 = none (array or tensor).
    """
    labels = torch.as_tensor(np.asarray(labels), device=proj.means2d.device).long()
    if labels.shape != (proj.num_gaussians,):
        raise ValueError(f"labels must be [{proj.num_gaussians}], got {tuple(labels.shape)}")
    classes = torch.unique(labels[proj.visible])
    H, W = proj.height, proj.width
    best_w = torch.full((H, W), -1.0)
    best = torch.full((H, W), -1, dtype=torch.long)
    alpha = torch.zeros(H, W)  # nothing in view: all background
    for start in range(0, len(classes), chunk):
        cls = classes[start:start + chunk]
        out = render(proj, (labels[:, None] == cls[None, :]).float(), backend=backend)
        alpha = out.alpha
        w, k = out.features.max(dim=-1)
        better = w > best_w
        best = torch.where(better, cls[k], best)
        best_w = torch.where(better, w, best_w)
    return torch.where(alpha >= min_alpha, best, torch.full_like(best, -1)).numpy()


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

"""Self-prompting (the online setting of Trace3D Sec. 3.5, SA3D, FlashSplat): from clicks in one view
to a 3D selection, with SAM's point predictor asked again in view after view.

1. SAM answers the user's positive / negative clicks in the reference view with a mask.
2. The mask is traced onto the Gaussians (GIT with a binary label map): per Gaussian its weight
   inside the mask and over the whole view, summed over the views so far; a Gaussian is selected
   when more than ``share`` of its summed weight fell inside masks (a majority vote over views, so
   one bad mask does not decide).
3. The selection is rendered into the next view (the unused view nearest in pose to the used ones,
   so the object is seen from gradually new sides); confident interior pixels become positive
   prompts (distance-transform maxima, spread apart), confidently rejected pixels near it become
   negatives (Gaussians traced and rejected before: the table under the clicked cup).
4. SAM again, trace, accumulate; stop when the selection changed by less than ``change_tol`` in
   ``stable_views`` views in a row, or the views run out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import ndimage

from .camera import Camera
from .engine import project, render, trace


@dataclass
class SelfPromptConfig:
    positives: int = 3  # prompts placed per new view
    negatives: int = 2
    confident: float = 0.8  # rendered share of the selection for a positive pixel (of rejection for a negative)
    share: float = 0.5  # a Gaussian is selected when more than this share of its traced weight lies in masks
    min_pixels: int = 16  # a view where the selection covers fewer confident pixels is skipped
    change_tol: float = 0.01  # selection change (symmetric difference / size) counted as stable
    stable_views: int = 2
    max_views: int | None = None
    backend: str = "auto"


@dataclass
class SelfPromptResult:
    selected: np.ndarray  # [N] bool
    score: np.ndarray  # [N] float: weight inside masks / traced weight, summed over views
    views: list[int]  # views SAM was asked in, in order
    prompts: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # view -> (points, labels)
    changes: list[float] = field(default_factory=list)  # selection change after each view


def pose_order(cameras: list[Camera], start: int) -> list[int]:
    """Views from ``start``, each next the unused one nearest in pose to any used one."""
    from .viewselect import pose_features

    f = pose_features(cameras)
    order, left = [start], set(range(len(cameras))) - {start}
    dist = np.linalg.norm(f - f[start], axis=1)
    while left:
        k = min(left, key=lambda j: dist[j])
        order.append(k)
        left.discard(k)
        dist = np.minimum(dist, np.linalg.norm(f - f[k], axis=1))
    return order


def spread_points(region: np.ndarray, count: int) -> np.ndarray:  # region [H, W] bool -> [<=count, 2] (x, y)
    """Interior points of ``region``: the deepest pixel (distance-transform maximum), then pixels
    maximising depth times distance to the points already taken."""
    if count <= 0 or not region.any():
        return np.zeros((0, 2), np.int64)
    depth = ndimage.distance_transform_edt(region)
    ys, xs = np.nonzero(region)
    d = depth[ys, xs]
    chosen = [int(np.argmax(d))]
    far = np.hypot(xs - xs[chosen[0]], ys - ys[chosen[0]])
    while len(chosen) < min(count, len(xs)):
        k = int(np.argmax(d * far))
        if far[k] <= 0:
            break
        chosen.append(k)
        far = np.minimum(far, np.hypot(xs - xs[k], ys - ys[k]))
    return np.stack([xs[chosen], ys[chosen]], axis=1).astype(np.int64)


def view_prompts(proj, selected: np.ndarray, rejected: np.ndarray, config: SelfPromptConfig):
    """Positive and negative point prompts for a view from the current selection (rendered)."""
    feats = torch.from_numpy(np.stack([selected, rejected], axis=1).astype(np.float32))
    out = render(proj, feats, backend=config.backend).features.numpy()  # [H, W, 2] blended shares
    pos_region = out[..., 0] > config.confident
    if pos_region.sum() < config.min_pixels:
        return None
    pos = spread_points(pos_region, config.positives)
    near = ndimage.binary_dilation(out[..., 0] > 0.5, iterations=max(3, int(0.1 * max(out.shape[:2]))))
    neg = spread_points((out[..., 1] > config.confident) & near, config.negatives)
    points = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)])
    return points, labels


@torch.no_grad()
def self_prompt(gaussians, cameras: list[Camera], predict_view: Callable, ref_view: int, positive: np.ndarray,
                negative: np.ndarray | None = None, config: SelfPromptConfig = SelfPromptConfig(),
                progress: Callable[[str, int, int], None] | None = None) -> SelfPromptResult:
    """Self-prompting from clicks ``positive`` / ``negative`` [P, 2] (x, y) in ``cameras[ref_view]``.

    ``predict_view(k, points [P, 2], labels [P])`` -> ``(mask [H, W] bool, score)``: SAM's point
    predictor on view ``k`` (:class:`gs_core.models.sam.SamPointPredictor` with the view's image,
    or the benchmark's stand-in).
    """
    from .query import mask_weights

    say = progress or (lambda stage, done, total: None)
    n = len(gaussians)
    inside, total = np.zeros(n), np.zeros(n)
    negative = np.zeros((0, 2), np.int64) if negative is None else np.asarray(negative, np.int64).reshape(-1, 2)
    positive = np.asarray(positive, np.int64).reshape(-1, 2)
    order = pose_order(cameras, ref_view)
    if config.max_views is not None:
        order = order[:config.max_views]
    selected = np.zeros(n, bool)
    result = SelfPromptResult(selected, np.zeros(n), [])
    stable = 0
    for step, k in enumerate(order):
        say("self-prompting", step, len(order))
        proj = project(gaussians, cameras[k])
        if k == ref_view:
            points = np.concatenate([positive, negative])
            labels = np.concatenate([np.ones(len(positive), np.int64), np.zeros(len(negative), np.int64)])
        else:
            rejected = (total > 0) & ~selected
            prompts = view_prompts(proj, selected, rejected, config)
            if prompts is None:
                continue
            points, labels = prompts
        mask, _ = predict_view(k, points, labels)
        mask = np.asarray(mask, bool)
        if not mask.any():
            continue
        w_in, w_all = mask_weights(proj, mask, backend=config.backend)
        inside += w_in
        total += w_all
        score = inside / np.maximum(total, 1e-30)
        new = (total > 0) & (score > config.share)
        change = (new ^ selected).sum() / max(int(selected.sum()), 1)
        result.views.append(k)
        result.prompts[k] = (points, labels)
        result.changes.append(float(change) if k != ref_view else 1.0)
        selected = new
        stable = stable + 1 if (k != ref_view and change < config.change_tol) else 0
        if stable >= config.stable_views:
            break
    say("self-prompting", len(order), len(order))
    result.selected, result.score = selected, inside / np.maximum(total, 1e-30)
    return result

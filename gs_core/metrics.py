"""Segmentation metrics, each following the protocol of the paper whose table it reproduces.

* :func:`novel_view_segmentation` — mIoU / mAcc of one queried object at held-out views
  (Trace3D Tab. 3 and 4, the SA3D / NVOS protocol);
* :func:`object_extraction` — mIoU and PSNR of the selected Gaussians rendered alone against the
  ground-truth object rendered alone (Trace3D Tab. 2, Sec. 4.1);
* :func:`panoptic_scores` — instance mIoU with Hungarian matching, precision and recall (Gaga's
  protocol as used by Proto-SaGa Tab. 1); per-view matching and prediction-averaged IoU (IQGS);
* :func:`association_scores` — the same scores for consistent (associated) training masks
  against ground truth (Proto-SaGa Tab. 3).

All inputs are numpy arrays; label maps use -1 for "no label".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

PSNR_CAP_MSE = 1e-10  # identical images score 100 dB instead of infinity, so means stay finite


@dataclass
class BinaryScores:
    miou: float  # mean IoU over views where the object is visible
    macc: float  # mean pixel accuracy (foreground and background) over the same views
    views: int  # number of views averaged

    def to_json(self) -> dict:
        return asdict(self)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """``|pred & gt| / |pred | gt|`` of two boolean arrays; NaN when both are empty."""
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else float("nan")


def novel_view_segmentation(pred: np.ndarray, gt: np.ndarray) -> BinaryScores:
    """Binary segmentation of one queried object at novel views (Trace3D Tab. 3/4, SA3D protocol).

    ``pred``, ``gt``: [V, H, W] bool. Per view IoU = |P n G| / |P u G| and accuracy = share of
    pixels where P equals G; both averaged over the views in which the object is visible
    (G not empty). NaN when it is visible in none.
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be [V, H, W], got {pred.shape} and {gt.shape}")
    seen = gt.reshape(len(gt), -1).any(1)
    if not seen.any():
        return BinaryScores(float("nan"), float("nan"), 0)
    ious = [iou(p, g) for p, g in zip(pred[seen], gt[seen])]
    accs = (pred[seen] == gt[seen]).reshape(int(seen.sum()), -1).mean(1)
    return BinaryScores(float(np.mean(ious)), float(np.mean(accs)), int(seen.sum()))


def psnr(pred: np.ndarray, gt: np.ndarray, peak: float = 1.0) -> float:
    """``10 log10(peak^2 / MSE)``; MSE floored at :data:`PSNR_CAP_MSE` (100 dB for peak 1)."""
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(gt, np.float64)) ** 2))
    return float(10 * np.log10(peak**2 / max(mse, PSNR_CAP_MSE)))


@dataclass
class ExtractionScores:
    miou: float  # mean silhouette IoU over views
    psnr: float  # mean PSNR (dB) of the object rendered alone over a black background
    views: int

    def to_json(self) -> dict:
        return asdict(self)


def object_extraction(pred_rgb: np.ndarray, pred_alpha: np.ndarray, gt_rgb: np.ndarray, gt_alpha: np.ndarray,
                      min_alpha: float = 0.5) -> ExtractionScores:
    """3D object extraction (Trace3D Tab. 2): the Gaussians a method selected for an object,
    rendered alone at test views, against the object's true Gaussians rendered alone.

    ``*_rgb`` [V, H, W, 3] premultiplied colour (black background), ``*_alpha`` [V, H, W]. Mask
    IoU compares the silhouettes ``alpha >= min_alpha``; PSNR compares the colours. Both are
    averaged over the views where the true object is on screen, and include what occluders would
    hide: leftover background splats and missing back sides both count.
    """
    pred_rgb, gt_rgb = np.asarray(pred_rgb), np.asarray(gt_rgb)
    pred_alpha, gt_alpha = np.asarray(pred_alpha), np.asarray(gt_alpha)
    if pred_rgb.shape != gt_rgb.shape or pred_alpha.shape != gt_alpha.shape or pred_rgb.shape[:3] != pred_alpha.shape:
        raise ValueError("pred/gt rgb must be [V, H, W, 3] and alpha [V, H, W], all of the same V, H, W")
    gt_mask, pred_mask = gt_alpha >= min_alpha, pred_alpha >= min_alpha
    seen = gt_mask.reshape(len(gt_mask), -1).any(1)
    if not seen.any():
        return ExtractionScores(float("nan"), float("nan"), 0)
    ious = [iou(p, g) for p, g in zip(pred_mask[seen], gt_mask[seen])]
    psnrs = [psnr(p, g) for p, g in zip(pred_rgb[seen], gt_rgb[seen])]
    return ExtractionScores(float(np.mean(ious)), float(np.mean(psnrs)), int(seen.sum()))


@dataclass
class PanopticScores:
    miou: float  # mean over GT segments of the IoU of their match (0 when unmatched): Gaga, Proto-SaGa
    precision: float  # matches with IoU > threshold / predicted segments
    recall: float  # matches with IoU > threshold / GT segments
    miou_pred: float  # mean over predicted segments of the IoU of their match (0 when unmatched): IQGS
    tp: int
    n_pred: int
    n_gt: int

    def to_json(self) -> dict:
        return asdict(self)


def _match(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Hungarian matching (maximum total IoU) of the segments of two flat label arrays over the
    pixels where ``gt >= 0``. Returns the IoUs of the matched pairs and the segment counts."""
    valid = gt >= 0
    pred, gt = pred[valid], gt[valid]
    gt_ids, gt_idx = np.unique(gt, return_inverse=True)
    has_pred = pred >= 0
    pred_ids, pred_idx = np.unique(pred[has_pred], return_inverse=True)
    n_p, n_g = len(pred_ids), len(gt_ids)
    if n_p == 0 or n_g == 0:
        return np.zeros(0), n_p, n_g
    inter = np.bincount(pred_idx * n_g + gt_idx[has_pred], minlength=n_p * n_g).reshape(n_p, n_g)
    area_p = np.bincount(pred_idx, minlength=n_p)
    area_g = np.bincount(gt_idx, minlength=n_g)
    ious = inter / (area_p[:, None] + area_g[None, :] - inter)
    rows, cols = linear_sum_assignment(ious, maximize=True)
    return ious[rows, cols], n_p, n_g


def panoptic_scores(pred: np.ndarray, gt: np.ndarray, *, per_view: bool = False,
                    iou_threshold: float = 0.5) -> PanopticScores:
    """Instance segmentation of every object at once (Gaga protocol, Proto-SaGa Tab. 1; IQGS Tab. 1).

    ``pred``, ``gt``: [V, H, W] int label maps. Pixels where ``gt`` is -1 (background, no
    annotation) are ignored; ``pred`` -1 is "no instance". Predicted and GT segments are matched
    one-to-one by the Hungarian algorithm on IoU:

    * ``per_view=False`` (Gaga, Proto-SaGa): a segment is an id over all views together, so an
      object whose id changes between views is matched in part only — consistency is scored;
    * ``per_view=True`` (IQGS): each view is matched on its own; counts are summed over views.

    A match with IoU > ``iou_threshold`` is a true positive; precision = TP / predicted segments,
    recall = TP / GT segments (0 when there are none).
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 3:
        raise ValueError(f"pred and gt must both be [V, H, W], got {pred.shape} and {gt.shape}")
    groups = [(p.reshape(-1), g.reshape(-1)) for p, g in zip(pred, gt)] if per_view else \
        [(pred.reshape(-1), gt.reshape(-1))]
    matched, n_pred, n_gt = [], 0, 0
    for p, g in groups:
        ious, n_p, n_g = _match(p, g)
        matched.append(ious)
        n_pred, n_gt = n_pred + n_p, n_gt + n_g
    ious = np.concatenate(matched)
    tp = int((ious > iou_threshold).sum())
    return PanopticScores(miou=float(ious.sum() / n_gt) if n_gt else 0.0,
                          precision=tp / n_pred if n_pred else 0.0, recall=tp / n_gt if n_gt else 0.0,
                          miou_pred=float(ious.sum() / n_pred) if n_pred else 0.0, tp=tp, n_pred=n_pred, n_gt=n_gt)


def association_scores(pred: np.ndarray, gt: np.ndarray, iou_threshold: float = 0.5) -> PanopticScores:
    """Quality of consistent (associated) training masks (Proto-SaGa Tab. 3).

    ``pred`` [V, H, W]: a method's instance ids on the training views, meant to be the same id for
    the same object in every view; ``gt`` [V, H, W]: ground-truth object ids. Scored like
    :func:`panoptic_scores` with one matching over all views, so a correct mask carrying a
    different id in each view counts as a single view's worth of that object.
    """
    return panoptic_scores(pred, gt, per_view=False, iou_threshold=iou_threshold)

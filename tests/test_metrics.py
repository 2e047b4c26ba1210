"""Each metric on hand-made cases whose answers are worked out by hand."""

import math

import numpy as np
import pytest

from gs_core.metrics import (association_scores, iou, novel_view_segmentation, object_extraction,
                             panoptic_scores, psnr)


def test_iou():
    a = np.array([1, 1, 1, 0, 0], bool)
    b = np.array([0, 1, 1, 1, 0], bool)
    assert iou(a, b) == pytest.approx(2 / 4)
    assert iou(a, a) == 1.0
    assert math.isnan(iou(np.zeros(3, bool), np.zeros(3, bool)))


def test_novel_view_segmentation_averages_views_showing_the_object():
    gt = np.zeros((3, 2, 5), bool)
    gt[0, 0, :4] = True  # view 0: 4 px
    gt[1, :, 0] = True  # view 1: 2 px
    pred = np.zeros_like(gt)
    pred[0, 0, :2] = True  # IoU 2/4, accuracy 8/10
    pred[1, :, 0] = True  # IoU 1, accuracy 1
    pred[2, 1, 1] = True  # view 2 has no object: not counted
    s = novel_view_segmentation(pred, gt)
    assert s.views == 2
    assert s.miou == pytest.approx((0.5 + 1.0) / 2)
    assert s.macc == pytest.approx((0.8 + 1.0) / 2)
    assert math.isnan(novel_view_segmentation(pred, np.zeros_like(gt)).miou)
    with pytest.raises(ValueError):
        novel_view_segmentation(pred[0], gt[0])


def test_psnr():
    a = np.zeros((4, 4, 3))
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    assert psnr(a, a) == pytest.approx(100.0)
    assert psnr(a + 25.5, a, peak=255.0) == pytest.approx(20.0)


def test_object_extraction():
    gt_alpha = np.zeros((2, 4, 4), np.float32)
    gt_alpha[0, :2, :2] = 1.0  # 4 px silhouette in view 0, nothing in view 1
    gt_rgb = gt_alpha[..., None] * np.array([0.5, 0.5, 0.5], np.float32)
    pred_alpha = gt_alpha.copy()
    pred_alpha[0, 3, 3] = 0.9  # one extra pixel: IoU 4/5
    pred_alpha[0, 0, 0] = 0.4  # below 0.5: one pixel missing: IoU 3/5
    pred_rgb = gt_rgb.copy()
    pred_rgb[0, 3, 3] = 0.1 * 0.9  # colour error on the extra pixel
    pred_alpha[1, 1, 1] = 1.0  # view 1 does not count: the object is off screen there
    s = object_extraction(pred_rgb, pred_alpha, gt_rgb, gt_alpha)
    assert s.views == 1
    assert s.miou == pytest.approx(3 / 5)
    mse = 3 * 0.09**2 / (4 * 4 * 3)
    assert s.psnr == pytest.approx(10 * math.log10(1 / mse))


def _maps(*rows):
    return np.array(rows, dtype=np.int64)[:, None, :]  # [V, 1, W]


def test_panoptic_perfect_up_to_renaming():
    gt = _maps([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 2])
    pred = np.where(gt >= 0, gt * 10 + 7, -1)  # the same segments under other ids
    s = panoptic_scores(pred, gt)
    assert (s.miou, s.precision, s.recall, s.miou_pred) == (1.0, 1.0, 1.0, 1.0)
    assert (s.tp, s.n_pred, s.n_gt) == (3, 3, 3)


def test_panoptic_split_and_merge():
    # one view; GT: A = 6 px, B = 2 px, C = 2 px
    gt = _maps([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    # prediction: A cut into 4 + 2 (ids 5, 6); B and C merged (id 7)
    pred = _maps([5, 5, 5, 5, 6, 6, 7, 7, 7, 7])
    s = panoptic_scores(pred, gt)
    # Hungarian: A-5 (4/6), then B-7 or C-7 (2/4) and the other GT gets 6 (IoU 0) or nothing
    assert s.n_pred == 3 and s.n_gt == 3
    assert s.tp == 1  # only A-5 has IoU > 0.5 (0.5 itself is not a true positive)
    assert s.miou == pytest.approx((4 / 6 + 2 / 4) / 3)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(1 / 3)
    assert s.miou_pred == pytest.approx((4 / 6 + 2 / 4) / 3)


def test_panoptic_matching_is_one_to_one_and_optimal():
    # GT A = 10 px, B = 4 px; prediction X = 6 px of A + all of B, Y = the other 4 px of A.
    gt = _maps([0] * 10 + [1] * 4)
    pred = _maps([8] * 6 + [9] * 4 + [8] * 4)
    s = panoptic_scores(pred, gt)
    # IoU X-A = 6/14, X-B = 4/10, Y-A = 4/10. Greedy (largest first) would pair X-A and leave B
    # unmatched (total 6/14); the Hungarian assignment X-B + Y-A totals 0.8.
    assert s.miou == pytest.approx(0.8 / 2)
    assert s.tp == 0


def test_panoptic_ignores_background_and_counts_missing_predictions():
    gt = _maps([-1, -1, 0, 0, 1, 1])
    pred = _maps([3, 3, 3, 3, -1, -1])  # id 3 spills onto background (ignored); B unpredicted
    s = panoptic_scores(pred, gt)
    assert s.n_pred == 1 and s.n_gt == 2
    assert s.miou == pytest.approx(0.5) and s.recall == pytest.approx(0.5) and s.precision == 1.0


def test_scene_matching_scores_consistency_per_view_does_not():
    gt = _maps([0, 0, 1, 1], [0, 0, 1, 1])
    pred = _maps([4, 4, 5, 5], [6, 6, 7, 7])  # right masks, new ids in the second view
    scene = panoptic_scores(pred, gt)
    view = panoptic_scores(pred, gt, per_view=True)
    assert scene.miou == pytest.approx(0.5) and scene.tp == 0  # IoU 0.5 is not > 0.5
    assert scene.precision == 0.0 and scene.n_pred == 4
    assert view.miou == 1.0 and view.tp == 4 and view.n_gt == 4 and view.precision == 1.0
    assert association_scores(pred, gt) == scene


def test_iqgs_miou_counts_unmatched_predictions_as_zero():
    gt = _maps([0, 0, 0, 0])
    pred = _maps([1, 1, 1, 2])  # a spurious extra segment
    s = panoptic_scores(pred, gt, per_view=True)
    assert s.miou == pytest.approx(3 / 4)
    assert s.miou_pred == pytest.approx(3 / 4 / 2)


def test_panoptic_shape_check():
    with pytest.raises(ValueError):
        panoptic_scores(np.zeros((2, 3)), np.zeros((2, 3)))

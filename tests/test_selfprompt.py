"""Self-prompting with the ground-truth stand-in predictor on a tiny synthetic table top."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from gs_core.dataset import Dataset
from gs_core.selfprompt import SelfPromptConfig, pose_order, self_prompt, spread_points
from gs_core.synth import GroundTruth, MaskNoise, SynthConfig, build_dataset
from gs_core.synth.standins import GTPointPredictor


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("sp") / "ds"
    build_dataset(root, SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.0))
    ds, gt = Dataset.load(root), GroundTruth.load(root)
    train = [ds.names.index(n) for n in gt.train]
    return ds, gt, train, ds.load_scene().to_gaussians()


def test_spread_points_are_interior_and_apart():
    region = np.zeros((20, 30), bool)
    region[5:15, 5:25] = True
    pts = spread_points(region, 3)
    assert len(pts) == 3 and region[pts[:, 1], pts[:, 0]].all()
    depth = ndimage.distance_transform_edt(region)
    assert depth[pts[0, 1], pts[0, 0]] == depth.max() == 5  # a deepest pixel first
    assert min(np.hypot(*(pts[i] - pts[j])) for i in range(3) for j in range(i)) > 4
    assert len(spread_points(np.zeros((4, 4), bool), 3)) == 0


def test_pose_order_starts_at_the_reference_and_visits_all(table):
    ds, _, train, _ = table
    cams = [ds.cameras[v] for v in train]
    order = pose_order(cams, 2)
    assert order[0] == 2 and sorted(order) == list(range(len(cams)))


@pytest.mark.parametrize("noise", [0.0, 1.0])
def test_self_prompting_recovers_the_clicked_object(table, noise):
    ds, gt, train, gaussians = table
    cams = [ds.cameras[v] for v in train]
    predictor = GTPointPredictor(gt, [ds.names[v] for v in train], MaskNoise.level(noise), seed=1)
    chair = next(o.id for o in gt.hierarchy.objects if o.name == "chair_0")
    areas = [(gt.instance_map(ds.names[v]) == chair).sum() for v in train]
    k = int(np.argmax(areas))
    mask = gt.instance_map(ds.names[train[k]]) == chair
    y, x = np.unravel_index(np.argmax(ndimage.distance_transform_edt(mask)), mask.shape)
    res = self_prompt(gaussians, cams, predictor.predict_view, k, np.array([[x, y]]), config=SelfPromptConfig())
    truth = gt.gaussians.clean & (gt.gaussians.object == chair)
    iou = (res.selected & truth).sum() / (res.selected | truth).sum()
    assert res.views[0] == k and len(res.views) >= 2 and predictor.calls == len(res.prompts)
    # every later view was prompted from the rendered selection: positives inside the chair's GT mask
    for view, (points, labels) in list(res.prompts.items())[1:]:
        gt_map = gt.instance_map(ds.names[train[view]])
        pos = points[labels == 1]
        assert (gt_map[pos[:, 1], pos[:, 0]] == chair).mean() >= 0.5
    assert iou > (0.8 if noise == 0 else 0.6), iou


def test_a_click_on_nothing_selects_nothing(table):
    ds, gt, train, gaussians = table
    cams = [ds.cameras[v] for v in train]
    predictor = GTPointPredictor(gt, [ds.names[v] for v in train])
    obj = gt.instance_map(ds.names[train[0]])
    ys, xs = np.nonzero(obj < 0)
    if len(xs) == 0:
        pytest.skip("no background pixel in view 0")
    res = self_prompt(gaussians, cams, predictor.predict_view, 0, np.array([[xs[0], ys[0]]]))
    assert not res.selected.any() and res.views == []

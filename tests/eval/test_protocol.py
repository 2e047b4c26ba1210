"""The evaluation protocol: the query rule, the queried objects and the scores."""

import numpy as np
import pytest
import torch

from gs_core.dataset import Dataset
from gs_core.engine import project, render
from gs_core.eval import Evaluation, MethodInput, MethodResult, Query, naive_lifting, oracle, select
from gs_core.synth import GroundTruth


def _query(inside, total):
    return Query(0, "thing", 0, np.array(inside, float), np.array(total, float))


def test_select_takes_labels_mostly_inside_the_query_mask():
    labels = np.array([0, 0, 1, 1, 2, -1])
    q = _query([1, 1, 0.2, 0, 0, 5], [1, 1, 1, 1, 1, 5])
    assert select(labels, q).tolist() == [True, True, False, False, False, False]
    # no label is mostly inside: the one with most weight inside is taken
    q = _query([0.3, 0.2, 0.1, 0, 0, 0], [1, 1, 1, 1, 1, 0])
    assert select(labels, q).tolist() == [True, True, False, False, False, False]
    assert not select(labels, _query([0] * 6, [1] * 6)).any()
    assert not select(np.full(6, -1), q).any()


@pytest.fixture(scope="module")
def noisy_eval(noisy_root):
    ds, gt = Dataset.load(noisy_root), GroundTruth.load(noisy_root)
    return Evaluation.prepare(ds, gt)


def test_queries_are_visible_things(noisy_eval):
    h = noisy_eval.gt.hierarchy
    assert noisy_eval.queries
    for q in noisy_eval.queries:
        assert not h.objects[q.object].stuff
        assert q.ref_view in noisy_eval.train
        assert q.inside.sum() > 0 and (q.inside <= q.total + 1e-6).all()
        rgb, alpha = noisy_eval.gt_objects[q.object]
        assert alpha.max() > 0.5 and rgb.shape == alpha.shape + (3,)


def test_rendering_a_selection_alone_equals_projecting_it_alone(noisy_eval):
    keep = noisy_eval.gt.gaussians.object == noisy_eval.queries[0].object
    rgb, alpha = noisy_eval.render_alone(keep)
    sub = noisy_eval.gaussians.subset(torch.from_numpy(keep))
    for k, v in enumerate(noisy_eval.test):
        out = render(project(sub, noisy_eval.dataset.cameras[v]), noisy_eval.colors[keep])
        assert np.allclose(out.alpha.numpy(), alpha[k], atol=1e-5)
        assert np.allclose(out.features.numpy(), rgb[k], atol=1e-5)
    assert alpha.max() > 0.5


def test_oracle_scores_above_naive_lifting(noisy_eval):
    inp = MethodInput(noisy_eval.dataset, noisy_eval.train)
    best = noisy_eval.score(oracle(inp)).metrics
    naive = noisy_eval.score(naive_lifting(inp)).metrics
    assert best["assoc_miou"] == best["assoc_p"] == best["assoc_r"] == 1.0  # GT maps are the training maps
    assert best["pan_miou"] > 0.8 and best["nv_miou"] > 0.7
    for key in ("nv_miou", "pan_miou", "pan_p", "pan_r", "assoc_miou", "assoc_p", "assoc_r"):
        assert best[key] > naive[key], key
    assert 0 < naive["ext_miou"] < 1 and best["ext_psnr"] > 20
    assert best["queries"] == len(noisy_eval.queries)


def test_a_method_that_labels_everything_alike(noisy_eval):
    n = len(noisy_eval.gaussians)
    m = noisy_eval.score(MethodResult(np.zeros(n, np.int64))).metrics
    assert m["pan_p"] <= 1.0 and m["pan_r"] <= 1 / len(np.unique(noisy_eval.gt_test[noisy_eval.gt_test >= 0]))
    nothing = noisy_eval.score(MethodResult(np.full(n, -1))).metrics
    assert nothing["pan_miou"] == 0 and nothing["ext_miou"] == 0 and nothing["nv_miou"] == 0
    with pytest.raises(ValueError, match="labels"):
        noisy_eval.score(MethodResult(np.zeros(n - 1, np.int64)))

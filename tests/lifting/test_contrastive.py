"""Contrastive lifting: the blocked loss equals the dense Eq. 5 (value and gradient), features trained
on a tiny scene separate its objects, and queries pick an object's Gaussians."""

import warnings

import numpy as np
import pytest
import torch

from gs_core.lifting import LabelLiftConfig, lift_labels
from gs_core.lifting.contrastive import ContrastiveConfig, contrastive_loss, query_scores, train_contrastive
from gs_core.visibility import VisibilityRule


def dense_loss(feats, labels, tau_same, tau_diff):
    d2 = torch.cdist(feats, feats).square()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    logits = -d2 / torch.where(same, torch.full_like(d2, tau_same), torch.full_like(d2, tau_diff))
    pos = same & ~eye
    anchors = pos.any(1)
    num = torch.logsumexp(logits.masked_fill(~pos, -torch.inf), 1)
    den = torch.logsumexp(logits.masked_fill(eye, -torch.inf), 1)
    return (den - num)[anchors].mean()


@pytest.mark.parametrize("tau_same", [1.0, 100.0])
def test_loss_matches_dense_eq5(tau_same):
    g = torch.Generator().manual_seed(0)
    feats = (torch.randn(700, 16, generator=g, dtype=torch.float64) * 0.15).requires_grad_(True)
    labels = torch.randint(0, 9, (700,), generator=g)
    labels[:3] = torch.tensor([50, 51, 52])  # singletons: columns only, never anchors
    labels[3:300] = 4  # a label larger than a row block
    got = contrastive_loss(feats, labels, tau_same, 1.0, chunk=128)
    want = dense_loss(feats, labels, tau_same, 1.0)
    assert 0.1 < float(want.detach()) < 10  # a loss far from its optimum, so gradients are not all tiny
    g_got, = torch.autograd.grad(got, feats)
    g_want, = torch.autograd.grad(want, feats)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(g_got, g_want, rtol=1e-8, atol=1e-12)


def test_features_separate_objects(tabletop):
    from sklearn.cluster import HDBSCAN
    from sklearn.linear_model import LogisticRegression

    s = tabletop
    seen = lift_labels(zip(s.projections, s.object_maps), LabelLiftConfig(visibility=VisibilityRule())).labels >= 0
    r = train_contrastive(zip(s.projections, s.object_maps), ContrastiveConfig(steps=150, pixels_per_step=1024))
    assert len(r.loss) == 150 and np.mean(r.loss[-10:]) < 0.5 * np.mean(r.loss[:10])
    assert r.trained[seen].all()
    # the two largest objects (table and the biggest item): a linear probe splits them
    sizes = np.bincount(s.objects[seen.numpy()])
    a, b = np.argsort(sizes)[-2:]
    both = seen.numpy() & np.isin(s.objects, [a, b])
    x, y = r.features.numpy()[both], s.objects[both] == a
    half = np.random.default_rng(0).permutation(len(y))
    tr, te = half[: len(y) // 2], half[len(y) // 2:]
    assert LogisticRegression().fit(x[tr], y[tr]).score(x[te], y[te]) > 0.95
    # and density clustering of all seen Gaussians puts them into different clusters
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        cl = HDBSCAN(min_cluster_size=20).fit_predict(r.features.numpy()[seen.numpy()])
    obj = s.objects[seen.numpy()]
    major = [np.bincount(cl[(obj == k) & (cl >= 0)]).argmax() for k in (a, b)]
    assert major[0] != major[1]
    # a query from one object's Gaussians scores that object above the other
    ref = np.flatnonzero(both & (s.objects == a))[:50]
    scores = query_scores(r.features, gaussians=torch.from_numpy(ref))
    sa, sb = scores[torch.from_numpy(both & (s.objects == a))], scores[torch.from_numpy(both & (s.objects == b))]
    assert sa.median() > 0.3 and sb.median() < 0.1 * sa.median()

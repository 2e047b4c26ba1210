"""lift_labels: recovers per-Gaussian labels from maps rendered from them, its sparse sums match a
dense one-hot trace, and per-view sums add up to the streamed result (so views can be sharded)."""

import numpy as np
import torch

from gs_core.engine import trace
from gs_core.lifting import LabelLiftConfig, label_view_sums, labels_from_sums, lift_labels, reduce_label_sums
from gs_core.visibility import VisibilityRule


def _accuracy(out, objects):
    lab = out.labels.numpy()
    has = lab >= 0
    ok = lab[has] == objects[has]
    w = out.total.numpy()[has]
    return has.mean(), ok.mean(), float((ok * w).sum() / w.sum())


def test_recovers_rendered_labels(tabletop):
    s = tabletop
    plain = lift_labels(zip(s.projections, s.object_maps))
    seen = lift_labels(zip(s.projections, s.object_maps), LabelLiftConfig(visibility=VisibilityRule()))
    cover, acc, wacc = _accuracy(plain, s.objects)
    assert cover > 0.95 and acc > 0.9 and wacc > 0.99
    # hidden Gaussians (inside objects, under others) receive only occluders' labels: the visibility
    # rule leaves them unlabelled instead, so fewer but better labels
    cover_v, acc_v, wacc_v = _accuracy(seen, s.objects)
    assert cover_v < cover and acc_v > acc + 0.01 and wacc_v > 0.99
    # confidence is higher where the label is right (0.93 vs 0.79 here); not much higher, since a
    # Gaussian hidden behind one occluder is confidently wrong: that is what visibility is for
    has = plain.labels >= 0
    right = torch.from_numpy(plain.labels.numpy() == s.objects)
    assert plain.confidence[has & right].mean() > plain.confidence[has & ~right].mean() + 0.1
    assert ((plain.confidence >= 0) & (plain.confidence <= 1)).all()


def test_sparse_sums_match_dense_one_hot_trace(tabletop):
    """Top-k with k >= number of labels is exact: equal to tracing one-hot float maps, summed."""
    s = tabletop
    n_labels = int(s.objects.max()) + 1
    for power, lam in [(1, None), (2, 1.2)]:
        config = LabelLiftConfig(top_k=n_labels, power=power, opacity_lambda=lam)
        out = lift_labels(zip(s.projections, s.object_maps), config, return_sums=True)
        dense = torch.zeros(len(s.objects), n_labels)
        for proj, lm in zip(s.projections, s.object_maps):
            lm = torch.from_numpy(lm)
            onehot = torch.nn.functional.one_hot(lm.clamp_min(0), n_labels).float() * (lm >= 0)[..., None]
            dense += trace(proj, onehot, power=power, opacity_lambda=lam).weighted_sum
        sparse = torch.from_numpy(out.sums.to_scipy().toarray()).float()
        torch.testing.assert_close(sparse[:, :n_labels], dense, rtol=1e-4, atol=1e-6 * float(dense.max()))
        torch.testing.assert_close(out.total, dense.sum(1), rtol=1e-4, atol=1e-6 * float(dense.max()))
        # and the argmax of the dense sums, for Gaussians without ties
        top2 = dense.topk(2, dim=1).values
        clear = (top2[:, 0] > 1.01 * top2[:, 1]) & (top2[:, 0] > 0)
        assert clear.sum() > 1000
        assert torch.equal(out.labels[clear], dense.argmax(1)[clear])


def test_brute_force_few_gaussians(tabletop):
    """For a few Gaussians, the per-view top-1 label weight, summed by hand, decides the label."""
    s = tabletop
    config = LabelLiftConfig(top_k=1)
    out = lift_labels(zip(s.projections, s.object_maps), config, return_sums=True)
    rng = np.random.default_rng(0)
    picks = rng.choice(np.flatnonzero(out.labels.numpy() >= 0), 20, replace=False)
    for g in picks:
        by_label: dict[int, float] = {}
        for proj, lm in zip(s.projections, s.object_maps):
            t = trace(proj, torch.from_numpy(lm), top_k=1)
            if t.labels[g, 0] >= 0:
                by_label[int(t.labels[g, 0])] = by_label.get(int(t.labels[g, 0]), 0.0) + float(t.weights[g, 0])
        best = max(by_label, key=lambda k: (by_label[k], -k))
        assert int(out.labels[g]) == best
        sums = out.sums
        sel = sums.gaussians == int(g)
        got = dict(zip(sums.labels[sel].tolist(), sums.weights[sel].tolist()))
        assert got.keys() == by_label.keys()
        for k in got:
            assert abs(got[k] - by_label[k]) <= 1e-5 * max(1.0, by_label[k])


def test_sharded_views_add_up(tabletop):
    s = tabletop
    config = LabelLiftConfig(top_k=3, visibility=VisibilityRule())
    parts = [label_view_sums(p, m, config) for p, m in zip(s.projections, s.object_maps)]
    halves = [reduce_label_sums(parts[:3]), reduce_label_sums(parts[3:])]
    sharded = labels_from_sums(reduce_label_sums(halves))
    streamed = lift_labels(zip(s.projections, s.object_maps), config)
    assert torch.equal(sharded.labels, streamed.labels)
    torch.testing.assert_close(sharded.confidence, streamed.confidence)


def test_per_view_ids_and_unlabelled():
    """Negative labels are ignored; a Gaussian nobody labels gets -1 and confidence 0."""
    from gs_core.camera import Camera
    from gs_core.engine import Gaussians, project

    g = Gaussians(means=torch.tensor([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [5.0, 5.0, 5.0]]),
                  quats=torch.tensor([[1.0, 0, 0, 0]] * 3), scales=torch.full((3, 3), 0.05),
                  opacities=torch.full((3,), 0.9))
    cam = Camera.look_at((0.0, -2.0, 0.0), (0.0, 0.0, 0.0), fov_x_deg=60, width=32, height=32)
    proj = project(g, cam)
    lm = np.full((32, 32), -1)
    lm[:, 20:] = 7  # right part labelled 7: only the Gaussian at x = 0.6 (column 24) lands there
    out = lift_labels([(proj, lm), (proj, np.full((32, 32), -1))])
    assert out.labels.tolist() == [-1, 7, -1]
    assert out.confidence[1] == 1.0 and out.confidence[0] == 0 and out.confidence[2] == 0

"""lift_features (Eq. 7, 19-24): recovers per-Gaussian features from maps rendered from them,
lambda = 1 is no polarisation exactly, wide maps lift channel by channel, sums shard over views."""

import torch

from gs_core.engine import render
from gs_core.lifting import FeatureLiftConfig, feature_view_sums, lift_features
from gs_core.visibility import VisibilityRule


def _object_features(s, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    per_object = torch.nn.functional.normalize(torch.randn(int(s.objects.max()) + 1, dim, generator=g), dim=1)
    return per_object, per_object[torch.from_numpy(s.objects)]


def test_recovers_rendered_features(tabletop):
    """Per-object features rendered into the views come back on the Gaussians: most within a few
    percent, and squared weights (Eq. 24) are closer than plain weights (Eq. 7) (Property 4)."""
    s = tabletop
    per_object, f = _object_features(s)
    maps = [render(p, f).features for p in s.projections]
    errors = {}
    for power in (1, 2):
        for vis in (None, VisibilityRule()):
            out = lift_features(zip(s.projections, maps), FeatureLiftConfig(power=power, visibility=vis))
            has = out.weight > 0
            assert has.float().mean() > (0.75 if vis else 0.95)
            err = (out.features - f).norm(dim=1)[has]
            nearest = (out.features @ per_object.T).argmax(1)[has]
            acc = (nearest == torch.from_numpy(s.objects)[has]).float().mean()
            assert acc > (0.95 if vis else 0.9)
            errors[power, vis is not None] = float(err.median())
            assert (out.features[~has] == 0).all()
    assert errors[2, False] < 0.08 and errors[2, True] < 0.08
    assert errors[2, False] < 0.7 * errors[1, False]


def test_constant_map_is_exact(tabletop):
    """A constant map lifts to the constant on every Gaussian with weight (the normalisation)."""
    s = tabletop
    c = torch.tensor([0.25, -1.5, 3.0])
    for power, lam in ((1, None), (2, 1.2)):
        out = lift_features(((p, c.expand(p.height, p.width, 3)) for p in s.projections),
                            FeatureLiftConfig(power=power, opacity_lambda=lam))
        has = out.weight > 0
        torch.testing.assert_close(out.features[has], c.expand(int(has.sum()), 3), rtol=1e-5, atol=1e-5)


def test_lambda_one_is_no_polarisation(tabletop):
    s = tabletop
    _, f = _object_features(s, dim=8)
    maps = [render(p, f).features for p in s.projections]
    for power in (1, 2):
        none = lift_features(zip(s.projections, maps), FeatureLiftConfig(power=power, opacity_lambda=None))
        one = lift_features(zip(s.projections, maps), FeatureLiftConfig(power=power, opacity_lambda=1.0))
        assert torch.equal(none.features, one.features) and torch.equal(none.weight, one.weight)
        polar = lift_features(zip(s.projections, maps), FeatureLiftConfig(power=power, opacity_lambda=1.2))
        assert not torch.equal(none.weight, polar.weight)  # the option does reach the engine


def test_wide_maps_lift_channel_by_channel(tabletop):
    """520-channel maps (CLIP-sized) give the same result as lifting channel slices separately."""
    s = tabletop
    _, f = _object_features(s, dim=520, seed=3)
    views = s.projections[:3]
    maps = [render(p, f).features for p in views]
    wide = lift_features(zip(views, maps))
    for lo, hi in ((0, 7), (300, 520)):
        part = lift_features(zip(views, [m[..., lo:hi] for m in maps]))
        torch.testing.assert_close(part.features, wide.features[:, lo:hi], rtol=1e-5, atol=1e-6)


def test_sharded_views_add_up(tabletop):
    s = tabletop
    _, f = _object_features(s, dim=4)
    maps = [render(p, f).features for p in s.projections]
    config = FeatureLiftConfig(visibility=VisibilityRule())
    a = feature_view_sums(s.projections[0], maps[0], config)
    for p, m in zip(s.projections[1:], maps[1:]):
        a.add_(feature_view_sums(p, m, config))
    streamed = lift_features(zip(s.projections, maps), config)
    torch.testing.assert_close(a.solve(), streamed.features)

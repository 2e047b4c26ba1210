"""Post-lifting aggregation (Eq. 20-22): clusters agreeing with the masks are kept, a planted cluster
the masks contradict (three objects merged into one) is dropped, and so are its pixels' observations."""

import numpy as np
import torch

from gs_core.lifting.aggregation import AggregationConfig, aggregate, cluster_features, filter_view, view_agreement


def _features(objects, groups, seed=0):
    """One random direction per group of objects, plus noise well below the groups' separation."""
    g = torch.Generator().manual_seed(seed)
    group_of = torch.as_tensor([groups.get(k, k) for k in range(int(objects.max()) + 1)])
    centres = torch.randn(int(group_of.max()) + 1, 8, generator=g) * 3
    return centres[group_of[torch.from_numpy(objects)]] + 0.05 * torch.randn(len(objects), 8, generator=g)


def test_clusters_follow_features(tabletop):
    s = tabletop
    cl = cluster_features(_features(s.objects, {}), AggregationConfig(min_cluster_size=20)).numpy()
    # every object is one cluster and no two objects share one
    for k in np.unique(s.objects):
        assert len(np.unique(cl[s.objects == k])) == 1
    assert len(np.unique(cl)) == len(np.unique(s.objects))


def test_subsampled_fit_assigns_the_rest(tabletop):
    s = tabletop
    feats = _features(s.objects, {})
    full = cluster_features(feats, AggregationConfig(min_cluster_size=20)).numpy()
    sub = cluster_features(feats, AggregationConfig(min_cluster_size=10, max_fit=2000)).numpy()
    # same partition (ids may differ)
    pairs = set(zip(full.tolist(), sub.tolist()))
    assert len(pairs) == len(np.unique(full)) == len(np.unique(sub))


def test_drops_planted_contradicted_cluster(tabletop):
    """A planted cluster made of a random 15% of the Gaussians of the two largest objects: its
    rendered region is scattered over both masks, so no mask matches it (Eq. 20-22)."""
    s = tabletop
    config = AggregationConfig(min_cluster_size=20)
    views = list(zip(s.projections, s.object_maps))
    a, b = np.argsort(np.bincount(s.objects))[-2:]
    rng = np.random.default_rng(0)
    planted_g = np.isin(s.objects, [a, b]) & (rng.random(len(s.objects)) < 0.15)
    feats = _features(s.objects, {})
    feats[torch.from_numpy(planted_g)] = 10.0  # a point far from every object's direction
    res = aggregate(views, feats, config)
    planted = int(np.bincount(res.clusters.numpy()[planted_g]).argmax())
    assert (res.clusters.numpy()[planted_g] == planted).all() and (res.clusters.numpy()[~planted_g] != planted).all()
    assert not res.kept[planted] and res.agreement[planted] < 0.3
    others = [k for k in range(len(res.kept)) if k != planted and res.pixels[k] > 0]
    assert len(others) >= 6 and res.kept[others].all() and (res.agreement[others] > 0.6).all()
    assert (res.labels.numpy()[planted_g] == -1).all()
    assert (res.labels[res.clusters != planted] == res.clusters[res.clusters != planted]).all()
    # control: the same scene without the planted cluster keeps every cluster
    clean = aggregate(views, _features(s.objects, {}), config)
    assert clean.kept[clean.pixels > 0].all()
    # Eq. 22 per pixel: observations where the planted cluster shows go, most others stay
    k = int(res.clusters.max()) + 1
    for proj, lm in views[:3]:
        agr = view_agreement(proj, lm, res.clusters, k, config)
        kept_map = filter_view(lm, agr, config.iou_threshold)
        shows = (agr.cluster_map == planted) & (lm >= 0)
        assert shows.sum() > 20 and (kept_map[shows] == -1).all()
        elsewhere = (lm >= 0) & (agr.cluster_map >= 0) & ~shows
        assert (kept_map[elsewhere] == lm[elsewhere]).mean() > 0.8

"""IQGS losses: pairwise costs equal the per-pair losses, the 2D-3D consistency loss is zero exactly
when the rendered 3D masks and the 2D masks agree, and the kNN regulariser pulls a planted outlier in."""

import numpy as np
import torch

from gs_core.engine import render, trace
from gs_core.methods.iqgs import consistency_loss, dice_cost, dice_loss, focal_cost, focal_loss, knn_neighbours, knn_regulariser
from gs_core.methods.iqgs.matching import hungarian_matching, id_matching, query_ids_by_area


def test_pairwise_costs_equal_per_pair_losses():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 300, generator=g, dtype=torch.float64) * 3
    targets = (torch.rand(4, 300, generator=g) > 0.6).double()
    fc, dc = focal_cost(logits, targets), dice_cost(logits, targets)
    for m in range(4):
        t = targets[m].expand(7, -1)
        torch.testing.assert_close(fc[:, m], focal_loss(logits, t))
        torch.testing.assert_close(dc[:, m], dice_loss(logits, t))


def test_hungarian_and_id_matching():
    targets = torch.zeros(3, 60)
    for m in range(3):
        targets[m, 20 * m:20 * (m + 1)] = 1
    logits = torch.full((5, 60), -8.0)
    logits[4, 0:20] = logits[1, 20:40] = logits[3, 40:60] = 8.0  # queries 4, 1, 3 predict masks 0, 1, 2
    q, m = hungarian_matching(logits, targets)
    assert dict(zip(m.tolist(), q.tolist())) == {0: 4, 1: 1, 2: 3}
    ids = query_ids_by_area([np.array([[7, 7, 7, 2], [2, 5, -1, -1]])], 4)
    assert ids.tolist() == [7, 2, 5, -1]  # by area, largest first; a free query is -1
    q, m = id_matching(ids, np.array([5, 9, 7]))
    assert sorted(zip(q.tolist(), m.tolist())) == [(0, 2), (2, 0)]  # id 9 has no query


def test_consistency_loss_zero_when_masks_agree(planted_3dgs):
    s = planted_3dgs
    proj = s.projections[0]
    big = np.argsort(np.bincount(s.objects[s.objects >= 0]))[::-1][:4]
    p3d = torch.tensor(np.stack([s.objects == o for o in big[:3]], 1), dtype=torch.float32) * 0.9 + 0.05  # [N, 3]
    xy = torch.stack(torch.meshgrid(torch.arange(0, proj.width, 2), torch.arange(0, proj.height, 2),
                                    indexing="xy"), -1).reshape(-1, 2)
    rendered = render(proj, p3d, pixels=xy).features  # [P, 3]: the 3D masks seen in the view
    assert float(consistency_loss(rendered, rendered.clone())) == 0.0
    other = p3d.clone()
    other[:, 1] = torch.tensor(s.objects == big[3], dtype=torch.float32) * 0.9 + 0.05  # query 1's 2D mask: another object
    masks_2d = render(proj, other, pixels=xy).features
    assert float(consistency_loss(rendered, masks_2d)) > 0.01
    # its gradient moves the 3D masks to the 2D ones: query 1's probability rises on the other object
    logits = torch.logit(p3d).requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=0.1)
    first = float(consistency_loss(rendered, masks_2d))
    for _ in range(60):
        loss = consistency_loss(render(proj, torch.sigmoid(logits), pixels=xy).features, masks_2d)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first
    seen = (trace(proj, torch.ones(len(xy), 1), pixels=xy).weight_sum > 0.1).numpy()  # seen at the sampled pixels
    target = torch.from_numpy(seen & (s.objects == big[3]))
    assert target.sum() > 20
    assert float(torch.sigmoid(logits.detach())[target, 1].mean()) > 0.5  # was 0.05


def test_knn_regulariser_pulls_planted_outlier_in():
    rng = np.random.default_rng(0)
    means = rng.uniform(0, 1, (400, 3))
    feats = torch.tensor(np.tile([1.0, 0.0, 0.0, 0.0], (400, 1)) + rng.normal(0, 0.01, (400, 4)), dtype=torch.float32)
    outlier = 123
    feats[outlier] = torch.tensor([-3.0, 2.0, 0.5, 1.0])
    nb = knn_neighbours(means, 8)
    assert nb.shape == (400, 8) and outlier not in nb[outlier]
    near = np.linalg.norm(means[nb[outlier]] - means[outlier], axis=1).max()
    assert near < np.sort(np.linalg.norm(means - means[outlier], axis=1))[9] + 1e-12  # true 8 nearest
    nbt = torch.from_numpy(nb)
    f = feats.clone().requires_grad_(True)
    opt = torch.optim.SGD([f], lr=5.0)  # the loss is a mean over 3200 pairs
    start = float((f[outlier] - f[nbt[outlier]].mean(0)).detach().norm())
    for _ in range(100):
        loss = knn_regulariser(f, nbt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = float((f[outlier] - f[nbt[outlier]].mean(0)).detach().norm())
    assert end < 0.1 * start
    # the cluster is not dragged to the outlier: everyone ends near the cluster's feature
    assert float((f.detach() - torch.tensor([1.0, 0, 0, 0])).norm(dim=1).max()) < 0.15 * start

"""Label maps: rendering per-Gaussian labels, flattening mask stacks."""

import numpy as np
import torch

from gs_core.camera import Camera
from gs_core.engine import Gaussians, project
from gs_core.labelmaps import masks_to_labels, render_labels


def _blobs(labels, opacity=0.95):
    """Splats in a row across the view (x = -0.6 .. 0.6), one per label, on the plane z = 0."""
    n = len(labels)
    means = torch.tensor([[x, 0.0, 0.0] for x in np.linspace(-0.6, 0.6, n)], dtype=torch.float32)
    g = Gaussians(means, torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), torch.full((n, 3), 0.12),
                  torch.full((n,), opacity))
    cam = Camera.look_at([0, -2, 0], [0, 0, 0], fov_x_deg=60, width=48, height=24)
    return project(g, cam)


def test_render_labels_picks_the_heaviest_label_and_chunks_agree():
    proj = _blobs([0, 0, 7, 7, 3])
    labels = np.array([0, 0, 7, 7, 3])
    full = render_labels(proj, labels)
    assert set(np.unique(full)) == {-1, 0, 3, 7}
    row = full[12]
    first = [lab for k, lab in enumerate(row) if k == 0 or lab != row[k - 1]]
    assert [x for x in first if x >= 0] == [0, 7, 3]  # left to right
    assert np.array_equal(render_labels(proj, labels, chunk=1), full)
    assert np.array_equal(render_labels(proj, labels + 100), np.where(full >= 0, full + 100, -1))


def test_unlabelled_gaussians_and_thin_alpha_give_no_label():
    proj = _blobs([0, 1, 2])
    labels = np.array([-1, -1, 5])
    out = render_labels(proj, labels)
    assert set(np.unique(out)) == {-1, 5}
    faint = _blobs([0, 1, 2], opacity=0.3)  # alpha never reaches 0.5
    assert (render_labels(faint, np.array([0, 1, 2])) == -1).all()


def test_masks_to_labels_puts_small_masks_on_top():
    masks = np.zeros((3, 2, 4), bool)
    masks[0] = True  # the whole image
    masks[1, :, :2] = True  # left half
    masks[2, 0, 0] = True  # one pixel
    out = masks_to_labels(masks)
    assert out.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0]]
    assert (masks_to_labels(masks[1:]) == np.array([[1, 0, -1, -1], [0, 0, -1, -1]])).all()


def _crowd(n=600, seed=0):
    """``n`` splats of many labels scattered over a 40 x 30 view (2 x 2 tiles of 16 and their edges)."""
    rng = np.random.default_rng(seed)
    means = torch.as_tensor(np.c_[rng.uniform(-1, 1, n), rng.uniform(-0.6, 0.6, n), rng.uniform(-0.5, 0.5, n)],
                            dtype=torch.float32)
    quats = torch.nn.functional.normalize(torch.as_tensor(rng.normal(size=(n, 4)), dtype=torch.float32), dim=1)
    g = Gaussians(means, quats, torch.as_tensor(rng.uniform(0.02, 0.12, (n, 3)), dtype=torch.float32),
                  torch.as_tensor(rng.uniform(0.2, 0.9, n), dtype=torch.float32))
    return project(g, Camera.look_at([0, -2.5, 0], [0, 0, 0], fov_x_deg=60, width=40, height=30))


def test_render_labels_shares_channels_and_matches_one_channel_per_label():
    """Labels that no tile blends together share a channel: the map is the argmax of a render with
    one channel per label (ties to the smaller label), in fewer channels than labels."""
    from gs_core.engine import render
    from gs_core.labelmaps import label_channels, labels_from_weights

    proj = _crowd()
    rng = np.random.default_rng(1)
    labels = torch.as_tensor(rng.integers(-1, 150, proj.num_gaussians))
    labels[:40] = 1000 + torch.arange(40)  # labels of one splat each: many, overlapping little
    channel, lookup = label_channels(proj, labels)
    K = lookup.shape[1]
    classes = torch.unique(labels)
    assert K < len(classes)
    blended = torch.unique(proj.flat_ids.long())
    assert (channel[blended] >= 0).all()
    for backend in ("cpu", "torch"):
        out = render(proj, (labels[:, None] == classes[None, :]).float(), backend=backend)
        ref = labels_from_weights(out.features, classes, out.alpha, 0.5)
        got = render_labels(proj, labels, backend=backend)
        assert (ref >= 0).sum() > 300 and len(np.unique(ref)) > 20
        assert np.array_equal(got, ref), backend
        assert np.array_equal(render_labels(proj, labels, chunk=3, backend=backend), ref)

"""Semantic-aware association (Sec. 3.2): depth mode is Gaga's association exactly; the probability
criterion rescues a planted case where the depth filter alone fails."""

import numpy as np
import pytest
import torch

from gs_core.camera import Camera
from gs_core.engine import project
from gs_core.methods.gaga import GagaConfig, MemoryBank, associate_view, regions_of
from gs_core.proto_saga import AssociationConfig, associate, probable_gaussians, semantic_sets
from proto_saga_scenes import camera, owner_map, scene, square


def _cam(eye) -> Camera:
    return Camera.look_at(eye, (0.0, 0.0, 0.0), fov_x_deg=40, width=64, height=48)


@pytest.fixture(scope="module")
def slab():
    """One object with two faces 0.1 m apart (a slab), seen from the front (+z) and from behind (-z):
    each view shows one face only. Embeddings and classifiers are planted: the slab's Gaussians all
    point near e0 (noise 0.3), the classifier's class 0 is e0 and class 1 (no pixels) e1."""
    s = 0.05
    g, face = scene((square(-0.5, 0.5, 0.4, s, 0.05), s), (square(-0.5, 0.5, 0.4, s, -0.05), s))
    rng = np.random.default_rng(0)
    feats = torch.as_tensor(np.array([1.0, 0.0]) + 0.3 * rng.normal(size=(len(face), 2)), dtype=torch.float32)
    views = []
    for eye, shown in (((0.3, 0.1, 3.0), 0), ((-0.2, 0.1, -3.0), 1)):
        cam = _cam(eye)
        assert np.unique(owner_map(g, face, cam)).tolist() == [-1, shown]
        views.append((project(g, cam), np.where(owner_map(g, face, cam) >= 0, 0, -1)))
    return g, face, feats, views


def test_probability_rescues_an_object_seen_from_opposite_sides(slab):
    """Depth alone (Gaga) keeps each view's front face, which share no Gaussian: the slab gets a new
    id behind. The probability set of a region also holds the hidden face's Gaussians the classifier
    is sure of (their centres project inside the mask), so the memory bank matches across the sides."""
    g, face, feats, views = slab
    weights = torch.eye(2)
    ids = {}
    for mode in ("depth", "probability", "both"):
        maps = list(associate([(p, r, weights) for p, r in views], feats, AssociationConfig(mode=mode)))
        ids[mode] = [set(np.unique(m[m >= 0]).tolist()) for m in maps]
    assert ids["depth"] == [{0}, {1}]  # fragmented
    assert ids["probability"] == [{0}, {0}] and ids["both"] == [{0}, {0}]
    # the mechanism: the front view's depth set is its front face only, its probability set reaches behind
    proj, regions = views[0]
    d, _ = semantic_sets(proj, regions, None, AssociationConfig(mode="depth"))
    prob = lambda i: torch.softmax(10 * torch.nn.functional.normalize(feats[torch.as_tensor(i)], dim=1) @ weights.T, 1)  # noqa: E731
    s, _ = probable_gaussians(proj, regions, prob, 0.2)
    assert (face[d] == 0).all() and 0.3 < (face[s] == 1).mean() < 0.7


def test_depth_mode_is_gagas_association():
    """mode="depth" goes through Gaga's front sets and memory bank unchanged: the same maps as gaga."""
    g, owner = scene((square(-0.8, -0.05, 0.4, 0.05), 0.05), (square(0.05, 0.8, 0.4, 0.05), 0.05),
                     (square(-1.2, 1.2, 0.8, 0.1, -0.3), 0.1))
    cams = [camera(0, 0), camera(0.2, 0.1), camera(-0.3, -0.1)]
    stacks = []
    for k, c in enumerate(cams):
        om = owner_map(g, owner, c)
        masks = np.stack([om == o for o in (2, 0, 1)])
        if k == 1:
            masks = np.stack([masks[0], masks[1] | masks[2]])  # one view merges the two squares
        stacks.append(masks)
    bank = MemoryBank(len(g))
    want = [associate_view(bank, project(g, c), m, GagaConfig()) for c, m in zip(cams, stacks)]
    regions = [regions_of(m) for m in stacks]
    got = list(associate([(project(g, c), r, None) for c, r in zip(cams, regions)], None, AssociationConfig(mode="depth")))
    for a, b in zip(want, got):
        assert np.array_equal(a, b)
    assert len(np.unique(np.concatenate([m[m >= 0] for m in got]))) >= 3

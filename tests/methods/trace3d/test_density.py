"""GIT-guided density control (Trace3D Sec. 3.4): a planted splat straddling two objects is found
ambiguous, split into one child per side (3DGS and 2DGS), and the refit does not hurt the photos."""

import numpy as np
import pytest
import torch

from gs_core.engine import project, render
from gs_core.methods.trace3d import Trace3DConfig
from gs_core.splat_transform import quat_to_matrix
from gs_core.methods.trace3d import GITStore, make_patches, trace_view
from gs_core.methods.trace3d.consistency import ConsistentInstances, MergeTree, gaussian_votes
from gs_core.methods.trace3d.density import (ambiguity, density_control, instance_offsets, split_gaussians, top_two)

from trace3d_scenes import cam, cat_scenes, gt_masks, make_scene, square

SPACING = 0.05
CENTRE = {0: -0.3, 1: 0.3}  # object A (id 0) left of x = 0, object B (id 1) right, 10 cm apart
TILT = (0.0, np.sin(0.5), np.cos(0.5))  # the straddler's normal (2DGS): its plane contains the x axis


def _covariances(scene, rows) -> np.ndarray:  # [R, 3, 3] world covariances (2DGS: zero along the normal)
    R = quat_to_matrix(scene.quats[rows])
    s = np.exp(scene.log_scales[rows].astype(np.float64))
    if s.shape[1] == 2:
        s = np.concatenate([s, np.zeros((len(s), 1))], 1)
    return np.einsum("rij,rj,rkj->rik", R, s**2, R)


@pytest.fixture(scope="module", params=["3dgs", "2dgs"])
def straddle(request):
    """Two flat objects of small splats in the plane z = 0 and one large, half-opaque splat just in
    front of the gap between them (the last row), seen by four cameras from above. The masks are the
    objects' ground truth (the straddler is no object of its own)."""
    kind = request.param
    a = square((CENTRE[0], 0, 0), half=0.25, spacing=SPACING)
    b = square((CENTRE[1], 0, 0), half=0.25, spacing=SPACING)
    objects = make_scene(np.concatenate([a, b]), 0.7 * SPACING, kind=kind)
    straddler = make_scene(np.array([[0.0, 0.0, 0.03]]), 0.12, kind=kind, opacity=0.6, normal=TILT)
    scene = cat_scenes(objects, straddler)
    rng = np.random.default_rng(1)
    scene.sh_rest = rng.normal(0, 0.1, (len(scene), 3, 3)).astype(np.float32)  # degree 1
    scene.normals = rng.normal(0, 1, (len(scene), 3)).astype(np.float32)
    scene.extra = {"tag": np.arange(len(scene), dtype=np.float32) * 10 + 7}  # an unknown PLY column
    owner = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    angles = np.linspace(0, 2 * np.pi, 5)[:-1] + 0.4
    cams = [cam((0.8 * np.cos(t), 0.8 * np.sin(t), 2.0), name=f"v{k}") for k, t in enumerate(angles)]
    g = scene.to_gaussians()
    store, patches, patch_ids = GITStore(len(scene)), [], []
    for c in cams:
        masks, ids = gt_masks(objects, owner, c)
        assert ids == [0, 1]
        p = make_patches(masks, 1)
        patches.append(p)
        patch_ids += [ids[p.kept_masks[np.flatnonzero(p.membership[j])[0]]] for j in range(p.num_patches)]
        store.add(trace_view(project(g, c), p))
    patch_ids = np.asarray(patch_ids, np.int64)
    P = len(patch_ids)
    inst = ConsistentInstances(store, MergeTree(P, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)),
                               patch_ids, *gaussian_votes(store, patch_ids))
    return scene, cams, patches, inst


def test_ambiguity_of_the_straddler_and_interior_splats(straddle):
    scene, cams, _, inst = straddle
    score, views = ambiguity(inst.store, inst.patch_ids)
    s = len(scene) - 1
    assert views[s] == len(cams) and score[s] == 1.0  # ambiguous in every view
    x = scene.means[:-1, 0]
    interior = np.abs(x) >= 0.05 + 3 * 0.7 * SPACING  # 3 std from the inner edges: inside one object
    assert interior.sum() > 150
    assert (score[:-1][interior] == 0).all() and (views[:-1][interior] > 0).all()
    assert ((score >= 0) & (score <= 1)).all()
    assert top_two(inst.store, inst.patch_ids, np.array([s]))[0].tolist() in ([0, 1], [1, 0])
    assert top_two(inst.store, inst.patch_ids, np.array([5]))[0].tolist() == [0, -1]  # an interior A splat


def test_split_children_on_each_side(straddle):
    scene, cams, patches, inst = straddle
    s = len(scene) - 1
    rows = np.array([s])
    pair = top_two(inst.store, inst.patch_ids, rows)
    view_maps = [inst.view_map(k, p.patch_map) for k, p in enumerate(patches)]
    offsets, masses = instance_offsets(scene, cams, view_maps, rows, pair)
    assert (masses > 0).all()
    out = split_gaussians(scene, rows, offsets, masses)
    assert len(out) == len(scene) + 1 and out.kind == scene.kind
    keep = np.arange(len(scene)) != s
    rest = scene.subset(keep)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest", "normals"):
        np.testing.assert_array_equal(getattr(out, name)[:-2], getattr(rest, name))  # others unchanged
    for name in ("opacity_logits", "sh_dc", "sh_rest", "normals"):  # children inherit the parent's
        np.testing.assert_array_equal(getattr(out, name)[-2:], np.repeat(getattr(scene, name)[[s]], 2, axis=0))
    np.testing.assert_array_equal(out.extra["tag"], np.r_[rest.extra["tag"], [scene.extra["tag"][s]] * 2])
    parent = scene.means[s].astype(np.float64)
    children = out.means[-2:].astype(np.float64)
    for c in range(2):  # child c goes with instance pair[0, c]
        own, other = CENTRE[int(pair[0, c])], CENTRE[1 - int(pair[0, c])]
        x = children[c, 0]
        assert np.sign(x) == np.sign(own) and abs(x) > 0.03, (c, children)
        assert abs(x - own) < abs(x - other)
    m = masses[0] / masses[0].sum()
    np.testing.assert_allclose(m @ children, parent, atol=1e-6)  # the mixture keeps the parent's mean
    # ... and its second moment: Sigma = sum_c m_c (Sigma_c + d_c d_c^T)
    d = children - parent
    mix = np.einsum("c,cij->ij", m, _covariances(out, [-2, -1]) + np.einsum("ci,cj->cij", d, d))
    np.testing.assert_allclose(mix, _covariances(scene, [s])[0], atol=1e-6)
    if scene.kind == "2dgs":  # the children stay in the splat's plane, with its normal
        n = np.asarray(TILT)
        assert np.abs(d @ n).max() < 1e-6
        assert out.log_scales.shape[1] == 2
        normals = quat_to_matrix(out.quats[-2:])[:, :, 2]
        np.testing.assert_allclose(np.abs(normals @ n), 1.0, atol=1e-5)


def test_density_control_refit_does_not_lower_train_psnr(straddle):
    scene, cams, patches, inst = straddle
    g = scene.to_gaussians()
    colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
    photos = [render(project(g, c), colors).features.numpy() for c in cams]
    refined, report, _ = density_control(scene, cams, inst, patches, images=lambda k: photos[k],
                                      trace_config=Trace3DConfig(density=None))
    assert report.gaussians_before == len(scene)
    assert report.ambiguous_before >= 1 and report.split >= 1
    assert len(refined) == report.gaussians_after == len(scene) + report.split - report.pruned
    assert report.psnr_train_before >= 60  # the photos are this scene's own render
    assert report.psnr_train_split < report.psnr_train_before  # splitting moved something
    assert report.psnr_train_after >= report.psnr_train_split
    n_kept = len(scene) - report.split  # untouched rows come first, in order, unchanged
    score, _ = ambiguity(inst.store, inst.patch_ids)
    untouched = ~(score > 0.5)
    assert untouched.sum() == n_kept
    for name in ("means", "sh_dc", "opacity_logits", "log_scales", "quats"):
        np.testing.assert_array_equal(getattr(refined, name)[:n_kept], getattr(scene, name)[untouched])
    np.testing.assert_array_equal(refined.extra["tag"][:n_kept], scene.extra["tag"][untouched])
    # each output row names the input row it continues (children: their parent) and whether it is a child
    np.testing.assert_array_equal(report.source_rows[:n_kept], np.flatnonzero(untouched))
    assert not report.children[:n_kept].any() and report.children[n_kept:].all()
    assert set(report.source_rows[n_kept:].tolist()) <= set(np.flatnonzero(~untouched).tolist())
    np.testing.assert_array_equal(refined.extra["tag"], scene.extra["tag"][report.source_rows])
    assert "source_rows" not in report.to_json()
    assert set(refined.extra["tag"][n_kept:].tolist()) <= set(scene.extra["tag"][~untouched].tolist())

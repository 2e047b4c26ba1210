"""Ground-truth consistency: rendered instance maps agree with the per-Gaussian ids."""

import numpy as np
import torch

from gs_core.engine import project, render, trace
from gs_core.synth.views import MIN_ALPHA


def test_background_exactly_where_alpha_is_low(tiny_views):
    for v in tiny_views:
        bg = v.alpha < MIN_ALPHA
        for level in (v.part, v.object, v.group):
            assert level.shape == v.alpha.shape
            assert np.array_equal(level < 0, bg)
        assert (v.depth[bg] == 0).all() and (v.depth[~bg] > 0).all()
        assert v.rgb.shape == v.alpha.shape + (3,) and v.rgb.min() >= 0 and v.rgb.max() <= 1


def test_levels_agree_with_the_hierarchy(tiny_world, tiny_views):
    h = tiny_world.hierarchy
    agree_obj, agree_grp, total = 0, 0, 0
    for v in tiny_views:
        fg = v.object >= 0
        agree_obj += (h.part_to_object[v.part[fg]] == v.object[fg]).sum()
        agree_grp += (h.object_to_group[v.object[fg]] == v.group[fg]).sum()
        total += fg.sum()
    # levels are decided separately (argmax per level); they may differ only at mixed pixels
    assert agree_obj >= 0.97 * total
    assert agree_grp >= 0.97 * total


def test_traced_gt_maps_land_on_the_right_gaussians(tiny_world, tiny_views):
    """Tracing a GT object map back onto the clean Gaussians gives each well-seen Gaussian its own object."""
    clean = tiny_world.labels.clean
    gaussians = tiny_world.scene.subset(clean).to_gaussians()
    own = tiny_world.labels.object[clean]
    right = wrong = 0.0
    for v in tiny_views:
        out = trace(project(gaussians, v.camera), torch.from_numpy(v.object), top_k=1)
        w, lab = out.weights[:, 0].numpy(), out.labels[:, 0].numpy()
        right += w[lab == own].sum()
        wrong += w[(lab != own) & (lab >= 0)].sum()
    assert right > 0.97 * (right + wrong)


def test_each_object_pixel_is_covered_by_that_object_alone(tiny_world, tiny_views):
    """Rendering an object's clean Gaussians by themselves covers the pixels the GT map gives it."""
    clean = tiny_world.labels.clean
    for v in tiny_views[:2]:
        for o in np.unique(v.object[v.object >= 0]):
            keep = clean & (tiny_world.labels.object == o)
            sub = tiny_world.scene.subset(keep).to_gaussians()
            alpha = render(project(sub, v.camera), torch.ones(int(keep.sum()), 1)).alpha.numpy()
            pixels = v.object == o
            assert (alpha[pixels] > 0.3).mean() > 0.95


def test_depth_lies_on_the_objects_surface(tiny_world, tiny_views):
    """Expected depth at an object's pixels is within its splats' depth range (bar mixed edge pixels)."""
    clean = tiny_world.labels.clean
    inside = []
    for v in tiny_views:
        z = tiny_world.scene.means[clean] @ v.camera.world_to_camera[2, :3] + v.camera.world_to_camera[2, 3]
        for o in np.unique(v.object[v.object >= 0]):
            zo = z[tiny_world.labels.object[clean] == o]
            d = v.depth[v.object == o]
            inside.append((d > zo.min() - 0.1) & (d < zo.max() + 0.1))
    assert np.concatenate(inside).mean() > 0.97


def test_the_part_only_option_gives_the_same_part_maps_and_the_parts_objects(tiny_world, tiny_views):
    """``per_level=False`` (the city's option: shared label channels) renders the same RGB, depth and
    part maps as one channel per part; its objects and groups are the part's."""
    from gs_core.synth.views import iter_views

    h = tiny_world.hierarchy
    cheap = list(iter_views(tiny_world, tiny_world.cameras, per_level=False))
    mixed = 0
    for v, c in zip(tiny_views, cheap):
        for f in ("rgb", "alpha", "depth", "part"):
            assert np.array_equal(getattr(v, f), getattr(c, f)), f
        fg = c.part >= 0
        assert fg.sum() > 100
        assert np.array_equal(c.object[fg], h.part_to_object[c.part[fg]]) and (c.object[~fg] == -1).all()
        assert np.array_equal(c.group[fg], h.object_to_group[c.object[fg]])
        mixed += (c.object != v.object).sum()
    assert mixed < 0.03 * sum(v.object.size for v in tiny_views)


def test_views_within_a_radius_render_only_the_near_splats(tiny_world):
    from gs_core.synth.views import iter_views

    cam = tiny_world.cameras[0]
    eye = cam.camera_to_world[:3, 3]
    dist = np.linalg.norm(tiny_world.scene.means - eye, axis=1)
    far = next(iter_views(tiny_world, [cam], radius=float(dist.max()) + 1.0, per_level=False))
    whole = next(iter_views(tiny_world, [cam], per_level=False))
    assert np.array_equal(far.part, whole.part)  # a radius past every splat culls only those behind
    near = next(iter_views(tiny_world, [cam], radius=float(np.median(dist)), per_level=False))
    assert (near.alpha >= MIN_ALPHA).sum() < (whole.alpha >= MIN_ALPHA).sum()

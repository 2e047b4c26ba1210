"""The viewport's per-splat math (gs_core.splat_view, what the add-on's shader runs) against gs_core's own
render: the same picture, in float64, for moved, rotated, mirrored and scaled objects and for two objects
interleaved in depth. The reference bakes each object's transform into its splats (positions, rotations,
scales and every SH band rotated: gs_core.splat_transform) and renders with the engine's torch backend;
the viewport path keeps the splats as stored and transforms on the fly, so the two share no transform or
SH code."""

import numpy as np
import pytest
from splat_scenes import assert_same_picture, cam, random_object, trs

from gs_core import splat_view

def test_identity_object_matches_the_engine():
    assert_same_picture([random_object(400, seed=1)], cam())


@pytest.mark.parametrize("matrix", [
    trs((0.3, -0.2, 0.25), axis=(1, 2, 3), angle=0.9),  # moved and rotated
    trs((0.0, 0.1, 0.0), axis=(0, 1, 1), angle=-2.0, scale=(1.7, 1.7, 1.7)),  # rotated and scaled
    trs((0.1, 0.0, 0.0), axis=(1, 0, 0), angle=0.4, scale=(-0.8, 0.8, 0.8)),  # a mirror: odd bands flip
])
def test_transformed_object_matches_the_baked_engine_render(matrix):
    assert_same_picture([random_object(400, seed=2, matrix=matrix)], cam())


def test_non_uniform_scale_matches_for_view_independent_colour():
    # a non-uniform scale has no SH of the same degree (the bake refuses it), but the geometry does
    matrix = trs((0.0, 0.0, 0.1), axis=(0, 0, 1), angle=0.5, scale=(1.8, 0.6, 1.1))
    assert_same_picture([random_object(400, degree=0, seed=3, matrix=matrix)], cam())


def test_two_objects_interleaved_in_depth_blend_as_one_scene():
    a = random_object(300, seed=4, matrix=trs((0.0, 0.0, 0.0), axis=(0, 0, 1), angle=0.3))
    b = random_object(300, seed=5, matrix=trs((0.1, 0.2, 0.0), axis=(1, 1, 0), angle=1.1, scale=(1.2,) * 3))
    # the two clouds overlap in depth along the view: neither order of whole objects is right
    camera = cam()
    za = (splat_view.world_means(a) @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3])[:, 2]
    zb = (splat_view.world_means(b) @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3])[:, 2]
    assert za.min() < zb.min() < za.max() and zb.min() < za.max() < zb.max()
    rgb, _ = assert_same_picture([a, b], camera)
    # drawing the objects one after the other (each sorted alone) is a different picture
    rgb_b, alpha_b = splat_view.composite(splat_view.project([b], camera))
    rgb_a, alpha_a = splat_view.composite(splat_view.project([a], camera))
    assert np.abs(rgb - (rgb_a + (1 - alpha_a[..., None]) * rgb_b)).max() > 0.05


def test_culls_splats_behind_and_beside_the_camera():
    # the camera inside the cloud: splats behind it, and wide ones beyond the field of view's clamp
    assert_same_picture([random_object(500, seed=6, spread=1.5)], cam(eye=(0.2, -0.9, 0.1)))


def test_screen_splats_order_is_back_to_front_with_the_engines_ties():
    o = random_object(50, seed=7)
    o.means[10] = o.means[20]  # a depth tie: the engine puts the lower index in front
    s = splat_view.project([o], cam())
    order = list(s.back_to_front())
    assert np.all(np.diff(s.depths[order]) <= 0)
    assert order.index(20) < order.index(10)

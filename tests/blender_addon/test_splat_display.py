"""What the viewport shader reads, without Blender or a GPU (blender_addon.splat_display): a splat object's
attributes become its splats (hidden ones left out); the packed textures, read back the way the GLSL reads
them, give the same screen-space splats as gs_core.splat_view.project; the draw order is back to front; the
selection tint and instance colours are what the shader's SH colour turns them into."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared splat scenes
from splat_scenes import cam, random_object, trs  # noqa: E402

from blender_addon import splat_attributes as sa  # noqa: E402
from blender_addon import splat_display  # noqa: E402
from gs_core import sh, splat_view  # noqa: E402

EPS32 = float(np.finfo(np.float32).eps)


def attributes_of(table):
    data = sa.table_to_splat_data(table, "test.ply")
    return {name: attr.values for name, attr in data.attributes.items()}


def test_object_splats_from_attributes_leave_hidden_ones_out(make_table):
    table = make_table(n=50, degree=2, seed=1)
    attrs = attributes_of(table)
    attrs[sa.HIDDEN] = np.zeros(50, bool)
    attrs[sa.HIDDEN][[3, 7]] = True
    obj = splat_display.object_splats(attrs, trs((1, 2, 3)))
    assert len(obj) == 48 and obj.sh.shape == (48, 9, 3)
    keep = np.setdiff1d(np.arange(50), [3, 7])
    np.testing.assert_array_equal(obj.means[:, 0], table.columns["x"][keep])
    np.testing.assert_array_equal(obj.sh[:, 0, 1], table.columns["f_dc_1"][keep])
    # SH index 1 is rest coefficient 0; blue's come after red's and green's 8: column 16
    np.testing.assert_array_equal(obj.sh[:, 1, 2], table.columns["f_rest_16"][keep])
    np.testing.assert_array_equal(obj.opacities, sa.activate_opacity(table.columns["opacity"][keep]))
    assert np.array_equal(obj.matrix, trs((1, 2, 3)))
    assert len(splat_display.object_splats(attrs, np.eye(4), keep_hidden=True)) == 50


def test_packed_textures_read_as_the_shader_reads_them_project_like_splat_view():
    objects = [random_object(200, degree=3, seed=21,
                             matrix=trs((0.2, 0, 0), axis=(1, 1, 0), angle=0.8, scale=(1.2,) * 3)),
               random_object(150, degree=1, seed=22, matrix=trs((0, 0.3, 0.1), axis=(0, 0, 1), angle=-0.4))]
    camera = cam()
    packed = splat_display.pack_splats(objects)
    assert packed.dtype == np.float32 and packed.shape == (350 * splat_display.texels_per_splat(3), 4)
    got = splat_display.project_packed(packed, splat_display.object_rows(objects), camera)
    want = splat_view.project(objects, camera)
    both = got.visible & want.visible
    assert both.sum() > 250 and (got.visible != want.visible).sum() <= 2  # culling at a rounding edge at most
    # the textures hold float32: positions and covariances rounded once (relative 2^-24), conics through
    # the inverse of a 2x2 covariance whose condition number stays below ~1e3 for these splats
    assert np.abs(got.means2d[both] - want.means2d[both]).max() < 1e-3
    rel = np.abs(got.conics[both] - want.conics[both]) / np.abs(want.conics[both]).max(axis=1, keepdims=True)
    assert rel.max() < 1e3 * 8 * EPS32
    assert np.abs(got.radii[both] - want.radii[both]).max() <= 1
    assert np.abs(got.colors[both] - want.colors[both]).max() < 1e-4
    assert np.array_equal(got.opacities, want.opacities.astype(np.float32))


def test_an_object_with_every_splat_hidden_packs_to_nothing():
    empty = random_object(10, degree=3, seed=23).subset(np.zeros(10, bool))
    packed = splat_display.pack_splats([random_object(5, degree=1, seed=24), empty])
    assert packed.shape == (5 * splat_display.texels_per_splat(3), 4)


def test_draw_order_is_back_to_front_in_camera_depth():
    objects = [random_object(100, seed=23), random_object(100, seed=24, matrix=trs((0, 0.5, 0)))]
    camera = cam()
    depths = splat_display.view_depths(objects, camera.world_to_camera)
    order = splat_display.draw_order(depths)
    exact = splat_view.project(objects, camera).depths
    assert np.abs(depths - exact).max() < 1e-5
    assert np.all(np.diff(exact[order]) <= 1e-5)


def test_selection_tint_and_instance_colours_through_the_shaders_sh_colour():
    obj = random_object(6, degree=2, seed=25)
    dirs = np.tile([[0.0, 0.6, 0.8]], (6, 1))
    selected = np.array([True, False, True, False, False, False])
    coeffs = splat_display.display_colors(obj, selected=selected)
    own = sh.evaluate(obj.sh, dirs) + 0.5
    tinted = sh.evaluate(coeffs.astype(np.float64), dirs) + 0.5
    np.testing.assert_allclose(tinted[~selected], own[~selected], atol=1e-6)
    mix = splat_display.HIGHLIGHT_MIX
    np.testing.assert_allclose(tinted[selected], (1 - mix) * own[selected] + mix * splat_display.HIGHLIGHT, atol=1e-5)
    linear = np.random.default_rng(0).random((6, 3))
    flat = splat_display.display_colors(obj, instance_colors=linear)
    shown = sh.evaluate(flat.astype(np.float64), dirs) + 0.5
    np.testing.assert_allclose(shown, splat_display.linear_to_srgb(linear), atol=1e-6)
    np.testing.assert_allclose(splat_display.srgb_to_linear(splat_display.linear_to_srgb(linear)), linear, atol=1e-12)


def test_sort_is_exact_when_still_and_coarse_while_a_slow_sort_keeps_moving():
    objects = [random_object(100, seed=26)]
    views = [cam(eye=(x, -3.2, 0.9)).world_to_camera for x in (0.0, 0.5, 1.0, 1.5)]
    now = [0.0]
    state = splat_display.SortState(slow_seconds=0.03, clock=lambda: now[0])

    def exact(view, objs=objects):
        return splat_display.draw_order(splat_display.view_depths(objs, view))

    assert np.array_equal(state.update(objects, views[0]), exact(views[0]))
    assert state.update(objects, views[0]) is None and not state.stale  # nothing changed
    assert np.array_equal(state.update(objects, views[1]), exact(views[1]))  # moving, but the sort was fast
    state.seconds = 0.2  # a slow sort (1M splats on a busy CPU)
    coarse = state.update(objects, views[2])  # moving: a 16-bit order now, the exact one when it rests
    assert state.stale and sorted(coarse) == list(range(100))
    depths = splat_display.view_depths(objects, views[2])
    bucket = (depths.max() - depths.min()) / 65535
    assert np.all(np.diff(depths[coarse]) <= bucket)
    assert state.update(objects, views[3]) is not None and state.stale  # still moving: coarse again
    assert state.update(objects, views[2]) is not None and state.stale
    state.rest()
    assert np.array_equal(state.update(objects, views[2]), exact(views[2]))  # the view rests: exact
    assert not state.stale and state.update(objects, views[2]) is None
    objects[0].matrix = trs((0.1, 0, 0))  # an object moved with the view still: exact
    assert np.array_equal(state.update(objects, views[2]), exact(views[2]))
    fewer = [objects[0].subset(slice(0, 50))]  # the splats changed: an order of the new ones
    assert len(state.update(fewer, views[3])) == 50


def test_coarse_order_of_equal_and_empty_depths():
    assert splat_display.coarse_draw_order(np.zeros(0)).shape == (0,)
    assert list(splat_display.coarse_draw_order(np.full(4, 2.0))) == [0, 1, 2, 3]
    assert list(splat_display.coarse_draw_order(np.array([1.0, 3.0, 2.0]))) == [1, 2, 0]

"""Editing splat objects: separate + join keep every attribute of every splat (also across
transformed objects), delete removes exactly the selection, hide/reveal keep the data, apply
transform keeps the world-space result, and operators without a selection report it."""

import numpy as np
import pytest

pytestmark = pytest.mark.blender


def select(obj, mask):
    from blender_addon import splat_attributes as sa
    from blender_addon import splat_object

    splat_object.write_attributes(obj.data, {".selection": sa.Attribute("BOOLEAN", mask)})


def rows_by_index(attributes):
    """Attributes with rows sorted by gs:index (the stable per-splat id), edit-mode state dropped."""
    order = np.argsort(attributes["gs:index"], kind="stable")
    return {name: values[order] for name, values in attributes.items() if not name.startswith(".")}


def assert_same_attributes(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert actual[name].tobytes() == expected[name].tobytes(), name


def test_separate_then_join_keeps_every_attribute(bpy, imported, attributes_of):
    obj, table, _ = imported(n=1000, extra=True)
    original = attributes_of(obj)
    mask = np.random.default_rng(1).random(1000) < 0.3
    select(obj, mask)
    assert bpy.ops.gs_splats.separate() == {'FINISHED'}

    (part,) = [o for o in bpy.data.objects if o is not obj]
    assert len(part.data.points) == mask.sum() and len(obj.data.points) == (~mask).sum()
    separated = rows_by_index(attributes_of(part))
    assert np.array_equal(separated["gs:index"], np.flatnonzero(mask))
    assert_same_attributes(separated, {k: v[mask] for k, v in original.items()})
    assert part.get("gs_ply_schema") == obj.get("gs_ply_schema")

    part.select_set(True)
    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.gs_splats.join() == {'FINISHED'}
    assert list(bpy.data.objects) == [obj]
    assert_same_attributes(rows_by_index(attributes_of(obj)), original)


def test_join_bakes_transforms_so_the_world_result_is_unchanged(bpy, imported, tmp_path):
    from gs_core.io.ply import read_ply_table

    obj, _, _ = imported(n=500, degree=3)
    mask = np.zeros(500, bool)
    mask[:200] = True
    select(obj, mask)
    bpy.ops.gs_splats.separate()
    part = bpy.context.active_object
    part.location, part.rotation_euler, part.scale = (1.0, -2.0, 0.5), (0.4, -0.3, 1.2), (1.5, 1.5, 1.5)
    bpy.context.view_layer.update()
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "before.ply"))

    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.gs_splats.join()
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "after.ply"))
    before, after = read_ply_table(tmp_path / "before.ply"), read_ply_table(tmp_path / "after.ply")
    for name in before.names:  # the same computation, so the same bits
        assert after.columns[name].tobytes() == before.columns[name].tobytes(), name


def test_delete_removes_exactly_the_selection(bpy, imported, attributes_of):
    obj, _, _ = imported(n=300)
    mask = np.arange(300) % 4 == 0
    select(obj, mask)
    assert bpy.ops.gs_splats.delete() == {'FINISHED'}
    assert np.array_equal(np.sort(attributes_of(obj)["gs:index"]), np.flatnonzero(~mask))


def test_hide_and_reveal_keep_the_data(bpy, imported, attributes_of):
    obj, _, _ = imported(n=300)
    original = attributes_of(obj)
    mask = np.arange(300) < 120
    select(obj, mask)
    assert bpy.ops.gs_splats.hide() == {'FINISHED'}
    evaluated = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    assert len(obj.data.points) == 300 and len(evaluated.data.points) == 180
    assert not attributes_of(obj)[".selection"].any()  # hidden splats are deselected

    select(obj, np.ones(300, bool))  # hidden splats are not separated with the rest
    bpy.ops.gs_splats.separate()
    assert len(bpy.context.active_object.data.points) == 180

    bpy.context.view_layer.objects.active = obj
    assert bpy.ops.gs_splats.reveal() == {'FINISHED'}
    assert "gs:hidden" not in obj.data.attributes and not obj.modifiers
    assert_same_attributes({k: v for k, v in attributes_of(obj).items() if not k.startswith(".")},
                           {k: v[mask] for k, v in original.items()})


def test_apply_transform_keeps_the_world_result(bpy, imported, tmp_path):
    from gs_core.io.ply import read_ply_table

    obj, _, _ = imported(n=200, degree=2)
    obj.location, obj.rotation_euler, obj.scale = (3.0, 0.0, 1.0), (0.0, 0.7, 0.2), (-2.0, -2.0, -2.0)
    bpy.context.view_layer.update()
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "before.ply"))
    assert bpy.ops.gs_splats.apply_transform() == {'FINISHED'}
    assert np.allclose(np.array(obj.matrix_world), np.eye(4))
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "after.ply"))
    before, after = read_ply_table(tmp_path / "before.ply"), read_ply_table(tmp_path / "after.ply")
    for name in before.names:
        assert after.columns[name].tobytes() == before.columns[name].tobytes(), name


def test_edits_without_a_selection_report_it(bpy, imported):
    imported(n=50)
    for op in (bpy.ops.gs_splats.separate, bpy.ops.gs_splats.delete, bpy.ops.gs_splats.hide):
        with pytest.raises(RuntimeError, match="no splats selected on 'scene'"):
            op()
    with pytest.raises(RuntimeError, match="at least two splat objects"):
        bpy.ops.gs_splats.join()

"""Stable per-splat source ids in Blender: rows of a file select the right splats after separate, join
(also of two files whose rows collide) and delete; SET / ADD / REMOVE; hidden splats never selected;
selected_rows inverts select_rows; the ids survive the full import -> separate -> join -> export
round trip, and separate + move + export equals the numpy transform of the selected rows."""

import numpy as np
import pytest

pytestmark = pytest.mark.blender


def ids_of(obj):
    from blender_addon import splat_attributes as sa
    from blender_addon import splat_object

    values = splat_object.read_attributes(obj.data, [sa.SOURCE, sa.INDEX, ".selection"])
    return values[sa.SOURCE], values[sa.INDEX], values.get(".selection")


def positions(obj):
    from blender_addon import splat_object

    return splat_object.read_attributes(obj.data, ["position"])["position"]


def xyz(table, rows):
    return np.stack([table.columns[c][rows] for c in "xyz"], axis=1)


def test_import_sets_the_file_id_and_rows(imported):
    from gs_core import splat_ids

    obj, table, path = imported(n=300)
    source, index, _ = ids_of(obj)
    assert np.all(source == splat_ids.file_id(path)) and np.array_equal(index, np.arange(300))


def test_rows_select_the_right_splats_after_join_separate_and_delete(bpy, imported):
    from blender_addon import edit_ops, selection
    from gs_core import splat_ids

    a, table_a, path_a = imported("a.ply", n=400, seed=1)
    b, table_b, path_b = imported("b.ply", n=400, seed=2)  # same rows 0..399: gs:index alone collides
    b.location = (5.0, 0.0, 0.0)
    rng = np.random.default_rng(0)
    edit_ops.join_splats(bpy.context, [a, b], a)
    part = edit_ops.separate_splats(bpy.context, a, rng.random(800) < 0.4)
    edit_ops.delete_splats(bpy.context, part, rng.random(len(part.data.points)) < 0.2)
    objects = [a, part]

    rows = np.flatnonzero(rng.random(400) < 0.3)
    count = selection.select_rows(objects, rows, path_a)  # by path ...
    assert count == selection.select_rows(objects, rows, splat_ids.file_id(path_a))  # ... or by id
    held = 0
    for obj in objects:
        source, index, selected = ids_of(obj)
        expected = (source == splat_ids.file_id(path_a)) & np.isin(index, rows)
        assert np.array_equal(selected, expected)
        # the selected splats are those rows of a.ply: same positions (a was not moved)
        assert np.array_equal(positions(obj)[selected], xyz(table_a, index[selected]))
        held += np.isin(index[source == splat_ids.file_id(path_a)], rows).sum()
    assert count == held > 0  # every surviving splat of those rows, none of b.ply's
    assert np.array_equal(selection.selected_rows(objects, path_a), np.intersect1d(
        rows, np.concatenate([ids_of(o)[1][ids_of(o)[0] == splat_ids.file_id(path_a)] for o in objects])))
    assert selection.selected_rows(objects, path_b).size == 0


def test_set_add_remove_and_hidden_splats(bpy, imported):
    from blender_addon import edit_ops, selection

    obj, _, path = imported(n=100)
    assert selection.select_rows([obj], np.arange(0, 50), path) == 50
    assert selection.select_rows([obj], np.arange(40, 60), path, mode="ADD") == 60
    assert selection.select_rows([obj], np.arange(0, 10), path, mode="REMOVE") == 50
    assert np.array_equal(selection.selected_rows([obj], path), np.arange(10, 60))
    assert selection.select_rows([obj], np.arange(100) < 5, path) == 5  # a bool mask over the rows
    edit_ops.hide_splats(obj, np.arange(100) < 3)
    assert selection.select_rows([obj], np.arange(5), path) == 2
    with pytest.raises(ValueError, match="mode"):
        selection.select_rows([obj], np.arange(5), path, mode="TOGGLE")
    with pytest.raises(ValueError, match=">= 0"):  # nothing written on error
        selection.select_rows([obj], np.array([-1]), path)
    assert np.array_equal(selection.selected_rows([obj], path), [3, 4])


def test_splats_without_ids_never_match(bpy, imported):
    """Joining an object that has no ids (as from Blender 5.3's own importer): Blender fills 0."""
    from blender_addon import edit_ops, selection, splat_attributes as sa

    obj, _, path = imported("a.ply", n=50)
    other, _, _ = imported("b.ply", n=50, seed=3)
    for name in (sa.SOURCE, sa.INDEX):
        other.data.attributes.remove(other.data.attributes[name])
    assert selection.select_rows([other], np.arange(50), path) == 0
    edit_ops.join_splats(bpy.context, [obj, other], obj)
    assert selection.select_rows([obj], np.arange(50), path) == 50
    assert selection.source_ids(obj) == [selection.resolve_source(path)]


def test_selection_drives_the_separate_operator_in_edit_mode(bpy, imported):
    from blender_addon import selection

    obj, table, path = imported(n=200)
    bpy.ops.object.mode_set(mode='EDIT')
    selection.select_rows([obj], np.arange(20, 70), path)
    assert bpy.ops.gs_splats.separate() == {'FINISHED'}
    assert bpy.context.mode == 'EDIT_POINTCLOUD' and bpy.context.active_object is obj  # as mesh editing
    (new,) = [o for o in bpy.data.objects if o is not obj]
    assert np.array_equal(np.sort(ids_of(new)[1]), np.arange(20, 70))
    assert np.array_equal(positions(new)[np.argsort(ids_of(new)[1])], xyz(table, np.arange(20, 70)))


def test_two_files_joined_and_exported_keep_every_bit(bpy, imported, tmp_path, assert_identical):
    """import a + b -> separate part of a -> join all -> export: reordered by (file, row) the export is
    the two input files bit for bit (ids never reach the PLY)."""
    from blender_addon import edit_ops, export_splats
    from gs_core import splat_ids
    from gs_core.io.ply import read_ply_table

    a, table_a, path_a = imported("a.ply", n=300, seed=4, extra=True)
    b, table_b, path_b = imported("b.ply", n=200, seed=5, extra=True)
    edit_ops.separate_splats(bpy.context, a, np.arange(300) % 3 == 0)
    objects = export_splats.splat_objects(bpy.context)
    edit_ops.join_splats(bpy.context, objects, b)
    source, index, _ = ids_of(b)
    out = tmp_path / "joined.ply"
    assert export_splats.export_splats([b], out) == 500
    exported = read_ply_table(out)
    assert "gs:index" not in exported.names and "gs:source" not in exported.names
    for path, table in ((path_a, table_a), (path_b, table_b)):
        mine = np.flatnonzero(source == splat_ids.file_id(path))
        rows = exported.select(mine[np.argsort(index[mine])])
        assert_identical(rows, table)


def test_separate_move_export_equals_numpy_transform_of_the_rows(bpy, imported, tmp_path):
    """The backend's rows, selected, separated and moved in Blender, exported with everything else:
    the file holds the untouched rows as they were and the selected rows transformed by numpy."""
    from blender_addon import selection
    from gs_core.io.ply import read_ply_table
    from gs_core.splat_transform import Splats, transform_splats

    obj, table, path = imported("room.ply", n=500, degree=3)
    rows = np.flatnonzero(np.random.default_rng(6).random(500) < 0.25)
    selection.select_rows([obj], rows, path)
    assert bpy.ops.gs_splats.separate() == {'FINISHED'}
    part = bpy.context.active_object
    part.location, part.rotation_euler, part.scale = (0.5, -1.0, 2.0), (0.7, 0.1, -1.3), (1.5, 1.5, 1.5)
    bpy.context.view_layer.update()
    matrix = np.array(part.matrix_world, dtype=np.float64)
    assert bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "edited.ply")) == {'FINISHED'}
    out = read_ply_table(tmp_path / "edited.ply")

    rest = np.setdiff1d(np.arange(500), rows)  # objects go out by name: "room" then "room.001"
    assert len(out) == 500
    kept = out.select(np.arange(len(rest)))
    assert all(kept.columns[n].tobytes() == table.columns[n][rest].tobytes() for n in table.names)

    moved = out.select(np.arange(len(rest), 500))
    order = np.argsort(ids_of(part)[1])  # export follows the object's point order
    assert np.array_equal(ids_of(part)[1][order], rows)
    moved = moved.select(order)
    src = table.select(rows)

    def stack(t, names):
        return np.stack([t.columns[n].astype(np.float64) for n in names], axis=1)

    expected = transform_splats(matrix, Splats(
        means=stack(src, "xyz"), quats=stack(src, [f"rot_{i}" for i in range(4)]),
        log_scales=stack(src, [f"scale_{i}" for i in range(3)]),
        sh_rest=stack(src, [f"f_rest_{i}" for i in range(45)]).reshape(-1, 3, 15).transpose(0, 2, 1)))
    np.testing.assert_allclose(stack(moved, "xyz"), expected.means, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(stack(moved, [f"scale_{i}" for i in range(3)]), expected.log_scales, atol=1e-6)
    quats = stack(moved, [f"rot_{i}" for i in range(4)])
    np.testing.assert_allclose(np.abs(np.sum(quats * expected.quats, axis=1)),
                               np.sum(expected.quats ** 2, axis=1), rtol=1e-5)  # q ~ -q
    np.testing.assert_allclose(stack(moved, [f"f_rest_{i}" for i in range(45)]),
                               expected.sh_rest.transpose(0, 2, 1).reshape(-1, 45), atol=1e-6)
    for name in ("f_dc_0", "f_dc_1", "f_dc_2", "opacity"):  # untouched by a transform: same bits
        assert moved.columns[name].tobytes() == src.columns[name].tobytes()

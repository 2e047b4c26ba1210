"""Exporting splat objects into one INRIA PLY: an object's rotation, translation and uniform scale
(mirrors too) are baked exactly like the same transform applied in numpy; the identity round trip
is bit-exact; non-uniform scale with SH is refused clearly; the source file is never overwritten
unless asked, and the write is atomic."""

import numpy as np
import pytest

from gs_core import sh
from gs_core.io.ply import read_ply_table
from gs_core.splat_transform import quat_multiply, quat_to_matrix

pytestmark = pytest.mark.blender


def set_transform(bpy, obj, location=(0, 0, 0), rotation=(0, 0, 0), scale=(1, 1, 1)):
    obj.location, obj.rotation_euler, obj.scale = location, rotation, scale
    bpy.context.view_layer.update()
    return np.array(obj.matrix_world, dtype=np.float64)


def stack(table, names):
    return np.stack([table.columns[n].astype(np.float64) for n in names], axis=1)


@pytest.mark.parametrize("scale", [2.0, -0.5], ids=["uniform-scale", "mirrored"])
def test_transformed_object_equals_numpy_transform(bpy, imported, tmp_path, scale):
    obj, table, _ = imported(n=400, degree=3)
    matrix = set_transform(bpy, obj, (1.0, -2.0, 3.0), (0.3, -1.1, 2.0), (scale,) * 3)
    rotation_quat = np.array(obj.matrix_world.to_quaternion())  # Blender's own decomposition, wxyz
    assert bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "out.ply")) == {'FINISHED'}
    out = read_ply_table(tmp_path / "out.ply")
    assert out.names == table.names and all(out.columns[n].dtype == np.float32 for n in out.names)

    xyz = stack(table, "xyz")
    np.testing.assert_allclose(stack(out, "xyz"), xyz @ matrix[:3, :3].T + matrix[:3, 3], rtol=1e-6, atol=1e-6)
    scales = [f"scale_{i}" for i in range(3)]
    np.testing.assert_allclose(stack(out, scales), stack(table, scales) + np.log(abs(scale)), atol=1e-6)
    rots = [f"rot_{i}" for i in range(4)]
    expected_quats = quat_multiply(rotation_quat, stack(table, rots))
    same_rotation = np.abs(np.sum(expected_quats * stack(out, rots), axis=1)) / np.sum(expected_quats ** 2, axis=1)
    np.testing.assert_allclose(same_rotation, 1.0, atol=1e-5)  # q and -q are the same rotation

    # view-dependent colour: the exported splat seen along A d looks like the original seen along d
    def coefficients(t):  # [N, 16, 3]
        rest = stack(t, [f"f_rest_{i}" for i in range(45)]).reshape(-1, 3, 15).transpose(0, 2, 1)
        return np.concatenate([stack(t, [f"f_dc_{i}" for i in range(3)])[:, None], rest], axis=1)

    dirs = np.random.default_rng(0).normal(size=(len(table), 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    moved_dirs = dirs @ matrix[:3, :3].T
    moved_dirs /= np.linalg.norm(moved_dirs, axis=1, keepdims=True)
    np.testing.assert_allclose(sh.evaluate(coefficients(out), moved_dirs), sh.evaluate(coefficients(table), dirs),
                               atol=1e-5)


def test_round_trip_with_identity_is_exact(bpy, imported, tmp_path, assert_identical, attributes_of):
    obj, table, _ = imported(n=500, extra=True)
    first = attributes_of(obj)
    out_path = tmp_path / "out.ply"
    bpy.ops.gs_splats.export_ply(filepath=str(out_path))
    assert_identical(read_ply_table(out_path), table)
    bpy.ops.gs_splats.import_ply(filepath=str(out_path))
    again = attributes_of(bpy.context.active_object)
    assert sorted(again) == sorted(first)
    assert all(again[k].tobytes() == first[k].tobytes() for k in first)


def test_all_or_selected_objects_go_into_one_file(bpy, imported, tmp_path):
    a, ta, _ = imported("a.ply", n=100, degree=1)
    b, tb, _ = imported("b.ply", n=60, degree=0, seed=1)
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "all.ply"))
    out = read_ply_table(tmp_path / "all.ply")
    assert len(out) == 160 and out.names == ta.names
    assert np.array_equal(out.columns["x"], np.concatenate([ta.columns["x"], tb.columns["x"]]))
    assert not out.columns["f_rest_0"][100:].any()  # b has no degree-1 band: zeros

    a.select_set(False)
    b.select_set(True)
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "selected.ply"), use_selection=True)
    assert len(read_ply_table(tmp_path / "selected.ply")) == 60


def test_non_uniform_scale_is_refused_with_sh_and_exact_without(bpy, imported, tmp_path):
    obj, _, _ = imported(n=50, degree=2)
    set_transform(bpy, obj, scale=(1.0, 2.0, 1.0))
    with pytest.raises(RuntimeError, match="'scene'.*non-uniformly.*SH degree 2"):
        bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "out.ply"))
    assert not (tmp_path / "out.ply").exists()

    flat, table, _ = imported("flat.ply", n=50, degree=0)
    obj.select_set(False)
    matrix = set_transform(bpy, flat, rotation=(0.5, 0.0, 0.2), scale=(1.0, 3.0, 0.5))
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "flat_out.ply"), use_selection=True)
    out = read_ply_table(tmp_path / "flat_out.ply")

    def covariances(t):
        f = quat_to_matrix(stack(t, [f"rot_{i}" for i in range(4)])) * np.exp(
            stack(t, [f"scale_{i}" for i in range(3)]))[:, None, :]
        return f @ f.transpose(0, 2, 1)

    linear = matrix[:3, :3]
    np.testing.assert_allclose(covariances(out), linear @ covariances(table) @ linear.T, rtol=1e-4, atol=1e-12)


def test_source_file_is_kept_unless_asked_and_writes_are_atomic(bpy, imported, tmp_path):
    obj, _, path = imported(n=40)
    original = path.read_bytes()
    obj.location = (1.0, 0.0, 0.0)
    bpy.context.view_layer.update()
    with pytest.raises(RuntimeError, match="scene.ply is the file 'scene' was imported from"):
        bpy.ops.gs_splats.export_ply(filepath=str(path))
    assert path.read_bytes() == original
    assert bpy.ops.gs_splats.export_ply(filepath=str(path), overwrite_source=True) == {'FINISHED'}
    assert path.read_bytes() != original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.ply"]  # no temporary files left


def test_hidden_splats_are_exported_unless_excluded(bpy, imported, tmp_path):
    from blender_addon import edit_ops

    obj, _, _ = imported(n=100)
    edit_ops.hide_splats(obj, np.arange(100) < 30)
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "all.ply"))
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "shown.ply"), include_hidden_splats=False)
    assert len(read_ply_table(tmp_path / "all.ply")) == 100
    assert len(read_ply_table(tmp_path / "shown.ply")) == 70


def test_exporting_the_selection_never_replaces_another_objects_source(bpy, imported, tmp_path):
    a, _, path_a = imported("a.ply", n=30)
    b, _, _ = imported("b.ply", n=20, seed=1)
    original = path_a.read_bytes()
    a.select_set(False)
    with pytest.raises(RuntimeError, match="a.ply is the file 'a' was imported from"):
        bpy.ops.gs_splats.export_ply(filepath=str(path_a), use_selection=True)
    assert path_a.read_bytes() == original
    assert bpy.ops.gs_splats.export_ply(filepath=str(path_a), use_selection=True, overwrite_source=True) == {'FINISHED'}
    assert len(read_ply_table(path_a)) == 20

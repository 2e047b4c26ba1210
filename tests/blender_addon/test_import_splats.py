"""Importing a splat PLY: attributes hold the PLY columns bit for bit (native names where exact,
raw ``ply:`` copies otherwise), with a stable index, viewport colour and display material; file
lists import together; malformed files give a clear report and leave the scene unchanged."""

import numpy as np
import pytest

pytestmark = pytest.mark.blender


def attribute(obj, name):
    from blender_addon import splat_object

    return splat_object.read_attributes(obj.data, [name])[name]


def column_from_attributes(obj, table, name):
    """Where the add-on keeps PLY column ``name``: its raw attribute, or else its native component
    (un-activated: a column without a raw copy is one whose activation round-trips exactly)."""
    from blender_addon import splat_attributes as sa

    dtype = table.columns[name].dtype
    raw = obj.data.attributes.get(sa.RAW_PREFIX + name)
    if raw is not None:
        return sa.decode_raw(attribute(obj, raw.name), dtype)
    num_rest = sum(n.startswith("f_rest_") for n in table.names) // 3
    same = np.asarray
    native = {"x": (sa.POSITION, 0, same), "y": (sa.POSITION, 1, same), "z": (sa.POSITION, 2, same),
              "opacity": (sa.BASE, 3, sa.deactivate_opacity),
              **{f"f_dc_{i}": (sa.BASE, i, same) for i in range(3)},
              **{f"scale_{i}": (sa.SCALE, i, sa.deactivate_scale) for i in range(3)},
              **{f"rot_{i}": (sa.ROTATION, i, same) for i in range(4)},
              **{f"f_rest_{j}": (sa.sh_attribute(j % num_rest), j // num_rest, same) for j in range(3 * num_rest)}}
    attr_name, component, deactivate = native[name]
    return deactivate(attribute(obj, attr_name)[:, component]).astype(dtype)


@pytest.mark.parametrize("kwargs", [dict(degree=3, extra=True), dict(degree=0, two_d=True)],
                         ids=["3dgs-sh3-extra-columns", "2dgs-sh0"])
def test_attributes_equal_ply_columns_bit_for_bit(bpy, splat_ply, kwargs):
    from blender_addon import splat_attributes as sa

    path, table = splat_ply(**kwargs)
    assert bpy.ops.gs_splats.import_ply(filepath=str(path)) == {'FINISHED'}
    obj = bpy.context.active_object
    assert obj.type == 'POINTCLOUD' and obj.name == "scene" and len(obj.data.points) == len(table)
    for name, column in table.columns.items():
        assert column_from_attributes(obj, table, name).tobytes() == column.tobytes(), name
    assert np.array_equal(attribute(obj, sa.INDEX), np.arange(len(table)))
    assert obj.data.attributes[sa.ROTATION].data_type == 'QUATERNION'
    assert obj.data.color_attributes.active.name == sa.COLOR
    assert obj.data.materials[0].name == "GS Splat Colour"


def test_native_values_are_activated(bpy, splat_ply):
    from blender_addon import splat_attributes as sa

    path, table = splat_ply(degree=1)
    bpy.ops.gs_splats.import_ply(filepath=str(path))
    obj = bpy.context.active_object
    cols = {k: v.astype(np.float64) for k, v in table.columns.items()}
    np.testing.assert_allclose(attribute(obj, sa.BASE)[:, 3], 1 / (1 + np.exp(-cols["opacity"])), rtol=1e-6)
    np.testing.assert_allclose(attribute(obj, sa.SCALE)[:, 0], np.exp(cols["scale_0"]), rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(attribute(obj, sa.ROTATION), axis=1), 1.0, rtol=1e-6)


def test_several_files_as_from_the_file_browser_or_drag_and_drop(bpy, splat_ply):
    first, _ = splat_ply("a.ply", n=100)
    second, _ = splat_ply("b.ply", n=50, degree=1)
    result = bpy.ops.gs_splats.import_ply('INVOKE_DEFAULT', directory=str(first.parent),
                                          files=[{"name": "a.ply"}, {"name": "b.ply"}])
    assert result == {'FINISHED'}
    assert sorted((o.name, len(o.data.points)) for o in bpy.data.objects) == [("a", 100), ("b", 50)]
    assert bpy.context.active_object.name == "b"


def scene_state(bpy):
    return {kind: sorted(block.name for block in getattr(bpy.data, kind))
            for kind in ("objects", "meshes", "pointclouds", "materials", "node_groups")}


def truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def not_a_ply(path):
    path.write_text("this is not a PLY file\n")


def missing_opacity(path):
    from gs_core.io.ply import read_ply_table, write_ply_table

    table = read_ply_table(path)
    del table.columns["opacity"]
    write_ply_table(path, table)


def missing_file(path):
    path.unlink()


def no_rows(path):
    from gs_core.io.ply import read_ply_table, write_ply_table

    write_ply_table(path, read_ply_table(path).select(slice(0, 0)))


@pytest.mark.parametrize("damage, problem", [
    (truncated, "truncated or corrupt"), (not_a_ply, "not a valid PLY header"),
    (missing_opacity, "not a Gaussian-splat PLY, missing columns: opacity"), (missing_file, "no such file"),
    (no_rows, "the file has no splats")])
def test_malformed_ply_reports_and_leaves_scene_unchanged(bpy, splat_ply, damage, problem):
    good, _ = splat_ply("good.ply", n=30)
    bad, _ = splat_ply("bad.ply", n=30)
    damage(bad)
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match=f"Cannot import: .*bad.ply: {problem}"):
        bpy.ops.gs_splats.import_ply(directory=str(bad.parent), files=[{"name": "good.ply"}, {"name": "bad.ply"}])
    assert scene_state(bpy) == before


def test_failure_while_building_objects_removes_everything(bpy, splat_ply, monkeypatch):
    from blender_addon import splat_object

    first, _ = splat_ply("a.ply", n=20)
    splat_ply("b.ply", n=20)
    real_write = splat_object.write_attributes
    calls = []

    def fail_on_second_object(pointcloud, attributes):
        calls.append(pointcloud.name)
        if len(calls) == 2:
            raise MemoryError("simulated")
        real_write(pointcloud, attributes)

    monkeypatch.setattr(splat_object, "write_attributes", fail_on_second_object)
    before = scene_state(bpy)
    with pytest.raises(RuntimeError, match="MemoryError: simulated"):  # bpy.ops re-raises it so
        bpy.ops.gs_splats.import_ply(directory=str(first.parent), files=[{"name": "a.ply"}, {"name": "b.ply"}])
    assert scene_state(bpy) == before

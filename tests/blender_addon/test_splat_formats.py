"""SPZ and .splat in the add-on: File > Import of files written by Niantic's C++ and ply2splat, compressed
PLY through the PLY import, drag-and-drop handlers, exports that bake transforms and report what
they drop, bad files reported without touching the scene."""

import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.blender

DATA = Path(__file__).resolve().parents[1] / "io" / "data"
sys.path.insert(0, str(DATA.parent))
from format_helpers import max_abs, rotation_angle_deg  # noqa: E402


def source():
    from gs_core.scene import GaussianScene

    return GaussianScene.load(DATA / "source.ply")


def test_import_files_written_by_other_implementations(bpy):
    from gs_core.scene import GaussianScene

    for name in ("niantic_v3.spz", "niantic_v4.spz", "ply2splat.splat"):
        assert bpy.ops.gs_splats.import_exchange(filepath=str(DATA / name)) == {'FINISHED'}, name
        obj = bpy.context.active_object
        assert obj.name == Path(name).stem and len(obj.data.points) == 256
        from blender_addon import splat_object

        got = GaussianScene.from_table(splat_object.object_table(obj))
        assert max_abs(got.means, source().means) <= 0.5 / 4096 + 1e-6, name  # RUB turned back to PLY axes
    assert bpy.ops.gs_splats.import_ply(filepath=str(DATA / "splat_transform.compressed.ply")) == {'FINISHED'}
    assert len(bpy.context.active_object.data.points) == 256


def test_spz_axes_option_reads_splat_transform_files(bpy):
    from blender_addon import splat_object
    from gs_core.scene import GaussianScene

    bpy.ops.gs_splats.import_exchange(filepath=str(DATA / "splat_transform.spz"), spz_axes="stored")
    got = GaussianScene.from_table(splat_object.object_table(bpy.context.active_object))
    assert max_abs(got.means, source().means) <= 0.5 / 4096 + 1e-6


@pytest.mark.parametrize("operator, suffix, options", [("export_spz", ".spz", {"version": "3"}),
                                                        ("export_spz", ".spz", {"version": "4"}),
                                                        ("export_splat", ".splat", {})])
def test_export_bakes_transforms_and_reports_losses(bpy, tmp_path, operator, suffix, options, capsys):
    from gs_core.scene import GaussianScene

    bpy.ops.gs_splats.import_ply(filepath=str(DATA / "source.ply"))
    obj = bpy.context.active_object
    obj.location = (1.0, 2.0, 3.0)
    bpy.context.view_layer.update()
    out = tmp_path / f"moved{suffix}"
    assert getattr(bpy.ops.gs_splats, operator)(filepath=str(out), **options) == {'FINISHED'}
    got = GaussianScene.load(out)
    want = source()
    assert len(got) == len(want)
    assert max_abs(got.means, want.means + [1.0, 2.0, 3.0]) <= 0.5 / 4096 + 1e-5
    assert rotation_angle_deg(got.quats, want.quats).max() <= 2.0
    if suffix == ".splat":
        assert got.sh_degree == 0
    else:
        assert got.sh_degree == 3 and max_abs(got.sh_rest[:, 3:], want.sh_rest[:, 3:]) <= 8.5 / 128 + 1e-5


def test_export_report_names_what_is_dropped(bpy, tmp_path):
    from blender_addon import splat_formats, splat_object

    bpy.ops.gs_splats.import_ply(filepath=str(DATA / "source.ply"))
    obj = bpy.context.active_object
    count, lost = splat_formats.export_lossy([obj], tmp_path / "x.splat")
    assert count == 256 and any("SH bands 1-3" in item for item in lost) and "normals" in lost
    assert splat_object.is_splat_object(obj)


def test_bad_files_report_and_leave_the_scene(bpy, tmp_path):
    (tmp_path / "cut.spz").write_bytes((DATA / "niantic_v3.spz").read_bytes()[:500])
    (tmp_path / "odd.splat").write_bytes(b"\0" * 33)
    before = set(bpy.data.objects.keys())
    for name in ("cut.spz", "odd.splat"):
        with pytest.raises(RuntimeError, match=f"Cannot import: .*{name}"):
            bpy.ops.gs_splats.import_exchange(filepath=str(tmp_path / name))
    assert set(bpy.data.objects.keys()) == before


def test_drag_and_drop_handlers(bpy):
    handlers = {cls.bl_idname: cls for cls in bpy.types.FileHandler.__subclasses__()}
    assert handlers["GS_FH_import_exchange"].bl_file_extensions == ".spz;.splat"
    assert handlers["GS_FH_import_exchange"].bl_import_operator == "gs_splats.import_exchange"
    assert handlers["GS_FH_import_ply"].bl_file_extensions == ".ply"


def test_menus_list_the_formats(bpy):
    from blender_addon import splat_formats

    assert (bpy.types.TOPBAR_MT_file_import, splat_formats.menu_import) in splat_formats.menus
    assert (bpy.types.TOPBAR_MT_file_export, splat_formats.menu_export) in splat_formats.menus

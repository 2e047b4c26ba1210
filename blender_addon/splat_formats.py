"""File > Import / Export of the splat formats artists exchange besides INRIA PLY: SPZ and .splat
(both ways), and drag-and-drop of .spz / .splat files onto the 3D view. PlayCanvas compressed PLY
comes in through the PLY import, which tells it by its header.

Operators gather settings and call gs_core's readers and writers (vendored, numpy only; SPZ v4 uses
the ``zstandard`` module Blender bundles). Imports keep what the file holds; exports bake world
transforms like the PLY export, and report what the lossy format drops.
"""

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper, poll_file_object_drop

from . import export_splats, import_splats, splat_object
from .gs_core_modules import errors, scene

SPZ_AXES = (
    ("rub", "Right-Up-Back (SPZ)", "As the SPZ format specifies (Niantic, Scaniverse, Blender's own SPZ import): "
     "turned half a turn about X into PLY's axes"),
    ("stored", "As Stored", "Files written by SuperSplat / splat-transform, which store PLY's axes unchanged"),
)
SPZ_VERSIONS = (
    ("3", "SPZ v3 (gzip)", "Read by every SPZ reader"),
    ("4", "SPZ v4 (zstd)", "A little smaller; only recent readers take it (Blender 5.3, current Niantic spz)"),
    ("2", "SPZ v2", "For old readers; rotations keep less precision"),
)


def export_lossy(objects, path, include_hidden=True, **options) -> tuple[int, list[str]]:
    """Write ``objects`` (world transforms baked) as SPZ or .splat by ``path``'s extension; returns
    (splats written, what the format dropped)."""
    path = Path(path)
    table = export_splats.export_table(objects, path, False, include_hidden)
    try:
        splats = scene.GaussianScene.from_table(table, str(path))
        lost = scene.lost_on_save(path, splats)
        splats.save(path, **options)
    except errors.SceneFormatError as exc:
        raise export_splats.ExportError(str(exc)) from None
    except OSError as exc:
        raise export_splats.ExportError(f"{path}: {exc.strerror or exc}") from None
    return len(splats), lost


class GS_OT_import_exchange(bpy.types.Operator, ImportHelper):
    """Import Gaussian splats from SPZ or .splat files as point clouds"""

    bl_idname = "gs_splats.import_exchange"
    bl_label = "Import Gaussian Splats (SPZ, .splat)"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".spz"
    filter_glob: StringProperty(default="*.spz;*.splat", options={'HIDDEN'})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})
    spz_axes: EnumProperty(name="SPZ Axes", items=SPZ_AXES, default="rub",
                           description="How the SPZ file's axes are read")

    def invoke(self, context, event):
        if self.properties.is_property_set("filepath"):  # dropped files: nothing to ask
            return self.execute(context)
        return super().invoke(context, event)

    def execute(self, context):
        return import_splats.run_import(self, context, spz_axes=self.spz_axes)


class GS_FH_import_exchange(bpy.types.FileHandler):
    """Drag-and-drop of .spz and .splat files onto the 3D view offers the splat import."""

    bl_idname = "GS_FH_import_exchange"
    bl_label = "Gaussian Splats (SPZ, .splat)"
    bl_import_operator = GS_OT_import_exchange.bl_idname
    bl_file_extensions = ".spz;.splat"

    @classmethod
    def poll_drop(cls, context):
        return poll_file_object_drop(context)


class _ExportLossy(ExportHelper):
    """Shared settings of the SPZ and .splat exports."""

    bl_options = {'REGISTER'}
    use_selection: BoolProperty(name="Selected Only", description="Export only the selected splat objects")
    use_visible: BoolProperty(name="Visible Only", description="Skip splat objects hidden in the viewport")
    include_hidden_splats: BoolProperty(
        name="Include Hidden Splats", default=True,
        description="Write splats hidden with Hide Splats too (hiding is a view setting, like mesh hiding)")

    def format_options(self) -> dict:
        return {}

    def execute(self, context):
        splat_object.ensure_object_mode(context)
        objects = export_splats.splat_objects(context, self.use_selection, self.use_visible)
        start = time.perf_counter()
        try:
            count, lost = export_lossy(objects, self.filepath, self.include_hidden_splats, **self.format_options())
        except export_splats.ExportError as exc:
            self.report({'ERROR'}, f"Cannot export: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Exported {count:,} splats from {len(objects)} object(s) to {self.filepath} "
                              f"in {time.perf_counter() - start:.2f} s")
        self.report({'WARNING'}, f"{Path(self.filepath).suffix} is lossy; dropped: {'; '.join(lost)}")
        return {'FINISHED'}


class GS_OT_export_spz(_ExportLossy, bpy.types.Operator):
    """Export splat objects into one SPZ file (about 10x smaller than PLY, lossy), baking transforms"""

    bl_idname = "gs_splats.export_spz"
    bl_label = "Export Gaussian Splats (SPZ)"

    filename_ext = ".spz"
    filter_glob: StringProperty(default="*.spz", options={'HIDDEN'})
    version: EnumProperty(name="Version", items=SPZ_VERSIONS, default="3")

    def format_options(self) -> dict:
        return {"version": int(self.version)}


class GS_OT_export_splat(_ExportLossy, bpy.types.Operator):
    """Export splat objects into one .splat file (32 bytes per splat, no view-dependent colour), baking transforms"""

    bl_idname = "gs_splats.export_splat"
    bl_label = "Export Gaussian Splats (.splat)"

    filename_ext = ".splat"
    filter_glob: StringProperty(default="*.splat", options={'HIDDEN'})


def menu_import(self, context):
    self.layout.operator(GS_OT_import_exchange.bl_idname, text="Gaussian Splats (.spz, .splat)")


def menu_export(self, context):
    self.layout.operator(GS_OT_export_spz.bl_idname, text="Gaussian Splats (.spz)")
    self.layout.operator(GS_OT_export_splat.bl_idname, text="Gaussian Splats (.splat)")


classes = (GS_OT_import_exchange, GS_FH_import_exchange, GS_OT_export_spz, GS_OT_export_splat)
menus = ((bpy.types.TOPBAR_MT_file_import, menu_import), (bpy.types.TOPBAR_MT_file_export, menu_export))

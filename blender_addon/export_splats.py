"""File > Export > Gaussian Splats (.ply): every splat object (or the selected ones) into one INRIA PLY.

Blender's own PLY export writes no points for a point cloud, and transforms never reach rotation,
scale or SH attributes, so the export is numpy: each object's world matrix is baked into positions,
quaternions, log-scales, SH bands and normals (:mod:`gs_core.splat_transform`), the tables are
concatenated and written atomically. The file a scene was imported from is never overwritten unless
asked for.
"""

import time
from pathlib import Path

import bpy
from bpy.props import BoolProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from . import splat_attributes as sa
from . import splat_object
from .gs_core_modules import ply, splat_transform


class ExportError(Exception):
    """An export that cannot be done as asked; the message says why."""


def splat_objects(context, selected_only=False, visible_only=False) -> list:
    """Splat objects of the view layer, in a stable order (by name)."""
    objects = context.selected_objects if selected_only else context.view_layer.objects
    objects = [o for o in objects if splat_object.is_splat_object(o) and (not visible_only or o.visible_get())]
    return sorted(objects, key=lambda o: o.name)


def world_table(obj, include_hidden=True) -> ply.PlyTable:
    """One object's splats with its world transform baked in."""
    table = splat_object.object_table(obj)
    if not include_hidden:
        hidden = splat_object.read_attributes(obj.data, [sa.HIDDEN]).get(sa.HIDDEN)
        if hidden is not None:
            table = table.select(~hidden)
    try:
        return sa.transform_table(table, splat_object.matrix_of(obj))
    except splat_transform.SplatTransformError as exc:
        raise ExportError(f"object {obj.name!r}: {exc}") from None


def export_table(objects, path, overwrite_source=False, include_hidden=True) -> ply.PlyTable:
    """``objects`` with their world transforms baked in, as one INRIA table to be written at ``path``
    (refused when ``path`` is a file they, or any other splat object of the file, were imported from,
    unless ``overwrite_source``: exporting the selection must not replace the scene's original either)."""
    path = Path(path)
    if not objects:
        raise ExportError("no splat objects to export")
    if path.exists() and not overwrite_source:
        others = [o for o in bpy.data.objects if o not in objects and splat_object.is_splat_object(o)]
        for obj in [*objects, *others]:
            for source in splat_object.schema_of(obj).get("sources", []):
                if Path(source).exists() and path.samefile(source):
                    raise ExportError(f"{path} is the file {obj.name!r} was imported from; choose another "
                                      "file name, or enable 'Overwrite Source File'")
    try:
        return sa.concatenate_tables([world_table(obj, include_hidden) for obj in objects])
    except ValueError as exc:  # an object that lost its splat attributes
        raise ExportError(str(exc)) from None


def export_splats(objects, path, overwrite_source=False, include_hidden=True) -> int:
    """Write ``objects`` into one PLY at ``path``; returns the number of splats written."""
    path = Path(path)
    table = export_table(objects, path, overwrite_source, include_hidden)
    try:
        ply.write_ply_table(path, table)
    except OSError as exc:
        raise ExportError(f"{path}: {exc.strerror or exc}") from None
    return len(table)


class GS_OT_export_ply(bpy.types.Operator, ExportHelper):
    """Export splat objects into one Gaussian-splat PLY, baking each object's transform"""

    bl_idname = "gs_splats.export_ply"
    bl_label = "Export Gaussian Splats"
    bl_options = {'REGISTER'}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={'HIDDEN'})
    use_selection: BoolProperty(name="Selected Only", description="Export only the selected splat objects")
    use_visible: BoolProperty(name="Visible Only", description="Skip splat objects hidden in the viewport")
    include_hidden_splats: BoolProperty(
        name="Include Hidden Splats", default=True,
        description="Write splats hidden with Hide Splats too (hiding is a view setting, like mesh hiding)")
    overwrite_source: BoolProperty(
        name="Overwrite Source File",
        description="Allow writing over the PLY file the splats were imported from")

    def execute(self, context):
        splat_object.ensure_object_mode(context)
        objects = splat_objects(context, self.use_selection, self.use_visible)
        start = time.perf_counter()
        try:
            count = export_splats(objects, self.filepath, self.overwrite_source, self.include_hidden_splats)
        except ExportError as exc:
            self.report({'ERROR'}, f"Cannot export: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, f"Exported {count:,} splats from {len(objects)} object(s) to {self.filepath} "
                              f"in {time.perf_counter() - start:.2f} s")
        return {'FINISHED'}


def menu_export(self, context):
    self.layout.operator(GS_OT_export_ply.bl_idname, text="Gaussian Splats (.ply)")


classes = (GS_OT_export_ply,)
menus = ((bpy.types.TOPBAR_MT_file_export, menu_export),)

"""File > Import > Gaussian Splats (.ply), and drag-and-drop of .ply files onto the 3D view (INRIA PLY, and
PlayCanvas compressed PLY told by its header; SPZ and .splat have their entries in ``splat_formats``).

Every file is read and checked before anything is created, so a malformed file reports its name
and problem and leaves the scene as it was.
"""

import time
from pathlib import Path

import bpy
from bpy.props import CollectionProperty, StringProperty
from bpy_extras.io_utils import ImportHelper, poll_file_object_drop

from . import splat_attributes as sa
from . import splat_object
from .gs_core_modules import errors, ply, scene, splat_ids


def read_splat_file(path, spz_axes="rub") -> sa.SplatData:
    """Parse and check one splat file (INRIA PLY losslessly; compressed PLY, SPZ, .splat through
    gs_core.scene); raises errors.SceneFormatError (ply.PlyError for PLY) whose message names the file."""
    path = Path(path)
    try:
        kind = scene.scene_file_type(path)
        table = ply.read_ply_table(path) if kind == "ply" else \
            scene.read_scene_table(path, **({"axes": spz_axes} if kind == "spz" else {}))
    except OSError as exc:
        raise ply.PlyError(f"{path}: {exc.strerror or exc}") from exc
    if len(table) == 0:
        raise ply.PlyError(f"{path}: the file has no splats")
    return sa.table_to_splat_data(table, str(path), splat_ids.file_id(path))


def import_splats(context, paths, spz_axes="rub") -> list:
    """Import splat files as point-cloud objects (all or nothing); returns the new objects."""
    datas = [(Path(p).stem, read_splat_file(p, spz_axes)) for p in paths]
    splat_object.ensure_object_mode(context)
    objects = []
    try:
        for name, data in datas:
            objects.append(splat_object.create_splat_object(context, name, data))
    except BaseException:
        for obj in objects:
            splat_object.remove_splat_object(obj)
        raise
    splat_object.select_only(context, objects, objects[-1])
    return objects


def run_import(op, context, **options) -> set:
    """An import operator's body: the chosen (or dropped) files imported, or one error reported
    and nothing changed (a format error of any reader: PLY, compressed PLY, SPZ, .splat)."""
    paths = [Path(op.directory, f.name) for f in op.files if f.name] if op.directory else []
    paths = paths or [Path(op.filepath)]
    start = time.perf_counter()
    try:
        objects = import_splats(context, paths, **options)
    except errors.SceneFormatError as exc:
        op.report({'ERROR'}, f"Cannot import: {exc}")
        return {'CANCELLED'}
    count = sum(len(obj.data.points) for obj in objects)
    op.report({'INFO'}, f"Imported {count:,} splats from {len(paths)} file(s) in {time.perf_counter() - start:.2f} s")
    return {'FINISHED'}


class GS_OT_import_ply(bpy.types.Operator, ImportHelper):
    """Import Gaussian-splat PLY files (3DGS/2DGS) as point clouds, keeping every column losslessly"""

    bl_idname = "gs_splats.import_ply"
    bl_label = "Import Gaussian Splats"
    bl_options = {'REGISTER', 'UNDO'}

    filename_ext = ".ply"
    filter_glob: StringProperty(default="*.ply", options={'HIDDEN'})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={'HIDDEN', 'SKIP_SAVE'})
    directory: StringProperty(subtype='DIR_PATH', options={'HIDDEN', 'SKIP_SAVE'})

    def invoke(self, context, event):
        if self.properties.is_property_set("filepath"):  # dropped files: nothing to ask
            return self.execute(context)
        return super().invoke(context, event)

    def execute(self, context):
        return run_import(self, context)


class GS_FH_import_ply(bpy.types.FileHandler):
    """Drag-and-drop of .ply files onto the 3D view offers the splat import."""

    bl_idname = "GS_FH_import_ply"
    bl_label = "Gaussian Splats"
    bl_import_operator = GS_OT_import_ply.bl_idname
    bl_file_extensions = ".ply"

    @classmethod
    def poll_drop(cls, context):
        return poll_file_object_drop(context)


def menu_import(self, context):
    self.layout.operator(GS_OT_import_ply.bl_idname, text="Gaussian Splats (.ply)")


classes = (GS_OT_import_ply, GS_FH_import_ply)
menus = ((bpy.types.TOPBAR_MT_file_import, menu_import),)

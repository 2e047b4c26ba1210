"""The 3D View sidebar tab "Splats": import/export, the active splat object, its edits, the backend."""

import bpy

from . import edit_ops, export_splats, import_splats, splat_object
from .preferences import addon_preferences


class GS_PT_splats(bpy.types.Panel):
    bl_idname = "GS_PT_splats"
    bl_label = "Gaussian Splats"
    bl_space_type = 'VIEW_3D'
    bl_region_type = 'UI'
    bl_category = "Splats"

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.operator(import_splats.GS_OT_import_ply.bl_idname, text="Import", icon='IMPORT')
        row.operator(export_splats.GS_OT_export_ply.bl_idname, text="Export", icon='EXPORT')

        obj = context.active_object
        box = layout.box()
        if splat_object.is_splat_object(obj):
            box.label(text=f"{obj.name}: {len(obj.data.points):,} splats", icon='POINTCLOUD_DATA')
        else:
            box.label(text="No splat object active")
        col = box.column(align=True)
        col.operator(edit_ops.GS_OT_separate.bl_idname, icon='SELECT_SUBTRACT')
        col.operator(edit_ops.GS_OT_delete.bl_idname, icon='TRASH')
        row = col.row(align=True)
        row.operator(edit_ops.GS_OT_hide.bl_idname, text="Hide", icon='HIDE_ON')
        row.operator(edit_ops.GS_OT_reveal.bl_idname, text="Reveal", icon='HIDE_OFF')
        col.operator(edit_ops.GS_OT_join.bl_idname, icon='SELECT_EXTEND')
        col.operator(edit_ops.GS_OT_apply_transform.bl_idname, icon='OBJECT_ORIGIN')

        prefs = addon_preferences(context)
        backend = layout.box()
        backend.label(text="Backend", icon='CONSOLE')
        backend.label(text=(prefs.python_path if prefs and prefs.python_path
                            else "Set the gs_core Python in the add-on preferences"))


classes = (GS_PT_splats,)

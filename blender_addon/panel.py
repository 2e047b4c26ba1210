"""The 3D View sidebar tab "Splats": import/export, the active splat object, its edits, the backend."""

import bpy

from . import edit_ops, export_splats, import_splats, segmentation, splat_draw, splat_object, splat_render
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
        col.operator(splat_render.GS_OT_setup_render.bl_idname, icon='RENDER_STILL')
        col.prop(context.scene, "gs_draw_gaussians")
        if splat_draw.last_error["message"]:
            col.label(text=splat_draw.last_error["message"], icon='ERROR')

        prefs = addon_preferences(context)
        backend = layout.box()
        backend.label(text="Backend", icon='CONSOLE')
        backend.label(text=(prefs.python_path if prefs and prefs.python_path
                            else "Set the gs_core Python in the add-on preferences"))
        draw_segmentation(layout, context)


def draw_segmentation(layout, context):
    """Prepare, then click / granularity / text selection, preview, and the edits of the selection."""
    s = segmentation.settings(context)
    box = layout.box()
    box.label(text="Segmentation", icon='GROUP_VERTEX')
    col = box.column(align=True)
    col.prop(s, "dataset")
    col.prop(s, "mask_source")
    if s.mask_source == 'SAM':
        col.prop(s, "sam_checkpoint")
    col.prop(s, "method")
    col.prop(s, "device")
    col.prop(s, "work_dir")
    box.operator(segmentation.GS_OT_prepare.bl_idname, icon='PLAY')
    if s.running:
        box.prop(s, "progress", text="Esc cancels")
    if s.status:
        box.label(text=s.status)
    col = box.column(align=True)
    col.enabled = bool(s.work)
    col.operator(segmentation.GS_OT_click_select.bl_idname, icon='RESTRICT_SELECT_OFF')
    for key, what in segmentation.CLICK_GESTURES[1:]:  # the modifiers of a click
        col.label(text=f"{key}: {what}")
    col.prop(s, "level", slider=True)
    row = col.row(align=True)
    row.prop(s, "text", text="")
    row.operator(segmentation.GS_OT_text_query.bl_idname, text="", icon='VIEWZOOM')
    col.prop(s, "preview", icon='COLOR')
    row = col.row(align=True)
    row.operator(edit_ops.GS_OT_separate.bl_idname, text="Separate", icon='SELECT_SUBTRACT')
    row.operator(edit_ops.GS_OT_delete.bl_idname, text="Delete", icon='TRASH')
    row.operator(edit_ops.GS_OT_hide.bl_idname, text="Hide", icon='HIDE_ON')


classes = (GS_PT_splats,)

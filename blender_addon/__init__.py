"""Gaussian Splat Segmentation: import, edit and export Gaussian-splat scenes losslessly, and (with the
gs_core backend) segment them.

Layout, one concept per module: ``splat_attributes`` (PLY columns <-> attributes, bpy-free),
``gs_core_modules`` (the numpy-only gs_core code: vendored copy or source checkout),
``splat_object`` (point-cloud objects), ``import_splats``, ``export_splats``, ``splat_formats`` (SPZ and
.splat import/export), ``edit_ops``,
``panel``, ``preferences``; drawing splats: ``splat_display`` (bpy-free), ``splat_draw`` (viewport),
``splat_render`` (final render); segmentation through the gs_core backend: ``backend_client`` (process and
protocol, bpy-free), ``view_camera`` (viewport <-> pinhole camera, bpy-free), ``segmentation``.
Only register/unregister touch bpy here, so the bpy-free modules import
in plain Python (tests, gs_core).
"""


def _registry():
    """(classes in registration order, (menu, draw function) pairs)."""
    from . import (edit_ops, export_splats, import_splats, panel, preferences, segmentation, splat_formats,
                   splat_render)

    classes = (*preferences.classes, *import_splats.classes, *export_splats.classes, *splat_formats.classes,
               *edit_ops.classes, *segmentation.classes, *splat_render.classes, *panel.classes)
    menus = (*import_splats.menus, *export_splats.menus, *splat_formats.menus)
    return classes, menus


def register():
    import bpy

    classes, menus = _registry()
    from . import segmentation, splat_draw, splat_render

    for cls in classes:
        bpy.utils.register_class(cls)
    segmentation.register_properties()
    splat_render.register_handlers()
    splat_draw.register_handler()  # not in background mode: no GPU there
    for menu, draw in menus:
        menu.append(draw)


def unregister():
    import bpy

    classes, menus = _registry()
    from . import segmentation, splat_draw, splat_render

    splat_draw.unregister_handler()
    splat_render.unregister_handlers()
    for menu, draw in menus:
        menu.remove(draw)
    segmentation.unregister_properties()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)

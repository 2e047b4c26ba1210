"""Registering the add-on from its class list adds its operators, file handler, panel, preferences
and menu entries; unregistering removes them all again (and registering twice in a row works)."""

import pytest

pytestmark = pytest.mark.blender

OPERATORS = ("import_ply", "export_ply", "separate", "delete", "hide", "reveal", "join", "apply_transform")


def has_operator(bpy, name):
    try:
        getattr(bpy.ops.gs_splats, name).get_rna_type()
        return True
    except KeyError:
        return False


def menu_entries(bpy):
    return (bpy.types.TOPBAR_MT_file_import._dyn_ui_initialize()
            + bpy.types.TOPBAR_MT_file_export._dyn_ui_initialize())


def test_register_and_unregister(bpy):
    import blender_addon
    from blender_addon import export_splats, import_splats

    classes, _ = blender_addon._registry()
    kinds = {base.__name__ for cls in classes for base in cls.__mro__}
    assert {"Operator", "FileHandler", "Panel", "AddonPreferences"} <= kinds
    assert all(cls.is_registered for cls in classes)
    assert all(has_operator(bpy, name) for name in OPERATORS)
    assert {import_splats.menu_import, export_splats.menu_export} <= set(menu_entries(bpy))

    blender_addon.unregister()
    try:
        assert not any(cls.is_registered for cls in classes)
        assert not any(has_operator(bpy, name) for name in OPERATORS)
        assert not {import_splats.menu_import, export_splats.menu_export} & set(menu_entries(bpy))
    finally:
        blender_addon.register()  # the fixture unregisters at the end
    assert all(cls.is_registered for cls in classes)


def test_scene_changing_operators_support_undo(bpy):
    """Background Blender has no window, so ed.undo cannot run here; every operator that changes the
    scene is registered for the undo stack (export only writes a file)."""
    from blender_addon import edit_ops, import_splats

    for cls in (import_splats.GS_OT_import_ply, *edit_ops.classes):
        assert {'REGISTER', 'UNDO'} <= cls.bl_options, cls.bl_idname

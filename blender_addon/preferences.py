"""Add-on preferences: where the gs_core backend's Python lives (used by the segmentation backend)."""

import bpy
from bpy.props import StringProperty


class GS_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="gs_core Python",
        subtype='FILE_PATH',
        description="Python interpreter of a virtual environment with gs_core installed "
                    "(e.g. .venv/bin/python); the segmentation backend runs in it as a subprocess",
    )

    def draw(self, context):
        self.layout.prop(self, "python_path")


def addon_preferences(context):
    """This add-on's preferences, or None when it is registered without being enabled (tests)."""
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


classes = (GS_AddonPreferences,)

"""Blender as a host: ``bpy`` (Blender as a Python module) and the add-on package ``blender_addon``,
installed beside gs_core, for the commands that drive Blender headless (``demo --blender``,
``bench addon``, ``bench splats``). One place says what is missing and how to get it."""

from __future__ import annotations

from .errors import UserError


def import_addon(purpose: str, with_bpy: bool = True):
    """``(bpy, blender_addon)``; ``bpy`` is None when ``with_bpy`` is false (the add-on's bpy-free
    modules only). A missing piece is a :class:`UserError` naming ``purpose`` (``"--blender"``)."""
    bpy = None
    if with_bpy:
        try:
            import bpy
        except ImportError as exc:
            raise UserError(f"{purpose}: the bpy wheel does not import here ({exc}); install gs-core[blender] "
                            "(Blender as a module, Python 3.11)") from None
    try:
        import blender_addon
    except ImportError as exc:
        raise UserError(f"{purpose}: the add-on package blender_addon does not import ({exc}); reinstall gs-core "
                        "(it installs the add-on beside gs_core)") from None
    return bpy, blender_addon

"""Add-on preferences: where the gs_core backend's Python lives (auto-detected, checked with a
message), and **Set up backend**, which makes a virtual environment and installs gs-core into it with
progress (:func:`.backend_client.setup_backend`; a thread in the UI, blocking in background mode)."""

import threading
from pathlib import Path

import bpy
from bpy.props import FloatProperty, StringProperty

from . import backend_client


class GS_AddonPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    python_path: StringProperty(
        name="gs_core Python",
        subtype='FILE_PATH',
        description="Python interpreter of a virtual environment with gs_core installed "
                    "(e.g. .venv/bin/python); the segmentation backend runs in it as a subprocess. "
                    "Empty: detected ($GS_CORE_PYTHON, the Set up backend environment, a .venv beside the add-on)",
    )
    setup_dir: StringProperty(name="Backend environment", subtype='DIR_PATH',
                              description="Where Set up backend makes its virtual environment")
    setup_packages: StringProperty(name="Install", default="gs-core",
                                   description="What Set up backend installs (pip requirement)")
    wheel_folder: StringProperty(name="Local wheels", subtype='DIR_PATH',
                                 description="Optional folder of wheels to install from (offline install)")
    ray_address: StringProperty(
        name="Render farm (Ray)",
        description="Where Prepare runs its per-view steps: empty, in the backend process; 'local', a Ray "
                    "cluster on this machine's cores; HOST:PORT, the Ray cluster started there with "
                    "`ray start --head` (gs-core[ray] installed on every node). The result is the same",
    )
    status: StringProperty(name="Status")
    progress: FloatProperty(min=0.0, max=1.0, subtype='FACTOR')

    def draw(self, context):
        layout = self.layout
        row = layout.row(align=True)
        row.prop(self, "python_path")
        row.operator(GS_OT_detect_backend.bl_idname, text="", icon='VIEWZOOM')
        row.operator(GS_OT_check_backend.bl_idname, text="", icon='CHECKMARK')
        box = layout.box()
        box.prop(self, "setup_dir")
        box.prop(self, "setup_packages")
        box.prop(self, "wheel_folder")
        box.operator(GS_OT_setup_backend.bl_idname, icon='CONSOLE')
        layout.prop(self, "ray_address")
        if self.status:
            layout.label(text=self.status)


def addon_preferences(context):
    """This add-on's preferences, or None when it is registered without being enabled (tests)."""
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def default_setup_dir() -> Path:
    """The add-on's own user folder (extensions) or Blender's user data folder."""
    try:
        return Path(bpy.utils.extension_path_user(__package__, create=True)) / "backend_venv"
    except (ValueError, AttributeError):
        return Path(bpy.utils.user_resource('DATAFILES', path="gs_core_backend", create=True)) / "venv"


class _PrefsOperator:
    bl_options = {'REGISTER', 'INTERNAL'}

    @classmethod
    def poll(cls, context):
        return addon_preferences(context) is not None


class GS_OT_detect_backend(_PrefsOperator, bpy.types.Operator):
    """Find a Python with gs_core ($GS_CORE_PYTHON, the Set up backend environment, a .venv beside the add-on)"""

    bl_idname = "gs_splats.detect_backend"
    bl_label = "Detect gs_core Python"

    def execute(self, context):
        prefs = addon_preferences(context)
        python, message = backend_client.detect_interpreter(bpy.path.abspath(prefs.setup_dir) or default_setup_dir())
        prefs.status = message
        if python is None:
            self.report({'ERROR'}, message)
            return {'CANCELLED'}
        prefs.python_path = python
        self.report({'INFO'}, f"{python}: {message}")
        return {'FINISHED'}


class GS_OT_check_backend(_PrefsOperator, bpy.types.Operator):
    """Check that the gs_core Python imports gs_core and torch"""

    bl_idname = "gs_splats.check_backend"
    bl_label = "Check gs_core Python"

    def execute(self, context):
        prefs = addon_preferences(context)
        result = backend_client.check_interpreter(bpy.path.abspath(prefs.python_path))
        prefs.status = result.message
        self.report({'INFO'} if result.ok else {'ERROR'}, result.message)
        return {'FINISHED'} if result.ok else {'CANCELLED'}


class GS_OT_setup_backend(_PrefsOperator, bpy.types.Operator):
    """Make a virtual environment and install gs-core into it (a few minutes, a large download for torch);
    Esc cancels"""

    bl_idname = "gs_splats.setup_backend"
    bl_label = "Set up backend"

    def _arguments(self, context):
        prefs = addon_preferences(context)
        venv = Path(bpy.path.abspath(prefs.setup_dir)) if prefs.setup_dir else default_setup_dir()
        wheels = [bpy.path.abspath(prefs.wheel_folder)] if prefs.wheel_folder else []
        return prefs, dict(venv=venv, packages=prefs.setup_packages.split() or ["gs-core"], find_links=wheels)

    def _say(self, prefs, message, fraction):
        prefs.status, prefs.progress = message[:200], fraction

    def execute(self, context):  # background mode: blocking
        prefs, args = self._arguments(context)
        try:
            python = backend_client.setup_backend(**args, progress=lambda m, f: self._say(prefs, m, f))
        except backend_client.BackendError as exc:
            prefs.status = f"Set up backend: {exc}"
            self.report({'ERROR'}, prefs.status)
            return {'CANCELLED'}
        prefs.python_path, prefs.setup_dir = python, str(args["venv"])
        self.report({'INFO'}, prefs.status)
        return {'FINISHED'}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        prefs, args = self._arguments(context)
        self.state = {"message": "starting", "fraction": 0.0, "python": None, "error": None, "cancel": False}

        def work():
            try:
                self.state["python"] = backend_client.setup_backend(
                    **args, progress=lambda m, f: self.state.update(message=m, fraction=f),
                    should_cancel=lambda: self.state["cancel"])
            except backend_client.BackendError as exc:
                self.state["error"] = exc

        self.venv = args["venv"]
        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()
        self.timer = context.window_manager.event_timer_add(0.25, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        prefs = addon_preferences(context)
        if event.type == 'ESC':
            self.state["cancel"] = True
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        self._say(prefs, self.state["message"], self.state["fraction"])
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if self.thread.is_alive():
            return {'RUNNING_MODAL'}
        context.window_manager.event_timer_remove(self.timer)
        if self.state["error"] is not None:
            prefs.status = f"Set up backend: {self.state['error']}"
            self.report({'ERROR'}, prefs.status)
            return {'CANCELLED'}
        prefs.python_path, prefs.setup_dir = self.state["python"], str(self.venv)
        self.report({'INFO'}, prefs.status)
        return {'FINISHED'}


classes = (GS_AddonPreferences, GS_OT_detect_backend, GS_OT_check_backend, GS_OT_setup_backend)

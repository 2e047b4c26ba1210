"""Blender's GPU module in background mode (bpy as a module, ``blender -b``): for the tests and benchmarks
of the viewport draw, which otherwise needs a window.

In background mode ``gpu`` refuses to draw ("GPU functions for drawing are not available in background
mode") until something initialises the GPU backend. A render engine that asks for a GPU context
(``bl_use_gpu_context``) makes Blender initialise it, headless through EGL (on a machine without a GPU:
Mesa's llvmpipe software renderer); after one such render of a 4x4 scene the ``gpu`` module draws into
:class:`gpu.types.GPUOffScreen` buffers like in a window. :func:`ensure` does that once per process.

Where no EGL/OpenGL driver is found Blender aborts the whole process, so :func:`probe` first tries the same
in a child process and :func:`ensure` raises :class:`GPUUnavailable` with the reason instead. Nothing here
runs at import (the add-on imports without a GPU, and in a window nothing is needed).
"""

from __future__ import annotations

import os
import subprocess
import sys

PROBE_TIMEOUT_S = 180
ENGINE = "GS_GPU_BACKGROUND"
_HANDLER_LISTS = ("render_init", "render_pre", "render_post", "render_stats", "render_write",
                  "render_complete", "render_cancel")
_state: dict = {}  # "probe": the probe's answer (None = usable, else the reason); "ready": ensure() done


class GPUUnavailable(RuntimeError):
    """Blender's GPU module cannot draw in this process (no EGL/OpenGL driver, or not bpy)."""


def _can_draw() -> bool:
    import gpu

    try:
        gpu.types.GPUOffScreen(1, 1).free()
        return True
    except (SystemError, RuntimeError, ValueError):
        return False


def _initialise() -> str:
    """Initialise the GPU backend through a render with a GPU context (in this process; may abort it when
    there is no driver). Returns the renderer's name."""
    import bpy
    import gpu

    seen: dict = {}

    class Engine(bpy.types.RenderEngine):
        bl_idname = ENGINE
        bl_label = "gs_core GPU initialisation"
        bl_use_gpu_context = True

        def render(self, depsgraph):
            seen["renderer"] = gpu.platform.renderer_get()

    # the render handlers (e.g. the final render's splat layer) must not see this 4x4 render
    handlers = {name: list(getattr(bpy.app.handlers, name)) for name in _HANDLER_LISTS
                if hasattr(bpy.app.handlers, name)}
    scene = bpy.data.scenes.new(f"{ENGINE} scene")
    camera = bpy.data.objects.new(f"{ENGINE} camera", bpy.data.cameras.new(f"{ENGINE} camera"))
    scene.collection.objects.link(camera)
    scene.camera = camera
    bpy.utils.register_class(Engine)
    try:
        for name in handlers:
            getattr(bpy.app.handlers, name).clear()
        scene.render.engine = ENGINE
        scene.render.resolution_x = scene.render.resolution_y = 4
        scene.render.resolution_percentage = 100
        bpy.ops.render.render(scene=scene.name)
    finally:
        for name, functions in handlers.items():
            getattr(bpy.app.handlers, name)[:] = functions
        bpy.data.scenes.remove(scene)
        camera_data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(camera_data)
        bpy.utils.unregister_class(Engine)  # bpy 4.5 hangs at exit while a Python class stays registered
    if "renderer" not in seen:
        raise GPUUnavailable("the GPU initialisation render did not run")
    if not _can_draw():
        raise GPUUnavailable(f"the GPU backend ({seen['renderer']}) started but gpu.types.GPUOffScreen "
                             "still fails outside the render")
    return seen["renderer"]


def probe() -> str | None:
    """None when :func:`ensure` will work in this process, else why not (one line). Tries it first in a
    child process of this interpreter (once per process), as a missing driver aborts the process."""
    if "probe" in _state:
        return _state["probe"]
    try:
        import bpy
    except ImportError:
        _state["probe"] = "bpy (Blender as a Python module) is not installed"
        return _state["probe"]
    if not bpy.app.background or _can_draw():
        _state["probe"] = None
        return None
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__)], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT_S)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines and lines[-1].startswith("GPU OK"):
            reason = None
        else:
            tail = (done.stderr.strip().splitlines() or lines or ["no output"])[-1]
            reason = (f"Blender's GPU backend does not start headless (EGL with Mesa: apt install libegl1 "
                      f"libegl-mesa0 libgl1-mesa-dri libgbm1); the probe exited with {done.returncode}: "
                      f"{tail[:200]}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"Blender's GPU probe did not finish: {type(exc).__name__}: {exc}"
    _state["probe"] = reason
    return reason


def ensure() -> str:
    """Make ``gpu`` draw in this (background) process; returns the renderer's name. Raises
    :class:`GPUUnavailable` (with the reason) where it cannot."""
    if "ready" in _state:
        return _state["ready"]
    reason = probe()
    if reason is not None:
        raise GPUUnavailable(reason)
    import bpy
    import gpu

    if not bpy.app.background or _can_draw():
        _state["ready"] = gpu.platform.renderer_get()
    else:
        _state["ready"] = _initialise()
    return _state["ready"]


if __name__ == "__main__":  # the child process of probe()
    import bpy  # noqa: F401

    print("GPU OK", _initialise())

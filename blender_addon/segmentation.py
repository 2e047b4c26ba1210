"""Segmentation in Blender through the gs_core backend: Prepare, click / granularity / text
selection, instance-colour preview. A thin bpy layer over :mod:`.backend_client` and
:mod:`.view_camera`: operators gather settings, call one function, and only write to the scene once
the backend's answer is complete and checked.

The backend's rows index the prepared scene ``WORK/scene.ply``. With the default method
(``git-consistent``) that is the imported file row for row, so a row is the splat whose ``gs:index``
is that row; ``trace3d`` refines splats (density control), so Prepare then imports the refined scene
as a new object and hides the original. Every splat object bound to a work folder carries its path
in the ``gs_work`` property (copied by Blender's separate), and selections reach all of them.
"""

from __future__ import annotations

import atexit
import tempfile
import time
from pathlib import Path

import numpy as np

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty, IntVectorProperty,
                       PointerProperty, StringProperty)

from . import backend_client, selection, splat_object, view_camera
from .gs_core_modules import instance_colors as colors
from . import splat_attributes as sa
from .backend_client import BackendError
from .preferences import addon_preferences

WORK_PROPERTY = "gs_work"
PREVIEW = "gs:preview"
EXCHANGE = ".blender"  # sub-folder of WORK for the arrays the backend writes for us
POLL_SECONDS = 0.2


class SegmentError(Exception):
    """A segmentation step that cannot run as asked; the message says why."""


# ---- the warm backend ---------------------------------------------------------------------------

_backends: dict[str, backend_client.Backend] = {}
_detected: dict = {}  # setup folder -> detected interpreter


def interpreter(context) -> str:
    """The configured gs_core Python, else the first detected one (error if none)."""
    prefs = addon_preferences(context)
    python = prefs.python_path if prefs is not None and prefs.python_path else None
    if python:
        return bpy.path.abspath(python)
    setup_dir = getattr(prefs, "setup_dir", None) or None
    if setup_dir not in _detected:  # each check imports torch in a subprocess: once per session
        python, message = backend_client.detect_interpreter(setup_dir)
        if python is None:
            raise SegmentError(message)
        _detected[setup_dir] = python
    return _detected[setup_dir]


def backend(context) -> backend_client.Backend:
    """The one warm backend process for the configured interpreter (started on first use)."""
    python = interpreter(context)
    for other in [p for p in _backends if p != python]:
        _backends.pop(other).stop()
    if python not in _backends:
        _backends[python] = backend_client.Backend(python)
    return _backends[python]


@atexit.register
def stop_backends() -> None:
    for b in _backends.values():
        b.stop()
    _backends.clear()


# ---- rows <-> splats ----------------------------------------------------------------------------

_source_ids: dict = {}  # (path, mtime, size) -> file id of a work folder's scene.ply


def work_source(work: str) -> int:
    """The file id (``gs:source``) of ``WORK/scene.ply``, whose rows the backend's answers index."""
    path = Path(work) / "scene.ply"
    try:
        st = path.stat()
    except OSError:
        raise SegmentError(f"{path}: no such file; run Prepare again") from None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _source_ids:
        _source_ids[key] = selection.resolve_source(path)
    return _source_ids[key]


def bound_objects(context, work: str) -> list:
    return [o for o in context.view_layer.objects
            if splat_object.is_splat_object(o) and o.get(WORK_PROPERTY) == work]


def apply_rows(context, work: str, rows: np.ndarray) -> int:
    """Select the splats of ``rows`` of ``WORK/scene.ply`` (Edit Mode's ``.selection``) on every object
    bound to ``work``, wherever separate / join have put them (:func:`.selection.select_rows`); the
    active object becomes one that has some. Returns how many splats are selected."""
    from .edit_ops import SELECTION

    objects = bound_objects(context, work)
    if not objects:
        raise SegmentError(f"no splat object is bound to {work}; run Prepare again")
    source = work_source(work)
    if not any(source in selection.source_ids(obj) for obj in objects):
        raise SegmentError(f"none of the splat objects bound to {work} comes from its scene.ply; "
                           "import it with this add-on (or run Prepare again)")
    splat_object.ensure_object_mode(context)
    count = selection.select_rows(objects, rows, source)
    active = context.view_layer.objects.active
    counts = [int(splat_object.read_attributes(o.data, [SELECTION]).get(SELECTION, np.zeros(0, bool)).sum())
              for o in objects]
    if active not in objects or counts[objects.index(active)] == 0:
        context.view_layer.objects.active = objects[int(np.argmax(counts))]
    return count


# ---- settings -----------------------------------------------------------------------------------

def _level_changed(self, context):
    if self.work and self.has_clicks and not self.running:
        try:
            requery_level(context)
        except (SegmentError, BackendError) as exc:
            self.status = f"Granularity: {exc}"


def _preview_changed(self, context):
    try:
        set_preview(context, self.preview)
    except (SegmentError, BackendError) as exc:
        self.status = f"Preview: {exc}"


class GS_SegmentSettings(bpy.types.PropertyGroup):
    dataset: StringProperty(name="Dataset", subtype='DIR_PATH',
                            description="Folder with the photos (images/), cameras (sparse/0 or transforms.json) "
                                        "and, for precomputed masks, masks/ or object_mask/")
    mask_source: EnumProperty(name="Masks", items=[
        ('DATASET', "Dataset masks", "Precomputed SAM-style masks in the dataset (masks/*.npz or object_mask/*.png)"),
        ('SAM', "SAM checkpoint", "Generate masks with a SAM checkpoint file")])
    sam_checkpoint: StringProperty(name="SAM checkpoint", subtype='FILE_PATH')
    method: EnumProperty(name="Method", default='git-consistent', items=[
        ('git-consistent', "Consistent instances", "Trace3D's instance tracing and consistent maps; your splats stay "
                                                   "as they are"),
        ('trace3d', "Trace3D (refine splats)", "Also splits or prunes ambiguous splats: the refined scene is "
                                               "imported as a new object and the original hidden"),
        ('iqgs', "Instance queries (IQGS)", "Trains one query per consistent instance on your splats (minutes on "
                                            "a CPU); for 2DGS scenes, one granularity only")])
    device: EnumProperty(name="Device", items=[('cpu', "CPU", ""), ('cuda', "CUDA", "An NVIDIA GPU")])
    work_dir: StringProperty(name="Work folder", subtype='DIR_PATH',
                             description="Where Prepare writes (empty: beside the .blend, or a temporary folder)")
    level: FloatProperty(name="Granularity", min=0.0, max=1.0, default=0.5, step=10, update=_level_changed,
                         description="0 parts, 0.5 objects, 1 groups")
    text: StringProperty(name="Text", description="Describe what to select (needs CLIP features in the work folder)")
    preview: BoolProperty(name="Preview instances", update=_preview_changed,
                          description="Show instance colours instead of the splat colours (data unchanged)")
    work: StringProperty(name="Prepared work folder")
    has_clicks: BoolProperty()
    running: BoolProperty()
    progress: FloatProperty(min=0.0, max=1.0, subtype='FACTOR')
    status: StringProperty()


def settings(context) -> GS_SegmentSettings:
    return context.scene.gs_segment


def default_work_dir(context, obj) -> Path:
    s = settings(context)
    if s.work_dir:
        return Path(bpy.path.abspath(s.work_dir))
    name = bpy.path.clean_name(obj.name)
    if bpy.data.filepath:
        blend = Path(bpy.data.filepath)
        return blend.parent / f"{blend.stem}_gs_work" / name
    return Path(tempfile.gettempdir()) / "gs_work" / name


def source_file(obj) -> Path:
    sources = [s for s in splat_object.schema_of(obj).get("sources", []) if s]
    if len(set(sources)) != 1:
        raise SegmentError(f"{obj.name!r} comes from {len(set(sources))} files; Prepare works on the splats of one "
                           "imported file")
    path = Path(sources[0])
    if not path.is_file():
        raise SegmentError(f"{path}: the file {obj.name!r} was imported from is gone")
    return path


def prepare_arguments(context, obj) -> dict:
    """The backend's prepare arguments from the panel's settings (checked here first)."""
    s = settings(context)
    if not s.dataset:
        raise SegmentError("choose the dataset folder (photos, cameras, masks) first; preparing from the splat "
                           "file alone is not in this gs_core yet")
    dataset = Path(bpy.path.abspath(s.dataset))
    if not dataset.is_dir():
        raise SegmentError(f"{dataset}: dataset folder does not exist")
    args = {"dataset": str(dataset), "out": str(default_work_dir(context, obj)), "scene": str(source_file(obj)),
            "method": s.method, "device": s.device}
    if s.mask_source == 'SAM':
        if not s.sam_checkpoint or not Path(bpy.path.abspath(s.sam_checkpoint)).is_file():
            raise SegmentError(f"SAM checkpoint {s.sam_checkpoint or '(none)'}: no such file")
        args["sam"] = {"checkpoint": str(Path(bpy.path.abspath(s.sam_checkpoint))), "device": s.device}
    prefs = addon_preferences(context)
    if prefs is not None and prefs.ray_address.strip():  # a render farm: the backend's prepare --ray
        args["ray"] = prefs.ray_address.strip()
    return args


def finish_prepare(context, obj, result: dict) -> list:
    """Load the prepared work folder in the backend and bind the splat objects to it (for
    ``trace3d``, the refined scene imported as a new object, the original hidden)."""
    from .import_splats import import_splats

    work = result["work"]
    info = backend(context).call("load", work=work)
    s = settings(context)
    if s.method == 'trace3d':
        (refined,) = import_splats(context, [Path(work) / "scene.ply"])
        refined.name = f"{obj.name} prepared"
        refined.matrix_world = obj.matrix_world.copy()
        obj.hide_set(True)
        obj.hide_render = True
        objects = [refined]
    else:
        count = int(splat_object.read_attributes(obj.data, [sa.INDEX])[sa.INDEX].max(initial=-1)) + 1
        if count > info["gaussians"]:
            raise SegmentError(f"{obj.name!r} has splat rows up to {count - 1}, the prepared scene "
                               f"{info['gaussians']} splats")
        objects = [obj]
    for o in objects:
        o[WORK_PROPERTY] = work
    s.work, s.has_clicks, s.preview = work, False, False
    return objects


def exchange_path(work: str, name: str) -> str:
    folder = Path(work) / EXCHANGE
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)


def _apply_answer(context, result: dict) -> int:
    s = settings(context)
    rows = backend_client.load_rows(result, result.get("gaussians", 0))
    count = apply_rows(context, s.work, rows)
    s.has_clicks = True
    s.status = status_line(count, result, s.level)
    return count


def status_line(count: int, result: dict, level: float) -> str:
    """The panel's line for a query answer: the instances selected, or a part of them when a negative
    click split one (the server's ``partial``; older servers do not send it)."""
    ids = result.get("instances", [])
    what = f"instance{'s' if len(ids) != 1 else ''} {', '.join(map(str, ids)) or 'none'}"
    if result.get("partial"):
        what = f"part of {what}"
    return f"{count:,} splats selected ({what} at granularity {result.get('level', level):.2f})"


def require_work(context) -> str:
    s = settings(context)
    if not s.work:
        raise SegmentError("press Prepare first (no prepared work folder)")
    return s.work


CLICK_MODES = ('SET', 'ADD', 'REFINE', 'REMOVE')
# the click gestures, as the status bar and the panel say them
CLICK_GESTURES = (("Click", "select an object"), ("Shift", "add another object"),
                  ("Shift+Ctrl", "refine: add a missed part"), ("Ctrl", "remove"))


def click_mode(shift: bool, ctrl: bool) -> str:
    """The click gesture of the modifiers held: shift+ctrl REFINE (not alt: Blender's *Emulate 3 Button
    Mouse* turns alt+click into a middle click, an orbit), shift ADD, ctrl REMOVE, none SET."""
    return 'REFINE' if shift and ctrl else 'ADD' if shift else 'REMOVE' if ctrl else 'SET'


def query_click(context, camera: dict, pixel, mode: str) -> int:
    """One click: ``mode`` SET (a new selection), ADD (shift: another object, its instance whole), REFINE
    (shift+ctrl: a missed part of the selected object, only as much of its instance as the selection
    supports: the server's rule ``split-support``) or REMOVE (ctrl)."""
    if mode not in CLICK_MODES:
        raise SegmentError(f"click mode must be one of {', '.join(CLICK_MODES)}, got {mode!r}")
    work = require_work(context)
    s = settings(context)
    key = "negative" if mode == 'REMOVE' else "positive"
    rule = {"rule": "split-support"} if mode == 'REFINE' else {}  # the default (split) is not sent
    client = backend(context)
    if rule:
        client.start()
        if "click-rule" not in client.features:  # an older server would take the refine click as an addition
            raise SegmentError(f"refine clicks need a newer backend than gs_core {client.version} at {client.python}: "
                               "update it (the add-on's preferences: Set up backend)")
    result = client.call("query_pixels", camera=camera, level=s.level, append=mode != 'SET',
                         out=exchange_path(work, "selection.npy"), **{key: [list(pixel)]}, **rule)
    return _apply_answer(context, result)


def requery_level(context) -> int:
    work = require_work(context)
    result = backend(context).call("query_level", level=settings(context).level,
                                   out=exchange_path(work, "selection.npy"))
    return _apply_answer(context, result)


def query_text(context, text: str) -> int:
    work = require_work(context)
    if not text.strip():
        raise SegmentError("type what to select first")
    result = backend(context).call("query_text", text=text, level=settings(context).level,
                                   out=exchange_path(work, "selection.npy"))
    return _apply_answer(context, result)


def instance_colors(labels: np.ndarray) -> np.ndarray:  # [N] -> [N, 4] linear RGBA
    """gs_core's colour per instance id (the HTML report's), scene-linear for Blender; black for none."""
    out = np.ones((len(labels), 4), np.float32)
    out[:, :3] = colors.srgb_to_linear(colors.instance_colors(labels))
    return out


def set_preview(context, on: bool) -> None:
    """Instance colours (at the current granularity) on the points, or the splat colours again: a
    display attribute and the display material's input switch; splat data is not touched."""
    material = bpy.data.materials.get(splat_object.DISPLAY_MATERIAL)
    if on:
        work = require_work(context)
        out = exchange_path(work, "labels.npy")
        result = backend(context).call("labels", level=settings(context).level, out=out)
        labels = np.load(result["labels"], allow_pickle=False)
        source = work_source(work)
        for obj in bound_objects(context, work):
            ids = splat_object.read_attributes(obj.data, [sa.SOURCE, sa.INDEX])
            index = ids.get(sa.INDEX, np.zeros(0, np.int64))
            ours = (ids[sa.SOURCE] == source) if sa.SOURCE in ids else np.zeros(len(index), bool)
            if (index[ours] >= len(labels)).any():
                raise SegmentError(f"{obj.name!r}: splat rows beyond the prepared scene's {len(labels)}")
            # splats from other files have no instance here: shown unlabelled (-1)
            per_splat = np.where(ours, labels[np.where(ours, index, 0)], -1)
            splat_object.write_attributes(obj.data, {PREVIEW: sa.Attribute("FLOAT_COLOR",
                                                                            instance_colors(per_splat))})
    if material is not None and material.node_tree is not None:
        for node in material.node_tree.nodes:
            if node.bl_idname == 'ShaderNodeAttribute':
                node.attribute_name = PREVIEW if on else sa.COLOR
    for obj in context.view_layer.objects:
        if splat_object.is_splat_object(obj):
            name = PREVIEW if on and PREVIEW in obj.data.attributes else sa.COLOR
            if name in obj.data.attributes:
                obj.data.color_attributes.active = obj.data.attributes[name]
            obj.data.update_tag()


# ---- operators ----------------------------------------------------------------------------------

def _splat_poll(context) -> bool:
    return splat_object.is_splat_object(context.active_object)


class GS_OT_prepare(bpy.types.Operator):
    """Prepare the active splat object for segmentation (masks, instance tracing, consistent instances) in the
    gs_core backend; Esc cancels"""

    bl_idname = "gs_splats.prepare"
    bl_label = "Prepare"
    bl_options = {'REGISTER'}

    poll = classmethod(lambda cls, context: _splat_poll(context) and not settings(context).running)

    def _start(self, context):
        self.obj = context.active_object
        self.args = prepare_arguments(context, self.obj)
        self.started = time.monotonic()
        s = settings(context)
        s.status, s.progress = "Starting the backend...", 0.0

    def _progress(self, context, p: dict) -> None:
        s = settings(context)
        total = max(int(p.get("total", 1)), 1)
        s.progress = min(1.0, int(p.get("done", 0)) / total)
        s.status = f"{p.get('stage', '')} {p.get('done', 0)}/{total} ({time.monotonic() - self.started:.1f} s)"

    def _done(self, context, result: dict) -> None:
        objects = finish_prepare(context, self.obj, result)
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in result.get("stages", {}).items() if not k.startswith("git_"))
        s = settings(context)
        s.progress = 1.0
        s.status = (f"Prepared {result.get('gaussians'):,} splats, {result.get('instances')} instances in "
                    f"{time.monotonic() - self.started:.1f} s" + (" (up to date)" if result.get("up_to_date")
                                                                   else f" ({stages})"))
        self.report({'INFO'}, s.status + f"; bound {', '.join(o.name for o in objects)}")

    def _error(self, context, exc) -> set:
        s = settings(context)
        s.running = False
        s.status = f"Prepare: {exc}"
        self.report({'ERROR'}, s.status)
        return {'CANCELLED'}

    def execute(self, context):  # background mode (and scripts): blocking
        try:
            self._start(context)
            result = backend(context).call("prepare", on_progress=lambda p: self._progress(context, p), **self.args)
            self._done(context, result)
        except (SegmentError, BackendError) as exc:
            return self._error(context, exc)
        return {'FINISHED'}

    def invoke(self, context, event):
        if bpy.app.background:
            return self.execute(context)
        try:
            self._start(context)
            self.request = backend(context).submit("prepare", **self.args)
        except (SegmentError, BackendError) as exc:
            return self._error(context, exc)
        settings(context).running = True
        self.timer = context.window_manager.event_timer_add(POLL_SECONDS, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type == 'ESC':
            return self._finish(context, self._cancel)
        if event.type != 'TIMER':
            return {'PASS_THROUGH'}
        return self._finish(context, self._poll)

    def _cancel(self, context):
        backend(context).cancel(self.request)

    def _poll(self, context):
        b = backend(context)
        result = b.poll(self.request)
        if self.request.progress:
            self._progress(context, self.request.progress)
        for area in context.screen.areas if context.screen else []:
            area.tag_redraw()
        if result is None:
            return None
        self._done(context, result)
        return result

    def _finish(self, context, step):
        try:
            if step(context) is None:
                return {'RUNNING_MODAL'}
        except (SegmentError, BackendError) as exc:
            self._stop_timer(context)
            return self._error(context, exc)
        self._stop_timer(context)
        settings(context).running = False
        return {'FINISHED'}

    def _stop_timer(self, context):
        context.window_manager.event_timer_remove(self.timer)


class GS_OT_click_select(bpy.types.Operator):
    """Click on splats in the viewport to select the object under the cursor (shift adds another object,
    shift+ctrl adds a missed part of the selected one, ctrl removes; Esc or right-click ends)"""

    bl_idname = "gs_splats.click_select"
    bl_label = "Click to Select"
    bl_options = {'REGISTER', 'UNDO'}

    pixel: IntVectorProperty(name="Pixel", size=2, description="Clicked pixel (x, y from the top left)")
    region_size: IntVectorProperty(name="Region size", size=2, default=(0, 0))
    view_matrix: FloatVectorProperty(name="View matrix", size=16)
    window_matrix: FloatVectorProperty(name="Window matrix", size=16)
    mode: EnumProperty(items=[('SET', "Set", "A new selection"), ('ADD', "Add", "Add another object (shift)"),
                              ('REFINE', "Refine", "Add a missed part of the selected object (shift+ctrl)"),
                              ('REMOVE', "Remove", "Remove what is under the click (ctrl)")])

    @classmethod
    def poll(cls, context):
        s = settings(context)
        return bool(s.work) and not s.running

    def execute(self, context):
        obj = next(iter(bound_objects(context, settings(context).work)), None)
        if obj is None:
            self.report({'ERROR'}, "no splat object is bound to the prepared work folder; run Prepare again")
            return {'CANCELLED'}
        try:
            camera = view_camera.pinhole_camera(self.view_matrix, self.window_matrix, *self.region_size,
                                                splat_object.matrix_of(obj))
            count = query_click(context, camera, tuple(self.pixel), self.mode)
        except (view_camera.ViewError, SegmentError, BackendError) as exc:
            self.report({'ERROR'}, f"Click to select: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, settings(context).status)
        return {'FINISHED'} if count >= 0 else {'CANCELLED'}

    def invoke(self, context, event):
        if context.area is None or context.area.type != 'VIEW_3D' or context.region_data is None:
            return self.execute(context)
        context.window_manager.modal_handler_add(self)
        context.workspace.status_text_set("; ".join(f"{key}: {what}" for key, what in CLICK_GESTURES)
                                          + "; Esc or right-click ends")
        return {'RUNNING_MODAL'}

    def modal(self, context, event):
        if event.type in {'ESC', 'RIGHTMOUSE'}:
            context.workspace.status_text_set(None)
            return {'FINISHED'}
        if event.type != 'LEFTMOUSE' or event.value != 'PRESS':
            return {'PASS_THROUGH'}
        region, rv3d = context.region, context.region_data
        if not (0 <= event.mouse_region_x < region.width and 0 <= event.mouse_region_y < region.height):
            return {'PASS_THROUGH'}
        self.region_size = (region.width, region.height)
        self.pixel = view_camera.click_pixel(event.mouse_region_x, event.mouse_region_y, region.height)
        self.view_matrix = [v for row in rv3d.view_matrix for v in row]
        self.window_matrix = [v for row in rv3d.window_matrix for v in row]
        self.mode = click_mode(event.shift, event.ctrl)
        self.execute(context)
        return {'RUNNING_MODAL'}


class GS_OT_query_level(bpy.types.Operator):
    """Re-cut the current selection at the granularity of the slider"""

    bl_idname = "gs_splats.query_level"
    bl_label = "Apply Granularity"
    bl_options = {'REGISTER', 'UNDO'}

    level: FloatProperty(min=0.0, max=1.0, default=-1.0, options={'SKIP_SAVE'})

    def execute(self, context):
        s = settings(context)
        try:
            if self.level >= 0:
                s["level"] = self.level  # without the slider's live update: this operator re-queries
            requery_level(context)
        except (SegmentError, BackendError) as exc:
            self.report({'ERROR'}, f"Granularity: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, s.status)
        return {'FINISHED'}


class GS_OT_text_query(bpy.types.Operator):
    """Select what the text describes (needs CLIP features in the prepared work folder)"""

    bl_idname = "gs_splats.text_query"
    bl_label = "Select by Text"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        try:
            query_text(context, settings(context).text)
        except (SegmentError, BackendError) as exc:
            self.report({'ERROR'}, f"Text query: {exc}")
            return {'CANCELLED'}
        self.report({'INFO'}, settings(context).status)
        return {'FINISHED'}


classes = (GS_SegmentSettings, GS_OT_prepare, GS_OT_click_select, GS_OT_query_level, GS_OT_text_query)


def register_properties():
    bpy.types.Scene.gs_segment = PointerProperty(type=GS_SegmentSettings)


def unregister_properties():
    del bpy.types.Scene.gs_segment
    stop_backends()

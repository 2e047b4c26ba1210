"""Splats in the final render (F12 and animations, Cycles and EEVEE): the backend's engine renders an
RGBA + depth layer of every splat object for the scene camera, per frame, and the compositor puts it
over or under Blender's own render by depth.

* :func:`setup_render` (the *Render Splats* operator; ``gs-core demo --blender`` calls it) turns on
  the Z pass, builds the compositor (Render Layers and the splat layer into a Z Combine node, alpha on)
  and hides the point clouds' own spheres from the render (a render-only geometry-nodes modifier).
* A ``render_pre`` handler (every frame of an animation too) gathers the splat objects the render sees,
  their world matrices at that frame and the scene camera at the render resolution, asks the backend
  (``render_splats``) and fills two float images the compositor reads: colour (premultiplied, in
  Blender's scene-linear: gs_core's colours are display values) and depth.

A frame the backend cannot render (no interpreter, a crash) keeps the splat images of the last good
frame and prints one line; Blender's render still finishes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import bpy

from . import splat_display, splat_object, view_camera
from .backend_client import BackendError
from .gs_core_modules import splat_view

COLOR_IMAGE = "GS Splat Layer"
DEPTH_IMAGE = "GS Splat Depth"
NODE_PREFIX = "GS Splats"
HIDE_MODIFIER = "GS Splats Render"
HIDE_GROUP = "GS Splats Render (empty)"
EMPTY_DEPTH = 1e30  # the compositor's float: larger than Blender's background depth (1e10)
ENABLED = "gs_render_splats"  # scene property: the handler renders splats for this scene

_written: dict[str, str] = {}  # layer file -> content key of what it holds
last_status = {"message": ""}


# ---- camera and objects ---------------------------------------------------------------------------

def render_size(scene) -> tuple[int, int]:
    r = scene.render
    return (max(1, round(r.resolution_x * r.resolution_percentage / 100)),
            max(1, round(r.resolution_y * r.resolution_percentage / 100)))


def scene_camera(scene, depsgraph=None) -> dict:
    """The protocol camera (world space) of the scene camera at the render resolution."""
    if scene.camera is None:
        raise BackendError("user", f"scene {scene.name!r} has no camera")
    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    width, height = render_size(scene)
    cam = scene.camera.evaluated_get(depsgraph)
    window = np.array(cam.calc_matrix_camera(depsgraph, x=width, y=height, scale_x=scene.render.pixel_aspect_x,
                                             scale_y=scene.render.pixel_aspect_y), np.float64)
    view = np.linalg.inv(np.array(cam.matrix_world, np.float64))
    return view_camera.pinhole_camera(view, window, width, height)


def render_objects(scene, depsgraph=None) -> list:
    """(object, splats) of every splat object this scene's view layer renders, matrices at this frame."""
    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    view_layer = depsgraph.view_layer
    out = []
    for obj in view_layer.objects:
        if not splat_object.is_splat_object(obj) or obj.hide_render or not _layer_visible(obj, view_layer):
            continue
        names = splat_display.attribute_names([a.name for a in obj.data.attributes])
        attributes = splat_object.read_attributes(obj.data, names)
        matrix = np.array(obj.evaluated_get(depsgraph).matrix_world, np.float64)
        out.append((obj, splat_display.object_splats(attributes, matrix)))
    return out


def _layer_visible(obj, view_layer) -> bool:
    """Not in an excluded or render-disabled collection of ``view_layer``."""
    def walk(layer_collection):
        if layer_collection.exclude:
            return
        if obj.name in layer_collection.collection.objects and not layer_collection.collection.hide_render:
            yield True
        for child in layer_collection.children:
            if not child.collection.hide_render:
                yield from walk(child)
    return any(walk(view_layer.layer_collection))


def layer_folder() -> Path:
    folder = Path(tempfile.gettempdir()) / "gs_splat_layers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_object(obj, splats) -> str:
    """The object's splat file for the backend, rewritten only when its splats changed."""
    key = splat_display.content_key(splats)
    path = layer_folder() / f"{bpy.path.clean_name(obj.name)}_{obj.as_pointer():x}.npz"
    if _written.get(str(path)) != key or not path.is_file():
        splat_view.save_splats(path, splats)
        _written[str(path)] = key
    return str(path)


def request(scene, depsgraph=None) -> dict:
    """The backend's ``render_splats`` arguments for this frame."""
    objects = [{"path": write_object(obj, splats), "matrix": splats.matrix.tolist()}
               for obj, splats in render_objects(scene, depsgraph)]
    return {"objects": objects, "camera": scene_camera(scene, depsgraph),
            "out": str(layer_folder() / f"frame_{scene.name_full.encode().hex()[:16]}.npy")}


# ---- images the compositor reads ------------------------------------------------------------------

def _image(name: str, width: int, height: int, non_color: bool):
    image = bpy.data.images.get(name)
    if image is not None and tuple(image.size) != (width, height):
        image.scale(width, height)
    if image is None:
        image = bpy.data.images.new(name, width, height, alpha=True, float_buffer=True)
        empty = np.zeros((height, width, 4), np.float32)
        if non_color:  # the depth image: nothing drawn is far away
            empty[...] = (EMPTY_DEPTH, EMPTY_DEPTH, EMPTY_DEPTH, 1.0)
        image.pixels.foreach_set(empty.ravel())
    image.alpha_mode = 'STRAIGHT'
    image.colorspace_settings.is_data = non_color
    return image


def fill_images(layer: np.ndarray) -> None:
    """``layer`` [H, W, 5] (rows from the top: premultiplied display r, g, b, alpha, depth) into the two
    images (rows from the bottom, depth in every channel). The colour image holds straight scene-linear
    colour (the compositor's Image node premultiplies it again): ``lin(c) / alpha``, so that over black
    the composite is ``lin(c)``, the display value ``c`` gs_core renders."""
    height, width = layer.shape[:2]
    rows = layer[::-1].astype(np.float64)
    color = np.zeros((height, width, 4), np.float32)
    alpha = rows[..., 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        straight = splat_display.srgb_to_linear(rows[..., :3]) / alpha[..., None]
    color[..., :3] = np.where(alpha[..., None] > 0, straight, 0.0)
    color[..., 3] = alpha
    depth = np.where(np.isfinite(rows[..., 4]), rows[..., 4], EMPTY_DEPTH).astype(np.float32)
    depth4 = np.repeat(depth[..., None], 4, axis=2)
    depth4[..., 3] = 1.0
    for name, values, non_color in ((COLOR_IMAGE, color, True), (DEPTH_IMAGE, depth4, True)):
        image = _image(name, width, height, non_color)
        image.pixels.foreach_set(values.ravel())
        image.update()


def clear_images(scene) -> None:
    """An empty splat layer (transparent, far) at the render size."""
    width, height = render_size(scene)
    layer = np.zeros((height, width, 5), np.float32)
    layer[..., 4] = np.inf
    fill_images(layer)


def render_frame(scene, backend, depsgraph=None) -> dict:
    """Render this frame's splat layer with ``backend`` and fill the compositor's images."""
    args = request(scene, depsgraph)
    result = backend.call("render_splats", **args)
    layer = np.load(result["layer"], allow_pickle=False)
    fill_images(layer)
    return result


# ---- compositor ------------------------------------------------------------------------------------

def compositor_tree(scene):
    """The scene's compositor node tree, made if needed (5.x: a node group; 4.x: ``scene.node_tree``)."""
    if hasattr(scene, "compositing_node_group"):
        tree = scene.compositing_node_group
        if tree is None:
            tree = bpy.data.node_groups.new(f"{NODE_PREFIX} Compositor", 'CompositorNodeTree')
            scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    return scene.node_tree


def _output_socket(tree):
    """The tree's final image input: 5.x a Group Output's 'Image', 4.x the Composite node's."""
    if hasattr(bpy.context.scene, "compositing_node_group"):
        if not any(i.in_out == 'OUTPUT' and i.name == "Image" for i in tree.interface.items_tree):
            tree.interface.new_socket("Image", in_out='OUTPUT', socket_type='NodeSocketColor')
        out = next((n for n in tree.nodes if n.bl_idname == 'NodeGroupOutput'), None) or \
            tree.nodes.new('NodeGroupOutput')
        return out.inputs["Image"]
    out = next((n for n in tree.nodes if n.bl_idname == 'CompositorNodeComposite'), None) or \
        tree.nodes.new('CompositorNodeComposite')
    return out.inputs["Image"]


def _node(tree, kind: str, name: str, location):
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != kind:
        node = tree.nodes.new(kind)
        node.name = node.label = name
    node.location = location
    return node


def setup_compositor(scene) -> None:
    """Render Layers and the splat layer into a Z Combine (alpha on) into the output; idempotent. An
    existing link into the output is kept as the Z Combine's Blender side when it is not ours."""
    for view_layer in scene.view_layers:
        view_layer.use_pass_z = True
    tree = compositor_tree(scene)
    output = _output_socket(tree)
    layers = next((n for n in tree.nodes if n.bl_idname == 'CompositorNodeRLayers'), None) or \
        tree.nodes.new('CompositorNodeRLayers')
    color = _node(tree, 'CompositorNodeImage', f"{NODE_PREFIX} colour", (0, -350))
    depth = _node(tree, 'CompositorNodeImage', f"{NODE_PREFIX} depth", (0, -650))
    width, height = render_size(scene)
    color.image = _image(COLOR_IMAGE, width, height, True)
    depth.image = _image(DEPTH_IMAGE, width, height, True)
    combine = _node(tree, 'CompositorNodeZcombine', f"{NODE_PREFIX} by depth", (400, 0))
    if "Use Alpha" in combine.inputs:  # 5.x: an input socket; 4.x: a property
        combine.inputs["Use Alpha"].default_value = True
        combine.inputs["Anti-Alias"].default_value = False
    else:
        combine.use_alpha, combine.use_antialias_z = True, False
    links = tree.links
    first = "A" if "A" in combine.inputs else 0
    a_img, a_z, b_img, b_z = (combine.inputs[i] for i in ((first, "Depth A", "B", "Depth B") if first == "A"
                                                           else (0, 1, 2, 3)))
    upstream = next((link.from_socket for link in output.links if link.from_node != combine), None)
    if upstream is not None or not a_img.is_linked:  # the user's compositing stays Blender's side
        links.new(upstream or layers.outputs["Image"], a_img)
    links.new(layers.outputs["Depth"], a_z)
    links.new(color.outputs["Image"], b_img)
    links.new(depth.outputs["Image"], b_z)
    links.new(combine.outputs[0], output)


def empty_node_group():
    """A geometry-nodes group whose output is empty (its input is not linked)."""
    group = bpy.data.node_groups.get(HIDE_GROUP)
    if group is None:
        group = bpy.data.node_groups.new(HIDE_GROUP, 'GeometryNodeTree')
        group.interface.new_socket("Geometry", in_out='INPUT', socket_type='NodeSocketGeometry')
        group.interface.new_socket("Geometry", in_out='OUTPUT', socket_type='NodeSocketGeometry')
        group.nodes.new('NodeGroupInput')
        group.nodes.new('NodeGroupOutput')
    return group


def hide_point_spheres(obj) -> None:
    """The point cloud's own spheres leave the render (the splat layer shows the splats); the viewport
    and the data keep them."""
    modifier = obj.modifiers.get(HIDE_MODIFIER)
    if modifier is None:
        modifier = obj.modifiers.new(HIDE_MODIFIER, 'NODES')
        modifier.node_group = empty_node_group()
    modifier.show_viewport, modifier.show_render = False, True


def setup_render(scene) -> None:
    """Everything the final render needs for splats in ``scene`` (see the module docstring)."""
    setup_compositor(scene)
    scene[ENABLED] = True
    scene.render.use_lock_interface = True  # the handler reads object data while the render runs
    for obj in scene.objects:
        if splat_object.is_splat_object(obj):
            hide_point_spheres(obj)


# ---- the handler ------------------------------------------------------------------------------------

def _backend():
    from . import segmentation

    return segmentation.backend(bpy.context)


@bpy.app.handlers.persistent
def on_render_pre(scene, depsgraph=None):
    if not scene.get(ENABLED):
        if bpy.data.images.get(COLOR_IMAGE) is not None:  # set up before, now off: no splats
            clear_images(scene)
        return
    try:
        for obj in scene.objects:  # objects added since the set-up (e.g. separated) leave the render too
            if splat_object.is_splat_object(obj) and HIDE_MODIFIER not in obj.modifiers:
                hide_point_spheres(obj)
        if bpy.context.evaluated_depsgraph_get().scene_eval.frame_current != scene.frame_current:
            # an animation render steps the frame without evaluating the scene the handler sees
            scene.frame_set(scene.frame_current)
        result = render_frame(scene, _backend(), depsgraph)
        last_status["message"] = (f"splat layer: {result['splats']:,} splats, {result['width']}x{result['height']}, "
                                  f"{result['seconds']:.2f} s")
    except Exception as exc:  # noqa: BLE001  (the render must go on: the last good layer stays)
        last_status["message"] = f"splat layer not rendered: {exc}"
        print(f"Gaussian splats: {last_status['message']}")


def register_handlers() -> None:
    if on_render_pre not in bpy.app.handlers.render_pre:
        bpy.app.handlers.render_pre.append(on_render_pre)


def unregister_handlers() -> None:
    while on_render_pre in bpy.app.handlers.render_pre:
        bpy.app.handlers.render_pre.remove(on_render_pre)


class GS_OT_setup_render(bpy.types.Operator):
    """Show the splats in F12 and animation renders: the gs_core backend renders them per frame and the
    compositor combines them with Blender's render by depth"""

    bl_idname = "gs_splats.setup_render"
    bl_label = "Render Splats"
    bl_options = {'REGISTER', 'UNDO'}

    def execute(self, context):
        setup_render(context.scene)
        self.report({'INFO'}, "Splats will be rendered with the scene (compositor: Z Combine)")
        return {'FINISHED'}


classes = (GS_OT_setup_render,)

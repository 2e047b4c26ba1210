"""Splats in the final render (blender_addon.splat_render), headless with Cycles on the CPU (and EEVEE on
Blender's GPU backend through EGL, a software GL where there is no GPU, for the depth compositing): the render
hook asks the real backend for the splat layer of the scene camera at the render size, with each object's
matrix at the rendered frame (animated here), and the compositor puts it over Blender's render by depth.
Checked on pixels of 32-bit EXR renders: with no mesh the picture is gs_core's render of the file's splats
(hidden and deleted ones left out); a mesh in front hides the splats; one behind shows only where the
splats are not opaque. A backend that fails leaves the last good layer in place."""

from pathlib import Path

import numpy as np
import pytest
from splat_scenes import file_splats

pytestmark = pytest.mark.blender

W, H = 64, 48
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture
def render_scene(bpy, imported, tmp_path):
    """A splat object (SH degree 1) before a scene camera, Cycles with one sample and a transparent film,
    set up for splats; returns (scene, object, ply path, render(name) -> [H, W, 4] linear RGBA)."""
    from gs_core.camera import Camera
    from gs_core.demo.blender import camera_object

    from blender_addon import splat_render

    obj, _, path = imported(n=300, degree=1, seed=3)
    scene = bpy.context.scene
    cam = camera_object(bpy, Camera.look_at((0.4, -6.0, 1.0), (0, 0, 0), fov_x_deg=50, width=W, height=H))
    scene.collection.objects.link(cam)
    scene.camera = cam
    scene.render.engine = 'CYCLES'
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = 'CPU', 1, False
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    scene.render.film_transparent = True
    scene.render.image_settings.file_format = 'OPEN_EXR'
    scene.render.image_settings.color_depth = '32'
    assert bpy.ops.gs_splats.setup_render() == {'FINISHED'}

    def load(path):
        image = bpy.data.images.load(str(path))
        try:
            return np.array(image.pixels[:], np.float64).reshape(H, W, 4)[::-1]
        finally:
            bpy.data.images.remove(image)

    def render(name):
        scene.render.filepath = str(tmp_path / f"{name}.exr")
        bpy.ops.render.render(write_still=True)
        return load(scene.render.filepath)

    render.load, render.folder = load, str(tmp_path)

    yield scene, obj, path, render
    from blender_addon import segmentation

    splat_render.last_status["message"] = ""
    segmentation.stop_backends()


def expected_layer(scene, objects):
    """gs_core's layer for the scene camera as the render hook computes it: [H, W, 5]."""
    from gs_core import render_layer
    from gs_core.server import camera_from_json

    from blender_addon import splat_render

    return render_layer.render_layer(objects, camera_from_json(splat_render.scene_camera(scene)))


def linear(layer):
    from blender_addon import splat_display

    return splat_display.srgb_to_linear(layer[..., :3])


def emission_plane(bpy, name, location, size, color):
    bpy.ops.mesh.primitive_plane_add(size=size, location=location, rotation=(np.pi / 2, 0, 0))
    plane = bpy.context.active_object
    plane.name = name
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    nodes = material.node_tree.nodes
    nodes.clear()
    emission, out = nodes.new('ShaderNodeEmission'), nodes.new('ShaderNodeOutputMaterial')
    emission.inputs['Color'].default_value = (*color, 1.0)
    material.node_tree.links.new(emission.outputs[0], out.inputs['Surface'])
    plane.data.materials.append(material)
    return plane


@pytest.mark.slow  # Cycles renders and the backend's start: 10-20 s
def test_animation_frames_are_gs_cores_render_of_the_moving_object_without_hidden_and_deleted_splats(
        bpy, render_scene):
    from blender_addon import edit_ops, splat_object

    scene, obj, path, render = render_scene
    rng = np.random.default_rng(0)
    edit_ops.delete_splats(bpy.context, obj, rng.random(len(obj.data.points)) < 0.2)
    edit_ops.hide_splats(obj, rng.random(len(obj.data.points)) < 0.2)
    obj.location, obj.rotation_euler, obj.scale = (0, 0, 0), (0, 0, 0), (1, 1, 1)
    obj.keyframe_insert("location", frame=1)
    obj.keyframe_insert("rotation_euler", frame=1)
    obj.location, obj.rotation_euler, obj.scale = (0.3, 0.2, -0.1), (0.3, -0.5, 1.0), (1.4, 1.4, 1.4)
    obj.keyframe_insert("location", frame=3)
    obj.keyframe_insert("rotation_euler", frame=3)
    scene.frame_start, scene.frame_end = 2, 3  # an animation: each frame with its own matrix
    scene.render.filepath = str(Path(render.folder) / "anim_")
    bpy.ops.render.render(animation=True)
    ids = splat_object.read_attributes(obj.data, ["gs:index", "gs:hidden"])
    rows = np.sort(ids["gs:index"][~ids["gs:hidden"]])
    assert 150 < len(rows) < 220
    for frame in (2, 3):
        scene.frame_set(frame)
        matrix = splat_object.matrix_of(obj)
        assert not np.allclose(matrix[:3, 3], 0)
        got = render.load(Path(render.folder) / f"anim_{frame:04d}.exr")
        layer = expected_layer(scene, [file_splats(path, rows, matrix)])
        assert layer[..., 3].max() > 0.9 and (layer[..., 3] > 0.1).mean() > 0.2
        # straight colour in the image, premultiplied again by the compositor: a few float32 roundings
        assert np.all(np.abs(got[..., :3] - linear(layer)) <= 4 * EPS32 * np.abs(linear(layer)) + 1e-12), frame
        assert np.array_equal(got[..., 3], layer[..., 3].astype(np.float32)), frame
    scene.frame_set(2)
    assert np.array_equal(render("still")[..., 3], expected_layer(scene, [file_splats(
        path, rows, splat_object.matrix_of(obj))])[..., 3].astype(np.float32))  # F12 of one frame


@pytest.mark.slow  # Cycles renders and the backend's start: 10-20 s
def test_a_mesh_in_front_hides_the_splats_and_one_behind_is_hidden(bpy, render_scene):
    check_mesh_in_front_and_behind(bpy, render_scene)


@pytest.mark.slow  # EEVEE on a software GL (llvmpipe) headless: 20-40 s
def test_with_eevee_a_mesh_in_front_hides_the_splats_and_one_behind_is_hidden(bpy, render_scene):
    from blender_addon import gpu_background

    reason = gpu_background.probe()  # EEVEE needs Blender's GPU backend; without a driver it aborts the process
    if reason is not None:
        pytest.skip(reason)
    scene = render_scene[0]
    scene.render.engine = eevee_engine(bpy)
    scene.eevee.taa_render_samples = 1
    check_mesh_in_front_and_behind(bpy, render_scene)


def eevee_engine(bpy) -> str:
    """EEVEE's engine name: 'BLENDER_EEVEE_NEXT' in 4.2-4.5, 'BLENDER_EEVEE' again from 5.0."""
    return 'BLENDER_EEVEE_NEXT' if bpy.app.version < (5, 0, 0) else 'BLENDER_EEVEE'


def check_mesh_in_front_and_behind(bpy, render_scene):
    from blender_addon import splat_object, splat_render

    scene, obj, path, render = render_scene
    layer = expected_layer(scene, [file_splats(path, slice(None), splat_object.matrix_of(obj))])
    front = emission_plane(bpy, "front", (-0.9, -3.0, 0.0), 1.6, (0.2, 0.8, 0.3))  # left half, before the splats
    back = emission_plane(bpy, "back", (0.0, 4.0, 0.0), 40.0, (0.7, 0.1, 0.6))  # fills the view, behind them
    scene[splat_render.ENABLED] = False
    meshes = render("meshes")  # Blender alone
    scene[splat_render.ENABLED] = True
    both = render("both")
    full = meshes[..., 3] == 1.0
    in_front = full & np.isclose(meshes[..., 1], 0.8, atol=1e-3)  # EEVEE's colour is half float: 0.7998
    behind = full & np.isclose(meshes[..., 1], 0.1, atol=1e-3)
    assert in_front.sum() > 200 and behind.sum() > 800
    assert (layer[..., 3][in_front] > 0.5).sum() > 50  # the splats would show there
    np.testing.assert_array_equal(both[in_front], meshes[in_front])
    over = linear(layer) + (1 - layer[..., 3:4]) * meshes[..., :3]  # splats over the far plane
    assert np.abs(both[..., :3][behind] - over[behind]).max() <= 1e-6
    assert np.abs(both[..., :3][behind] - meshes[..., :3][behind]).max() > 0.3  # and they do show
    assert front.name in bpy.data.objects and back.name in bpy.data.objects


@pytest.mark.slow  # Cycles renders and the backend's start: 10-20 s
def test_a_failing_backend_keeps_the_last_layer(bpy, render_scene, monkeypatch):
    from blender_addon import splat_render
    from blender_addon.backend_client import BackendError

    scene, obj, path, render = render_scene
    first = render("first")
    assert splat_render.last_status["message"].startswith("splat layer: 300 splats")

    def crashed():
        raise BackendError("crashed", "the gs_core backend stopped (exit status -9)")

    monkeypatch.setattr(splat_render, "_backend", crashed)
    obj.location = (0.5, 0.0, 0.0)
    again = render("again")
    assert splat_render.last_status["message"] == ("splat layer not rendered: the gs_core backend stopped "
                                                   "(exit status -9)")
    np.testing.assert_array_equal(again, first)


def test_setup_is_idempotent_and_keeps_the_users_compositing(bpy):
    from blender_addon import splat_render

    scene = bpy.context.scene
    tree = splat_render.compositor_tree(scene)
    output = splat_render._output_socket(tree)
    layers = tree.nodes.new('CompositorNodeRLayers')
    invert = tree.nodes.new('CompositorNodeInvert')  # the artist's own grading
    tree.links.new(layers.outputs["Image"], invert.inputs["Color"])
    tree.links.new(invert.outputs[0], output)
    for _ in range(2):
        splat_render.setup_render(scene)
    combines = [n for n in tree.nodes if n.bl_idname == 'CompositorNodeZcombine']
    assert len(combines) == 1 and output.links[0].from_node == combines[0]
    blender_side = combines[0].inputs[0]
    assert blender_side.links[0].from_node == invert
    assert scene.view_layers[0].use_pass_z and scene[splat_render.ENABLED]

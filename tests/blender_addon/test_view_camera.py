"""Viewport <-> pinhole camera (blender_addon.view_camera, Blender-free): a point projects to the same
pixel through Blender's OpenGL matrices and through the backend camera, also for a moved object and an
off-centre principal point; the two conversions invert each other; orthographic views are refused;
and (with bpy) Blender's own camera matrices agree with world_to_camera_view."""

import numpy as np
import pytest

from blender_addon import view_camera as vc
from gs_core.camera import Camera


def gl_pixel(view, proj, width, height, point):
    """Blender/OpenGL: clip -> NDC -> pixel (x from the left, y from the top)."""
    clip = proj @ view @ np.append(point, 1.0)
    ndc = clip[:3] / clip[3]
    return np.array([(ndc[0] + 1) / 2 * width, (1 - ndc[1]) / 2 * height])


def cv_pixel(camera, point):
    cam = np.asarray(camera["world_to_camera"]) @ np.append(point, 1.0)
    return np.array([camera["fx"] * cam[0] / cam[2] + camera["cx"], camera["fy"] * cam[1] / cam[2] + camera["cy"]])


def _object_matrix():
    c, s = np.cos(0.7), np.sin(0.7)
    m = np.eye(4)
    m[:3, :3] = 1.3 * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    m[:3, 3] = (0.4, -1.0, 0.25)
    return m


def test_same_pixel_both_ways_and_round_trip():
    cam = Camera.look_at((2.0, -3.0, 1.5), (0, 0, 0.2), fov_x_deg=50, width=160, height=90)
    camera = {"fx": cam.fx, "fy": cam.fy * 1.02, "cx": cam.cx + 7.5, "cy": cam.cy - 4.0, "width": 160,
              "height": 90, "world_to_camera": cam.world_to_camera.tolist()}
    obj = _object_matrix()
    view, proj = vc.view_matrices(camera, obj)
    back = vc.pinhole_camera(view, proj, 160, 90, obj)
    for key in ("fx", "fy", "cx", "cy"):
        assert back[key] == pytest.approx(camera[key], rel=1e-9)
    np.testing.assert_allclose(back["world_to_camera"], camera["world_to_camera"], atol=1e-9)
    rng = np.random.default_rng(0)
    for local in rng.normal(scale=0.5, size=(20, 3)):
        world = (obj @ np.append(local, 1.0))[:3]
        np.testing.assert_allclose(gl_pixel(view, proj, 160, 90, world), cv_pixel(back, local), atol=1e-6)


def test_click_pixel_and_refusals():
    assert vc.click_pixel(10, 0, 90) == (10, 89) and vc.click_pixel(0, 89, 90) == (0, 0)
    ortho = np.eye(4)
    with pytest.raises(vc.ViewError, match="orthographic"):
        vc.pinhole_camera(np.eye(4), ortho, 100, 100)
    _, proj = vc.view_matrices({"fx": 50, "fy": 50, "cx": 50, "cy": 50, "width": 100, "height": 100,
                                "world_to_camera": np.eye(4)})
    with pytest.raises(vc.ViewError, match="degenerate"):
        vc.pinhole_camera(np.eye(4), proj, 0, 100)
    flat = np.diag([1.0, 1.0, 0.0, 1.0])
    with pytest.raises(vc.ViewError, match="scale is zero"):
        vc.pinhole_camera(np.eye(4), proj, 100, 100, flat)


@pytest.mark.blender
def test_blender_camera_matrices_agree_with_world_to_camera_view(bpy):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 120, 80, 100
    data = bpy.data.cameras.new("cam")
    data.lens, data.shift_x, data.shift_y = 35.0, 0.05, -0.03
    cam = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (3.0, -4.0, 2.0), (1.1, 0.0, 0.65)
    bpy.context.view_layer.update()
    depsgraph = bpy.context.evaluated_depsgraph_get()
    proj = np.array(cam.calc_matrix_camera(depsgraph, x=120, y=80))
    view = np.array(cam.matrix_world.inverted())
    camera = vc.pinhole_camera(view, proj, 120, 80)
    for point in np.random.default_rng(1).normal(scale=0.7, size=(10, 3)):
        u, v, _ = world_to_camera_view(scene, cam, Vector(point))  # (0, 0) bottom left, (1, 1) top right
        np.testing.assert_allclose(cv_pixel(camera, point), [u * 120, (1 - v) * 80], atol=1e-3)

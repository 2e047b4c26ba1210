"""The final-render layer (gs_core.render_layer, the backend's ``render_splats``): objects with their own
matrices rendered together by the engine equal gs_core's render of the same splats with the transforms
baked in (float64, torch backend), with the expected depth per pixel; the object files round-trip; the
server command answers from files and reports bad ones in one line."""

import io
import queue

import numpy as np
import pytest
import torch
from splat_scenes import ROUNDING, cam, engine_picture, random_object, trs

from gs_core import render_layer, splat_view
from gs_core.errors import UserError
from gs_core.server import Server



def test_layer_equals_the_engine_render_of_the_baked_scene():
    a = random_object(300, seed=11, matrix=trs((0.2, 0.0, 0.1), axis=(1, 2, 0), angle=0.7, scale=(1.3,) * 3))
    b = random_object(300, degree=1, seed=12, matrix=trs((-0.1, 0.2, 0.0), axis=(0, 0, 1), angle=-1.2))
    b.sh = np.concatenate([b.sh, np.zeros((len(b), 12, 3))], axis=1)  # degree 3 with empty bands
    camera = cam()
    layer = render_layer.render_layer([a, b], camera, backend="torch", dtype=torch.float64)
    rgb, alpha = engine_picture([a, b], camera)
    assert np.abs(layer[..., :3] - rgb).max() <= ROUNDING and np.abs(layer[..., 3] - alpha).max() <= ROUNDING
    # depth: the engine's expected z where anything is drawn, inf elsewhere
    z = (splat_view.world_means(a) @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3])[:, 2]
    drawn = alpha > 0
    assert np.isinf(layer[..., 4][~drawn]).all() and drawn.mean() > 0.5
    assert (layer[..., 4][alpha > 0.5] > z.min() - 1.5).all() and (layer[..., 4][alpha > 0.5] < z.max() + 1.5).all()


def test_float32_layer_from_the_native_engine_is_close_to_the_reference():
    camera = cam()
    objects = [random_object(300, seed=13, matrix=trs((0.0, 0.1, 0.0), axis=(1, 0, 0), angle=0.3))]
    fast = render_layer.render_layer(objects, camera)
    ref = render_layer.render_layer(objects, camera, backend="torch", dtype=torch.float64)
    assert fast.dtype == np.float32
    # float32 geometry moves edges of thin splats by a fraction of a pixel: compare the picture, not bits
    assert np.sqrt(np.mean((fast[..., :3] - ref[..., :3]) ** 2)) < 1e-3


def test_empty_and_nothing_in_view():
    camera = cam()
    layer = render_layer.render_layer([], camera)
    assert layer.shape == (48, 64, 5) and not layer[..., :4].any() and np.isinf(layer[..., 4]).all()
    behind = random_object(50, seed=14, centre=(0.0, -8.0, 0.0), spread=0.1)  # behind the camera
    assert not render_layer.render_layer([behind], camera)[..., 3].any()


def test_object_files_round_trip(tmp_path):
    obj = random_object(20, seed=15, matrix=trs((1, 2, 3)))
    splat_view.save_splats(tmp_path / "o.npz", obj)
    back = render_layer.load_object(tmp_path / "o.npz", obj.matrix)
    for name in splat_view.FIELDS:
        assert np.array_equal(getattr(back, name), getattr(obj, name).astype(np.float32))
    with pytest.raises(UserError, match="invertible 4x4"):
        render_layer.load_object(tmp_path / "o.npz", np.zeros((4, 4)))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="bad.npz: not a splat layer file"):
        render_layer.load_object(tmp_path / "bad.npz", np.eye(4))


def test_server_renders_from_files_and_reloads_changed_ones(tmp_path):
    server = Server(io.StringIO(), queue.Queue())
    camera = cam()
    cam_json = {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "width": camera.width,
                "height": camera.height, "world_to_camera": camera.world_to_camera.tolist()}
    obj = random_object(200, seed=16)
    splat_view.save_splats(tmp_path / "o.npz", obj)
    args = {"objects": [{"path": str(tmp_path / "o.npz"), "matrix": trs((0.1, 0, 0)).tolist()}],
            "camera": cam_json, "out": str(tmp_path / "layer.npy")}
    result = server.cmd_render_splats(1, args)
    assert result["splats"] == 200 and (result["width"], result["height"]) == (64, 48)
    moved = render_layer.load_object(tmp_path / "o.npz", trs((0.1, 0, 0)))  # float32, as stored
    assert np.array_equal(np.load(result["layer"]), render_layer.render_layer([moved], camera))
    splat_view.save_splats(tmp_path / "o.npz", obj.subset(slice(0, 50)))  # the object changed
    assert server.cmd_render_splats(2, args)["splats"] == 50
    with pytest.raises(UserError, match="no such splat layer file"):
        server.cmd_render_splats(3, {**args, "objects": [{"path": str(tmp_path / "gone.npz"), "matrix": []}]})

"""transforms.json: OpenGL camera-to-world poses become the same cameras COLMAP would describe."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from gs_core.io.colmap import read_colmap, write_colmap_text
from gs_core.io.transforms_json import TransformsError, read_transforms_json


def project(cam, point) -> np.ndarray:  # [2] pixel coordinates
    p = cam.world_to_camera @ np.append(point, 1.0)
    assert p[2] > 0, "point is behind the camera"
    return (cam.K @ (p[:3] / p[2]))[:2]


def write_json(path, meta) -> None:
    path.write_text(json.dumps(meta))


def gl_pose(position, rotation=np.eye(3)) -> list:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = position
    return m.tolist()


def test_known_pose_projects_known_point_like_colmap(tmp_path):
    # OpenGL camera at z=5 with identity rotation looks down -z at the origin, y up
    write_json(tmp_path / "transforms.json", {
        "fl_x": 50.0, "fl_y": 60.0, "cx": 51.0, "cy": 39.0, "w": 100, "h": 80,
        "frames": [{"file_path": "images/a.png", "transform_matrix": gl_pose([0, 0, 5])}],
    })
    (cam,) = read_transforms_json(tmp_path / "transforms.json").cameras
    # world (1, 0.5, 0) is 5 in front, 1 right, 0.5 up: u = 51 + 50/5, v = 39 - 60 * 0.5/5
    np.testing.assert_allclose(project(cam, [1.0, 0.5, 0.0]), [61.0, 33.0], atol=1e-12)
    np.testing.assert_allclose(cam.position, [0, 0, 5], atol=1e-12)

    # the same camera described by hand in COLMAP terms: R = diag(1, -1, -1) is q = (0, 1, 0, 0)
    (tmp_path / "colmap").mkdir()
    (tmp_path / "colmap" / "cameras.txt").write_text("1 PINHOLE 100 80 50 60 51 39\n")
    (tmp_path / "colmap" / "images.txt").write_text("1 0 1 0 0 0 0 5 1 a.png\n\n")
    (ref,) = read_colmap(tmp_path / "colmap").cameras
    np.testing.assert_allclose(cam.world_to_camera, ref.world_to_camera, atol=1e-12)
    assert (cam.fx, cam.fy, cam.cx, cam.cy, cam.width, cam.height) == (ref.fx, ref.fy, ref.cx, ref.cy,
                                                                       ref.width, ref.height)


def test_rotated_camera_round_trips_through_colmap(tmp_path):
    a = math.radians(30)
    yaw = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    write_json(tmp_path / "transforms.json", {
        "camera_angle_x": math.radians(60), "w": 64, "h": 48,
        "frames": [{"file_path": "./images/a.png", "transform_matrix": gl_pose([2, 1, 3], yaw)}],
    })
    (cam,) = read_transforms_json(tmp_path / "transforms.json").cameras
    assert cam.name == "images/a.png"
    assert cam.fx == pytest.approx(32 / math.tan(math.radians(30)))
    assert cam.fy == cam.fx and (cam.cx, cam.cy) == (32, 24)
    # a point straight ahead (the GL camera's -z axis) lands on the principal point
    ahead = np.array([2, 1, 3]) - 4 * yaw[:, 2]
    np.testing.assert_allclose(project(cam, ahead), [32, 24], atol=1e-9)

    write_colmap_text(tmp_path / "sparse", [cam], ["a.png"])
    (back,) = read_colmap(tmp_path / "sparse").cameras
    point = ahead + 0.3 * yaw[:, 0] + 0.2 * yaw[:, 1]  # right and up of the axis
    np.testing.assert_allclose(project(back, point), project(cam, point), atol=1e-9)
    u, v = project(cam, point)
    assert u > 32 and v < 24  # right is +u, up is -v


def test_blender_synthetic_layout(tmp_path):
    (tmp_path / "train").mkdir()
    Image.new("RGBA", (20, 10)).save(tmp_path / "train" / "r_0.png")
    Image.new("RGBA", (20, 10)).save(tmp_path / "train" / "r_1.png")
    write_json(tmp_path / "transforms_train.json", {
        "camera_angle_x": 0.69,
        "frames": [
            {"file_path": "./train/r_0", "transform_matrix": gl_pose([0, 0, 4])},
            {"file_path": "./train/r_1", "transform_matrix": gl_pose([0, 0, 4])[:3], "fl_x": 30.0},
        ],
    })
    model = read_transforms_json(tmp_path / "transforms_train.json")
    assert [p.name for p in model.image_paths] == ["r_0.png", "r_1.png"]
    first, second = model.cameras
    assert (first.width, first.height) == (20, 10)  # from the image header
    assert first.fx == pytest.approx(10 / math.tan(0.345)) and first.fy == first.fx
    assert second.fx == second.fy == 30.0  # per-frame override


def test_downscaled_images_folder_is_used(tmp_path):
    write_json(tmp_path / "transforms.json", {
        "fl_x": 50, "w": 100, "h": 80,
        "frames": [{"file_path": "images/a.png", "transform_matrix": gl_pose([0, 0, 1])}]})
    model = read_transforms_json(tmp_path / "transforms.json", images_dir="images_2")
    assert model.image_paths == [tmp_path / "images_2" / "a.png"]


@pytest.mark.parametrize("extra, message", [
    ({"k1": 0.01}, r"non-zero distortion \(k1=0\.01\)"),
    ({"camera_model": "OPENCV_FISHEYE"}, "not a pinhole model"),
    ({"is_fisheye": True}, "fisheye"),
])
def test_distortion_is_a_clear_error(tmp_path, extra, message):
    meta = {"fl_x": 50, "w": 100, "h": 80, "k1": 0, "p1": 0.0, "camera_model": "OPENCV",
            "frames": [{"file_path": "images/a.png", "transform_matrix": gl_pose([0, 0, 1])}]}
    write_json(tmp_path / "transforms.json", meta)
    assert len(read_transforms_json(tmp_path / "transforms.json").cameras) == 1  # zeros are fine
    meta["frames"][0].update(extra)
    write_json(tmp_path / "transforms.json", meta)
    with pytest.raises(TransformsError, match=rf"transforms\.json: frame 0 \(images/a\.png\): .*{message}"):
        read_transforms_json(tmp_path / "transforms.json")


@pytest.mark.parametrize("meta, message", [
    ({"w": 10, "h": 10, "frames": [{"file_path": "a", "transform_matrix": gl_pose([0, 0, 1])}]},
     "no focal length"),
    ({"fl_x": 5, "w": 10, "h": 10, "frames": [{"file_path": "a", "transform_matrix": [[1, 0], [0, 1]]}]},
     "finite 4x4"),
    ({"fl_x": 5, "w": 10, "h": 10,
      "frames": [{"file_path": "a", "transform_matrix": (2 * np.eye(4)).tolist()}]},
     "not a rigid"),
    ({"fl_x": 5, "frames": [{"file_path": "a", "transform_matrix": gl_pose([0, 0, 1])}]},
     "no 'w'/'h' and image .*a does not exist"),
    ({"fl_x": 5, "w": 10, "h": 10, "frames": []}, "no 'frames'"),
    ({"fl_x": "5", "w": 10, "h": 10, "frames": [{"file_path": "a", "transform_matrix": gl_pose([0, 0, 1])}]},
     "'fl_x' is '5'"),
])
def test_malformed_files_name_the_file(tmp_path, meta, message):
    write_json(tmp_path / "transforms.json", meta)
    with pytest.raises(TransformsError, match=rf"transforms\.json.*{message}"):
        read_transforms_json(tmp_path / "transforms.json")


def test_not_json(tmp_path):
    (tmp_path / "transforms.json").write_text("{nope")
    with pytest.raises(TransformsError, match=r"transforms\.json: not valid JSON"):
        read_transforms_json(tmp_path / "transforms.json")


def test_duplicate_frames_are_refused(tmp_path):
    frame = {"file_path": "images/a.png", "transform_matrix": gl_pose([0, 0, 5])}
    write_json(tmp_path / "transforms.json", {"fl_x": 50.0, "fl_y": 50.0, "cx": 50.0, "cy": 40.0, "w": 100, "h": 80,
                                              "frames": [frame, {**frame, "file_path": "./images/a.png"}]})
    with pytest.raises(TransformsError, match=r"transforms\.json: frame 1 \(\./images/a\.png\): the same image as frame 0"):
        read_transforms_json(tmp_path / "transforms.json")

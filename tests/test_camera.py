"""Camera: look_at puts the target at the principal point with OpenCV axes; scaled keeps the rays."""

import numpy as np
import pytest

from gs_core.camera import Camera


def project(cam: Camera, point) -> np.ndarray:  # [2]
    p = cam.world_to_camera @ np.append(point, 1.0)
    return (cam.K @ (p[:3] / p[2]))[:2]


def test_look_at_axes_and_position():
    cam = Camera.look_at((4, 1, 2), (0, 1, 0), width=64, height=48)
    R = cam.world_to_camera[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(cam.position, [4, 1, 2], atol=1e-12)
    np.testing.assert_allclose(project(cam, (0, 1, 0)), [32, 24], atol=1e-9)  # target at the centre
    u, v = project(cam, (0, 1, 1))  # above the target (up = +z)
    assert v < 24 and u == pytest.approx(32)
    depth = (cam.world_to_camera @ [0, 1, 0, 1])[2]
    assert depth == pytest.approx(np.sqrt(20))  # +z forward


def test_look_at_field_of_view():
    cam = Camera.look_at((0, 0, 0), (0, 1, 0), fov_x_deg=90, width=100, height=50)
    assert cam.fx == pytest.approx(50) and cam.fy == cam.fx
    u, _ = project(cam, (1, 1, 0))  # 45 degrees to the side is the image edge
    assert u == pytest.approx(100)


def test_look_at_along_up_still_gives_a_rotation():
    cam = Camera.look_at((0, 0, 5), (0, 0, 0))
    R = cam.world_to_camera[:3, :3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(project(cam, (0, 0, 0)), [cam.cx, cam.cy], atol=1e-9)


@pytest.mark.parametrize("factor", [0.5, 0.25, 2.0, 1 / 3])
def test_scaled_keeps_rays(factor):
    cam = Camera(fx=70.0, fy=72.0, cx=33.1, cy=23.9, width=65, height=49,
                 world_to_camera=Camera.look_at((3, 2, 1), (0, 0, 0)).world_to_camera, name="v")
    small = cam.scaled(factor)
    assert (small.width, small.height) == (max(1, round(65 * factor)), max(1, round(49 * factor)))
    assert small.name == "v" and np.array_equal(small.world_to_camera, cam.world_to_camera)
    sx, sy = small.width / cam.width, small.height / cam.height
    for point in [(0, 0, 0), (0.3, -0.2, 0.1)]:
        np.testing.assert_allclose(project(small, point), project(cam, point) * [sx, sy], atol=1e-9)


def test_invalid_cameras():
    with pytest.raises(ValueError, match="4x4"):
        Camera(1, 1, 0, 0, 2, 2, np.eye(3))
    with pytest.raises(ValueError, match="non-finite"):
        Camera(1, 1, 0, 0, 2, 2, np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="not positive"):
        Camera(1, 1, 0, 0, 0, 2, np.eye(4), name="zero")


def test_dict_round_trip_and_errors():
    cam = Camera(fx=70.0, fy=72.0, cx=33.1, cy=23.9, width=65, height=49,
                 world_to_camera=Camera.look_at((3, 2, 1), (0, 0, 0)).world_to_camera, name="v")
    back = Camera.from_dict(cam.to_dict())
    assert back.name == "v" and np.array_equal(back.world_to_camera, cam.world_to_camera)
    assert (back.fx, back.fy, back.cx, back.cy, back.width, back.height) == (70.0, 72.0, 33.1, 23.9, 65, 49)
    assert Camera.from_dict({k: v for k, v in cam.to_dict().items() if k != "name"}, "given").name == "given"
    with pytest.raises(ValueError, match="missing cy, world_to_camera"):
        Camera.from_dict({"fx": 1, "fy": 1, "cx": 0, "width": 2, "height": 2})
    with pytest.raises(ValueError, match="focal lengths"):
        Camera.from_dict({**cam.to_dict(), "fy": 0})
    with pytest.raises(ValueError, match="4x4"):
        Camera.from_dict({**cam.to_dict(), "world_to_camera": [[1, 0], [0, 1]]})
    with pytest.raises(ValueError, match="expected an object"):
        Camera.from_dict([1, 2])

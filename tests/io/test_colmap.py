"""COLMAP models: text and binary read back what was written; unusable cameras fail clearly."""

import struct

import numpy as np
import pytest

from gs_core.camera import Camera
from gs_core.io.colmap import ColmapError, read_colmap, read_colmap_points, write_colmap_text
from gs_core.splat_transform import quat_from_matrix as rotmat_to_quat, quat_to_matrix as quat_to_rotmat

MODEL_IDS = {"SIMPLE_PINHOLE": 0, "PINHOLE": 1, "SIMPLE_RADIAL": 2, "OPENCV": 4, "OPENCV_FISHEYE": 5}


def rig() -> list[Camera]:
    """Three views around the origin; two share intrinsics, one has its own (fx != fy, off-centre)."""
    a = Camera.look_at((3, 0, 1), (0, 0, 0), width=64, height=48, name="a")
    b = Camera.look_at((0, -3, 2), (0, 0.5, 0), width=64, height=48, name="b")
    c = Camera.look_at((-2, 2, -1), (0, 0, 0), width=40, height=30, name="c")
    c = Camera(fx=51.25, fy=49.5, cx=19.7, cy=15.2, width=40, height=30,
               world_to_camera=c.world_to_camera, name="c")
    return [a, b, c]


def write_colmap_bin(folder, cameras: list[tuple], images: list[tuple], points: list[tuple]) -> None:
    """Test-side binary writer, independent of the reader: cameras (id, model, w, h, params),
    images (id, qvec, tvec, camera id, name, n 2D points), points (id, xyz, rgb, track length)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = struct.pack("<Q", len(cameras))
    for camera_id, model, w, h, params in cameras:
        out += struct.pack("<iiQQ", camera_id, MODEL_IDS[model], w, h)
        out += struct.pack(f"<{len(params)}d", *params)
    (folder / "cameras.bin").write_bytes(out)
    out = struct.pack("<Q", len(images))
    for image_id, qvec, tvec, camera_id, name, n_points in images:
        out += struct.pack("<i4d3di", image_id, *qvec, *tvec, camera_id) + name.encode() + b"\0"
        out += struct.pack("<Q", n_points)
        out += b"".join(struct.pack("<ddq", 1.5 * i, 2.5 * i, -1) for i in range(n_points))
    (folder / "images.bin").write_bytes(out)
    out = struct.pack("<Q", len(points))
    for point_id, xyz, rgb, track in points:
        out += struct.pack("<Q3d3BdQ", point_id, *xyz, *rgb, 0.5, track)
        out += b"".join(struct.pack("<ii", 1, i) for i in range(track))
    (folder / "points3D.bin").write_bytes(out)


def pose(cam: Camera) -> tuple[np.ndarray, np.ndarray]:
    """COLMAP's (qvec, tvec) of a camera."""
    return rotmat_to_quat(cam.world_to_camera[:3, :3]), cam.world_to_camera[:3, 3]


def assert_same_cameras(got: list[Camera], want: list[Camera]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.fx, g.fy, g.cx, g.cy, g.width, g.height) == (w.fx, w.fy, w.cx, w.cy, w.width, w.height)
        np.testing.assert_allclose(g.world_to_camera, w.world_to_camera, atol=1e-12)


def test_quaternion_round_trip_covers_every_branch():
    rng = np.random.default_rng(0)
    qs = [rng.standard_normal(4) for _ in range(200)] + [np.eye(4)[i] for i in range(4)]
    for q in qs:
        q = q / np.linalg.norm(q) * (1 if q[0] >= 0 else -1)
        R = quat_to_rotmat(q)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(rotmat_to_quat(R), q, atol=1e-12)


def test_text_round_trip(tmp_path):
    cams = rig()
    names = ["img_000.png", "img_001.png", "sub dir/img 002.jpg"]
    xyz = np.random.default_rng(1).standard_normal((5, 3))
    rgb = np.arange(15).reshape(5, 3) * 10
    write_colmap_text(tmp_path / "sparse" / "0", cams, names, points=(xyz, rgb))

    model = read_colmap(tmp_path / "sparse")  # finds sparse/0
    assert model.names == names
    assert [c.name for c in model.cameras] == names
    assert_same_cameras(model.cameras, cams)
    text = (tmp_path / "sparse" / "0" / "cameras.txt").read_text()
    assert len([line for line in text.splitlines() if line and not line.startswith("#")]) == 2  # shared

    got_xyz, got_rgb = read_colmap_points(tmp_path / "sparse" / "0")
    np.testing.assert_array_equal(got_xyz, xyz)
    np.testing.assert_array_equal(got_rgb, rgb)


def test_text_points_are_optional(tmp_path):
    write_colmap_text(tmp_path, rig()[:1], ["a.png"])
    xyz, rgb = read_colmap_points(tmp_path)
    assert xyz.shape == (0, 3) and rgb.shape == (0, 3)
    write_colmap_text(tmp_path, rig()[:1], ["a.png"], points=np.ones((2, 3)))
    assert read_colmap_points(tmp_path)[1].tolist() == [[128, 128, 128]] * 2


def test_write_rejects_mismatched_lists(tmp_path):
    with pytest.raises(ValueError, match="2 image names"):
        write_colmap_text(tmp_path, rig()[:1], ["a.png", "b.png"])
    with pytest.raises(ValueError, match="not unique"):
        write_colmap_text(tmp_path, rig()[:2], ["a.png", "a.png"])


def test_binary_reader_matches_text(tmp_path):
    cams = rig()
    write_colmap_text(tmp_path / "txt", cams, ["a.png", "b.png", "c.png"])
    ref = read_colmap(tmp_path / "txt")
    k0, k2 = cams[0], cams[2]
    write_colmap_bin(
        tmp_path / "bin",
        cameras=[(7, "SIMPLE_PINHOLE", 64, 48, (k0.fx, k0.cx, k0.cy)),
                 (9, "PINHOLE", 40, 30, (k2.fx, k2.fy, k2.cx, k2.cy))],
        # ids out of file order: the model is returned by image id
        images=[(5, *pose(cams[2]), 9, "c.png", 0), (1, *pose(cams[0]), 7, "a.png", 3),
                (2, *pose(cams[1]), 7, "b.png", 2)],
        points=[(1, (1.0, 2.0, 3.0), (10, 20, 30), 4), (5, (-1.0, 0.5, 0.25), (255, 0, 7), 0)],
    )
    model = read_colmap(tmp_path / "bin")
    assert model.names == ["a.png", "b.png", "c.png"]
    assert_same_cameras(model.cameras, ref.cameras)
    xyz, rgb = read_colmap_points(tmp_path / "bin")
    assert xyz.tolist() == [[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25]]
    assert rgb.tolist() == [[10, 20, 30], [255, 0, 7]]


def test_binary_preferred_over_text(tmp_path):
    cams = rig()
    write_colmap_text(tmp_path, cams[:1], ["from_text.png"])
    c = cams[1]
    write_colmap_bin(tmp_path, [(1, "PINHOLE", 64, 48, (c.fx, c.fy, c.cx, c.cy))],
                     [(1, *pose(c), 1, "from_bin.png", 0)], [])
    assert read_colmap(tmp_path).names == ["from_bin.png"]


@pytest.mark.parametrize("cut", [3, 30, 70, 75, 100])
def test_truncated_binary_names_the_file(tmp_path, cut):
    c = rig()[0]
    write_colmap_bin(tmp_path, [(1, "PINHOLE", 64, 48, (c.fx, c.fy, c.cx, c.cy))],
                     [(1, *pose(c), 1, "a.png", 4)], [])
    images = tmp_path / "images.bin"
    images.write_bytes(images.read_bytes()[:cut])
    with pytest.raises(ColmapError, match=r"images\.bin: truncated file"):
        read_colmap(tmp_path)


def test_hand_written_text_with_points_and_comments(tmp_path):
    (tmp_path / "cameras.txt").write_text(
        "# comment\n1 SIMPLE_RADIAL 100 80 90 50 40 0\n2 OPENCV 100 80 90 91 50 40 0 0 0 0\n")
    (tmp_path / "images.txt").write_text(
        "# header\n"
        "1 1 0 0 0 0 0 5 1 one.png\n"
        "10.5 20.5 -1 30 40 7\n"
        "2 0 0 0 1 1 2 3 2 two.png\n"
        "\n")
    model = read_colmap(tmp_path)
    assert model.names == ["one.png", "two.png"]
    one, two = model.cameras
    assert (one.fx, one.fy, one.cx, one.cy) == (90, 90, 50, 40)
    assert (two.fx, two.fy) == (90, 91)
    np.testing.assert_allclose(two.world_to_camera[:3, :3], np.diag([-1, -1, 1]), atol=1e-15)
    np.testing.assert_allclose(two.world_to_camera[:3, 3], [1, 2, 3])


@pytest.mark.parametrize("line, model", [
    ("1 OPENCV 100 80 90 90 50 40 0.1 0 0 0", "OPENCV"),
    ("1 SIMPLE_RADIAL 100 80 90 50 40 -0.02", "SIMPLE_RADIAL"),
    ("1 OPENCV_FISHEYE 100 80 90 90 50 40 0 0 0 0", "OPENCV_FISHEYE"),
])
def test_distortion_is_a_clear_error(tmp_path, line, model):
    (tmp_path / "cameras.txt").write_text(line + "\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(ColmapError, match=rf"cameras\.txt: camera 1 .*{model}.*image_undistorter"):
        read_colmap(tmp_path)


def test_binary_distortion_error_names_the_file(tmp_path):
    write_colmap_bin(tmp_path, [(3, "OPENCV", 64, 48, (50, 50, 32, 24, 0, 0, 0.001, 0))],
                     [(1, (1, 0, 0, 0), (0, 0, 0), 3, "a.png", 0)], [])
    with pytest.raises(ColmapError, match=r"cameras\.bin: camera 3 uses model OPENCV .*p1=0\.001"):
        read_colmap(tmp_path)


def test_other_malformed_models(tmp_path):
    with pytest.raises(ColmapError, match="no COLMAP model"):
        read_colmap(tmp_path)
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 100 80 90 90 50\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n")
    with pytest.raises(ColmapError, match=r"cameras\.txt: camera 1 \(PINHOLE\) has 3 parameters"):
        read_colmap(tmp_path)
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 100 80 90 90 50 40\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 2 a.png\n\n")
    with pytest.raises(ColmapError, match=r"images\.txt: image 'a\.png' uses camera 2"):
        read_colmap(tmp_path)
    (tmp_path / "images.txt").write_text("1 1 0 0 0 zero 0 0 1 a.png\n\n")
    with pytest.raises(ColmapError, match=r"images\.txt:1: expected"):
        read_colmap(tmp_path)


def test_duplicate_image_names_are_refused(tmp_path):
    """One photo at two poses would make every view of it but one wrong: refused, naming the file."""
    (tmp_path / "cameras.txt").write_text("1 PINHOLE 100 80 90 90 50 40\n")
    (tmp_path / "images.txt").write_text("1 1 0 0 0 0 0 0 1 a.png\n\n2 1 0 0 0 1 0 0 1 a.png\n\n")
    with pytest.raises(ColmapError, match=r"images\.txt: image name 'a\.png' appears twice \(image ids 1 and 2\)"):
        read_colmap(tmp_path)
    c = rig()[0]
    write_colmap_bin(tmp_path / "bin", [(1, "PINHOLE", 64, 48, (c.fx, c.fy, c.cx, c.cy))],
                     [(1, (1, 0, 0, 0), (0, 0, 0), 1, "b.png", 0), (5, (1, 0, 0, 0), (1, 0, 0), 1, "b.png", 0)], [])
    with pytest.raises(ColmapError, match=r"images\.bin: image name 'b\.png' appears twice"):
        read_colmap(tmp_path / "bin")

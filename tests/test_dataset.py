"""Dataset folders: cameras, lazy images and masks at the loaded resolution, errors naming the file."""

import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

from gs_core.camera import Camera
from gs_core.dataset import Dataset, DatasetError
from gs_core.io.colmap import write_colmap_text
from gs_core.io.masks import save_mask_stack
from gs_core.io.transforms_json import OPENGL_TO_OPENCV
from gs_core.scene import GaussianScene

W, H = 16, 12


def make_dataset(root, n=3, size=(W, H), images_dir="images", camera_size=(W, H)) -> list[Camera]:
    """images/ with random RGB PNGs, sparse/0 in COLMAP text, masks/ for every view but the last,
    and a small scene.ply. Returns the cameras written."""
    rng = np.random.default_rng(0)
    cams = [Camera.look_at((3 * np.cos(a), 3 * np.sin(a), 1), (0, 0, 0), width=camera_size[0],
                           height=camera_size[1]) for a in np.linspace(0, 2, n)]
    names = [f"view_{i:02d}.png" for i in range(n)]
    write_colmap_text(root / "sparse" / "0", cams, names)
    (root / images_dir).mkdir(parents=True)
    for i, name in enumerate(names):
        rgb = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / images_dir / name)
        if i < n - 1:
            save_mask_stack(root / "masks" / f"view_{i:02d}.npz", rng.random((2, size[1], size[0])) > 0.5)
    zeros = np.zeros((2, 3), np.float32)
    scene = GaussianScene(means=zeros, quats=np.tile(np.float32([1, 0, 0, 0]), (2, 1)), log_scales=zeros,
                          opacity_logits=np.zeros(2, np.float32), sh_dc=zeros,
                          sh_rest=np.zeros((2, 0, 3), np.float32))
    scene.save(root / "scene.ply")
    return cams


def snapshot(root) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")}


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255


def test_load_and_read_everything(tmp_path):
    cams = make_dataset(tmp_path)
    before = snapshot(tmp_path)
    ds = Dataset.load(tmp_path)
    assert len(ds) == 3 and ds.root == tmp_path
    assert ds.names == ["view_00.png", "view_01.png", "view_02.png"]
    assert [c.name for c in ds.cameras] == ds.names
    for got, want in zip(ds.cameras, cams):
        assert (got.fx, got.cx, got.width, got.height) == (want.fx, want.cx, W, H)
        np.testing.assert_allclose(got.world_to_camera, want.world_to_camera, atol=1e-12)
    image = ds.image(1)
    assert image.shape == (H, W, 3) and image.dtype == np.float32
    np.testing.assert_array_equal(image, pixels(tmp_path / "images" / "view_01.png"))
    masks = ds.masks(0)
    assert masks.shape == (2, H, W) and masks.dtype == bool
    assert ds.masks(2) is None  # no stack for the last view
    assert ds.scene_path == tmp_path / "scene.ply" and len(ds.load_scene()) == 2
    assert ds.label_map(0) is None
    assert snapshot(tmp_path) == before  # nothing written into the dataset


def test_images_are_read_lazily_and_not_kept(tmp_path):
    make_dataset(tmp_path)
    path = tmp_path / "images" / "view_01.png"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, pixels cut off
    ds = Dataset.load(tmp_path)  # only headers are read
    with pytest.raises(DatasetError, match=r"view_01\.png: cannot read image"):
        ds.image(1)
    first = ds.image(0)
    first[:] = 0
    assert ds.image(0).any()  # a fresh read, not a shared cached array


def test_downscale(tmp_path):
    cams = make_dataset(tmp_path)
    ds = Dataset.load(tmp_path, downscale=2)
    cam = ds.cameras[0]
    assert (cam.width, cam.height) == (W // 2, H // 2)
    assert cam.fx == pytest.approx(cams[0].fx / 2) and cam.cx == pytest.approx(cams[0].cx / 2)
    full = pixels(tmp_path / "images" / "view_00.png")
    block_mean = full.reshape(H // 2, 2, W // 2, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(ds.image(0), block_mean, atol=1e-6)  # area average
    masks = ds.masks(0)
    assert masks.shape == (2, H // 2, W // 2)
    full_masks = Dataset.load(tmp_path).masks(0)
    np.testing.assert_array_equal(masks, full_masks[:, 1::2, 1::2])  # nearest at pixel centres

    up = Dataset.load(tmp_path, downscale=0.5)
    assert up.image(0).shape == (2 * H, 2 * W, 3) and up.masks(0).shape == (2, 2 * H, 2 * W)


@pytest.mark.parametrize("k, size", [(2, (8, 6)), (2, (8, 7)), (4, (4, 3)), (3, (5, 4))])
def test_downscaled_image_folder_with_full_size_cameras(tmp_path, k, size):
    cams = make_dataset(tmp_path, size=size, images_dir=f"images_{k}", camera_size=(W, 13))
    ds = Dataset.load(tmp_path, images_dir=f"images_{k}")
    cam = ds.cameras[0]
    assert (cam.width, cam.height) == size
    assert cam.fx == pytest.approx(cams[0].fx * size[0] / W)
    assert cam.fy == pytest.approx(cams[0].fy * size[1] / 13)
    assert ds.image(0).shape == (size[1], size[0], 3)


def test_transforms_json_dataset(tmp_path):
    cams = make_dataset(tmp_path)
    frames = [{"file_path": f"images/view_{i:02d}.png",
               "transform_matrix": (np.linalg.inv(c.world_to_camera) @ OPENGL_TO_OPENCV).tolist()}
              for i, c in enumerate(cams)]
    meta = {"fl_x": cams[0].fx, "fl_y": cams[0].fy, "cx": cams[0].cx, "cy": cams[0].cy, "w": W, "h": H,
            "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    ds = Dataset.load(tmp_path, sparse="transforms.json")
    colmap = Dataset.load(tmp_path)
    assert ds.names == colmap.names
    for a, b in zip(ds.cameras, colmap.cameras):
        np.testing.assert_allclose(a.world_to_camera, b.world_to_camera, atol=1e-9)
    assert ds.masks(0) is not None  # masks found by image stem

    os.rename(tmp_path / "sparse", tmp_path / "elsewhere")
    assert Dataset.load(tmp_path).names == ds.names  # picked up without being asked
    assert Dataset.load(tmp_path, sparse="elsewhere").names == ds.names


def test_object_mask_label_map(tmp_path):
    make_dataset(tmp_path)
    labels = np.zeros((H, W), np.uint16)
    labels[2:6, 3:9] = 513
    (tmp_path / "object_mask").mkdir()
    Image.fromarray(labels).save(tmp_path / "object_mask" / "view_01.png")
    assert np.array_equal(Dataset.load(tmp_path).label_map(1), labels)
    half = Dataset.load(tmp_path, downscale=2).label_map(1)
    assert half.shape == (H // 2, W // 2) and set(np.unique(half)) == {0, 513}


# ---- every error names the file -------------------------------------------------------------

def test_missing_folder_and_cameras(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere: dataset folder does not exist"):
        Dataset.load(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"no cameras: expected a COLMAP model in sparse/0"):
        Dataset.load(tmp_path)
    make_dataset(tmp_path)
    with pytest.raises(DatasetError, match=r"missing\.json: no such file"):
        Dataset.load(tmp_path, sparse="missing.json")
    with pytest.raises(DatasetError, match=r"downscale must be a positive number"):
        Dataset.load(tmp_path, downscale=0)


def test_missing_images(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "images" / "view_02.png").unlink()
    with pytest.raises(DatasetError,
                       match=r"images/view_02\.png: image file does not exist \(listed in .*sparse"):
        Dataset.load(tmp_path)
    with pytest.raises(DatasetError, match=r"images_8: images folder does not exist"):
        Dataset.load(tmp_path, images_dir="images_8")


def test_image_size_mismatch(tmp_path):
    make_dataset(tmp_path)
    Image.new("RGB", (W - 3, H)).save(tmp_path / "images" / "view_01.png")
    with pytest.raises(DatasetError, match=rf"view_01\.png: image is {W - 3}x{H}, but its camera in "
                                           rf".*sparse is {W}x{H}"):
        Dataset.load(tmp_path)


def test_unsupported_camera_model(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "sparse" / "0" / "cameras.txt").write_text(f"1 OPENCV {W} {H} 10 10 8 6 0.1 0 0 0\n")
    with pytest.raises(DatasetError, match=r"cameras\.txt: camera 1 uses model OPENCV .*image_undistorter"):
        Dataset.load(tmp_path)


def test_truncated_binary_model(tmp_path):
    make_dataset(tmp_path)
    model = tmp_path / "sparse" / "0"
    (model / "cameras.bin").write_bytes(struct.pack("<Qii", 1, 1, 1))  # one camera, cut short
    (model / "images.bin").write_bytes(struct.pack("<Q", 0))
    with pytest.raises(DatasetError, match=r"cameras\.bin: truncated file"):
        Dataset.load(tmp_path)


def test_mask_problems(tmp_path):
    make_dataset(tmp_path)
    save_mask_stack(tmp_path / "masks" / "view_00.npz", np.zeros((1, H, W + 1), bool))
    (tmp_path / "masks" / "view_01.npz").write_bytes(b"junk")
    ds = Dataset.load(tmp_path)
    with pytest.raises(DatasetError, match=rf"view_00\.npz: mask stack is {W + 1}x{H}, but image .*"
                                           rf"view_00\.png is {W}x{H}"):
        ds.masks(0)
    with pytest.raises(DatasetError, match=r"view_01\.npz: not a readable"):
        ds.masks(1)


def test_scene_problems(tmp_path):
    make_dataset(tmp_path)
    (tmp_path / "scene.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\n"
                                         b"property float x\nend_header\n\0\0")
    with pytest.raises(DatasetError, match=r"scene\.ply: truncated"):
        Dataset.load(tmp_path).load_scene()
    (tmp_path / "scene.ply").unlink()
    ds = Dataset.load(tmp_path)
    assert ds.scene_path is None
    with pytest.raises(DatasetError, match=r"scene\.ply: no such file"):
        ds.load_scene()


def test_rgba_and_16bit_grey_images(tmp_path):
    make_dataset(tmp_path)
    rgba = np.random.default_rng(3).integers(0, 256, (H, W, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "images" / "view_00.png")
    grey = np.full((H, W), 65535, np.uint16)
    grey[0, 0] = 0
    Image.fromarray(grey).save(tmp_path / "images" / "view_01.png")
    ds = Dataset.load(tmp_path)
    np.testing.assert_array_equal(ds.image(0), rgba[:, :, :3] / np.float32(255))  # alpha dropped
    image = ds.image(1)
    assert image.shape == (H, W, 3) and image[0, 0].tolist() == [0, 0, 0] and image[1, 1].tolist() == [1, 1, 1]


def test_precomputed_mask_formats(tmp_path):
    """masks/<stem>.npz, .npy and <stem>/ folders of binary PNGs; sizes checked against the image."""
    make_dataset(tmp_path, n=4)
    rng = np.random.default_rng(1)
    npy = rng.random((3, H, W)) > 0.5
    (tmp_path / "masks" / "view_01.npz").unlink()
    np.save(tmp_path / "masks" / "view_01.npy", npy)
    pngs = rng.random((2, H, W)) > 0.5
    (tmp_path / "masks" / "view_02.npz").unlink()
    (tmp_path / "masks" / "view_02").mkdir()
    Image.fromarray(pngs[0].astype(np.uint8) * 255).save(tmp_path / "masks" / "view_02" / "a.png")
    Image.fromarray(pngs[1]).save(tmp_path / "masks" / "view_02" / "b.png")  # 1-bit
    ds = Dataset.load(tmp_path)
    assert ds.mask_source(0).name == "view_00.npz" and ds.mask_source(1).name == "view_01.npy"
    assert ds.mask_source(2).name == "view_02" and ds.mask_source(3) is None
    np.testing.assert_array_equal(ds.masks(1), npy)
    np.testing.assert_array_equal(ds.masks(2), pngs)
    assert ds.masks(3) is None

    np.save(tmp_path / "masks" / "view_01.npy", np.zeros((1, H + 1, W), bool))
    with pytest.raises(DatasetError, match=r"view_01\.npy: mask stack is 16x13, but image .*view_01\.png is 16x12"):
        ds.masks(1)
    np.save(tmp_path / "masks" / "view_01.npy", np.full((1, H, W), 2, np.uint8))
    with pytest.raises(DatasetError, match=r"view_01\.npy: masks must be bool"):
        ds.masks(1)
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "masks" / "view_02" / "c.png")
    with pytest.raises(DatasetError, match=r"c\.png: binary masks must be greyscale"):
        ds.masks(2)
    Image.fromarray(np.zeros((H, W + 2), np.uint8)).save(tmp_path / "masks" / "view_02" / "c.png")
    with pytest.raises(DatasetError, match=r"c\.png: mask is 18x12, but a\.png in the same folder is 16x12"):
        ds.masks(2)


def test_mask_names_keep_dots_and_generated_masks_folder(tmp_path):
    make_dataset(tmp_path, n=2)
    other = tmp_path.parent / f"{tmp_path.name}_generated"
    save_mask_stack(other / "view_00.npz", np.ones((1, H, W), bool))
    ds = Dataset.load(tmp_path).with_masks(other)
    assert ds.masks(0).shape == (1, H, W) and ds.masks(1) is None

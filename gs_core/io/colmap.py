"""COLMAP sparse models (``cameras``, ``images``, ``points3D`` as ``.txt`` or ``.bin``): read them
into :class:`~gs_core.camera.Camera` objects, and write the text form.

The reader is our own ~200 lines of ``struct``/numpy: the format is tiny and has been stable for a
decade, while pycolmap is a heavy binary dependency whose Python API changes across versions.

Only undistorted pinhole cameras are accepted (what the splat trainers use): ``PINHOLE``,
``SIMPLE_PINHOLE``, and the radial/OpenCV models when every distortion coefficient is zero. Anything
else raises :class:`ColmapError` naming the file and the model. COLMAP stores world-to-camera
rotations as quaternions ``qw qx qy qz`` and pixel centres at ``+0.5``, like :class:`Camera`.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_text
from ..camera import Camera
from ..splat_transform import quat_from_matrix, quat_to_matrix


class ColmapError(ValueError):
    """A COLMAP model that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class _Model:
    """A COLMAP camera model: its id in ``.bin`` files and its parameter layout."""

    name: str
    model_id: int
    params: tuple[str, ...]
    distortion: tuple[str, ...] = ()  # pinhole when all of these are zero
    fisheye: bool = False  # never pinhole, whatever its coefficients


_MODELS = {m.name: m for m in [
    _Model("SIMPLE_PINHOLE", 0, ("f", "cx", "cy")),
    _Model("PINHOLE", 1, ("fx", "fy", "cx", "cy")),
    _Model("SIMPLE_RADIAL", 2, ("f", "cx", "cy", "k"), ("k",)),
    _Model("RADIAL", 3, ("f", "cx", "cy", "k1", "k2"), ("k1", "k2")),
    _Model("OPENCV", 4, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"), ("k1", "k2", "p1", "p2")),
    _Model("OPENCV_FISHEYE", 5, ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"), fisheye=True),
    _Model("FULL_OPENCV", 6, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"),
           ("k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
    _Model("FOV", 7, ("fx", "fy", "cx", "cy", "omega"), ("omega",)),
    _Model("SIMPLE_RADIAL_FISHEYE", 8, ("f", "cx", "cy", "k"), fisheye=True),
    _Model("RADIAL_FISHEYE", 9, ("f", "cx", "cy", "k1", "k2"), fisheye=True),
    _Model("THIN_PRISM_FISHEYE", 10, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4",
                                      "sx1", "sy1"), fisheye=True),
    _Model("RAD_TAN_THIN_PRISM_FISHEYE", 11, ("fx", "fy", "cx", "cy", "k0", "k1", "k2", "k3", "k4",
                                              "k5", "p0", "p1", "s0", "s1", "s2", "s3"), fisheye=True),
]}
_MODELS_BY_ID = {m.model_id: m for m in _MODELS.values()}
_UNDISTORT_HINT = "undistort with colmap image_undistorter first"


@dataclass
class ColmapIntrinsics:
    """One entry of ``cameras.*`` reduced to a pinhole."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int


@dataclass
class ColmapModel:
    """The registered images of a sparse model, ordered by COLMAP image id."""

    cameras: list[Camera]  # one per image, ``name`` = image path relative to the images folder
    names: list[str]


def _world_to_camera(qvec, tvec) -> np.ndarray:  # [4, 4]
    w2c = np.eye(4)
    w2c[:3, :3] = quat_to_matrix(qvec)
    w2c[:3, 3] = tvec
    return w2c


# ---- reading ----------------------------------------------------------------------------------

def find_model_files(sparse_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(cameras, images)`` files of a model folder: ``.bin`` preferred, else ``.txt``.

    ``sparse_dir`` may be the model folder itself or a ``sparse`` folder holding ``0/``.
    """
    sparse_dir = Path(sparse_dir)
    for folder in (sparse_dir, sparse_dir / "0"):
        for ext in (".bin", ".txt"):
            cams, imgs = folder / f"cameras{ext}", folder / f"images{ext}"
            if cams.is_file() and imgs.is_file():
                return cams, imgs
    raise ColmapError(f"{sparse_dir}: no COLMAP model (cameras.bin/images.bin or cameras.txt/"
                      f"images.txt) here or in {sparse_dir / '0'}")


def read_colmap(sparse_dir: str | os.PathLike) -> ColmapModel:
    """Cameras and image names of the sparse model in ``sparse_dir`` (text or binary)."""
    cams_path, imgs_path = find_model_files(sparse_dir)
    if cams_path.suffix == ".bin":
        intrinsics, images = _read_cameras_bin(cams_path), _read_images_bin(imgs_path)
    else:
        intrinsics, images = _read_cameras_txt(cams_path), _read_images_txt(imgs_path)
    cameras, names, seen = [], [], {}
    for image_id in sorted(images):
        qvec, tvec, camera_id, name = images[image_id]
        if name in seen:  # one photo at two poses: every view of it but one would be wrong
            raise ColmapError(f"{imgs_path}: image name {name!r} appears twice (image ids {seen[name]} and "
                              f"{image_id}); each image needs exactly one pose")
        seen[name] = image_id
        if camera_id not in intrinsics:
            raise ColmapError(f"{imgs_path}: image {name!r} uses camera {camera_id}, which "
                              f"{cams_path} does not define")
        k = intrinsics[camera_id]
        norm = np.linalg.norm(qvec)
        if not np.isfinite(norm) or norm < 1e-12 or not np.isfinite(tvec).all():
            raise ColmapError(f"{imgs_path}: image {name!r} has an invalid pose q={qvec} t={tvec}")
        cameras.append(Camera(fx=k.fx, fy=k.fy, cx=k.cx, cy=k.cy, width=k.width, height=k.height,
                              world_to_camera=_world_to_camera(qvec, tvec), name=name))
        names.append(name)
    return ColmapModel(cameras, names)


def _pinhole(path: Path, camera_id: int, model_name: str, width: int, height: int,
             params) -> ColmapIntrinsics:
    model = _MODELS.get(model_name)
    if model is None:
        raise ColmapError(f"{path}: camera {camera_id} has unknown model {model_name!r}")
    if len(params) != len(model.params):
        raise ColmapError(f"{path}: camera {camera_id} ({model_name}) has {len(params)} parameters, "
                          f"expected {len(model.params)} ({' '.join(model.params)})")
    p = dict(zip(model.params, (float(v) for v in params)))
    if model.fisheye:
        raise ColmapError(f"{path}: camera {camera_id} uses the fisheye model {model_name}, only "
                          f"undistorted pinhole cameras are supported; {_UNDISTORT_HINT}")
    distorted = {name: p[name] for name in model.distortion if p[name] != 0.0}
    if distorted:
        coeffs = ", ".join(f"{k}={v:g}" for k, v in distorted.items())
        raise ColmapError(f"{path}: camera {camera_id} uses model {model_name} with non-zero "
                          f"distortion ({coeffs}); only undistorted pinhole cameras are supported; "
                          f"{_UNDISTORT_HINT}")
    fx = p.get("fx", p.get("f"))
    fy = p.get("fy", p.get("f"))
    if not all(np.isfinite(v) for v in (fx, fy, p["cx"], p["cy"])) or fx <= 0 or fy <= 0:
        raise ColmapError(f"{path}: camera {camera_id} has invalid intrinsics {params}")
    if width <= 0 or height <= 0:
        raise ColmapError(f"{path}: camera {camera_id} has image size {width}x{height}")
    return ColmapIntrinsics(fx, fy, p["cx"], p["cy"], int(width), int(height))


def _data_lines(path: Path):
    """``(line number, text)`` of every line that is not a comment; blank lines kept."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ColmapError(f"{path}: not a COLMAP text file ({exc})") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines())
            if not line.lstrip().startswith("#")]


def _read_cameras_txt(path: Path) -> dict[int, ColmapIntrinsics]:
    cameras = {}
    for lineno, line in _data_lines(path):
        if not line:
            continue
        fields = line.split()
        try:
            camera_id, model, width, height = int(fields[0]), fields[1], int(fields[2]), int(fields[3])
            params = [float(v) for v in fields[4:]]
        except (ValueError, IndexError):
            raise ColmapError(f"{path}:{lineno}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...', "
                              f"got {line!r}") from None
        cameras[camera_id] = _pinhole(path, camera_id, model, width, height, params)
    return cameras


def _read_images_txt(path: Path) -> dict[int, tuple]:
    """image id -> (qvec [4], tvec [3], camera id, name). Each image is two lines: pose, then
    its 2D points (possibly an empty line), which we skip."""
    images = {}
    lines = _data_lines(path)
    i = 0
    while i < len(lines):
        lineno, line = lines[i]
        if not line:
            i += 1
            continue
        fields = line.split(maxsplit=9)
        try:
            image_id = int(fields[0])
            qvec = np.array([float(v) for v in fields[1:5]])
            tvec = np.array([float(v) for v in fields[5:8]])
            camera_id, name = int(fields[8]), fields[9].strip()
        except (ValueError, IndexError):
            raise ColmapError(f"{path}:{lineno}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID "
                              f"NAME', got {line!r}") from None
        images[image_id] = (qvec, tvec, camera_id, name)
        i += 2
    return images


class _Reader:
    """Sequential little-endian reads from a ``.bin`` model; truncation names the file."""

    def __init__(self, path: Path):
        self.path = path
        self.buf = path.read_bytes()
        self.pos = 0

    def read(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        self._need(size, fmt)
        out = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += size
        return out

    def skip(self, size: int, what: str) -> None:
        self._need(size, what)
        self.pos += size

    def string(self) -> str:
        end = self.buf.find(b"\0", self.pos)
        if end < 0:
            raise ColmapError(f"{self.path}: truncated file (unterminated image name at byte {self.pos})")
        out = self.buf[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end + 1
        return out

    def _need(self, size: int, what: str) -> None:
        if self.pos + size > len(self.buf):
            raise ColmapError(f"{self.path}: truncated file (needed {size} bytes for {what} at byte "
                              f"{self.pos}, file has {len(self.buf)})")

    def count(self, item_size: int, what: str) -> int:
        """A uint64 count, sanity-checked against the bytes left so garbage fails fast."""
        (n,) = self.read("Q")
        if n * item_size > len(self.buf) - self.pos:
            raise ColmapError(f"{self.path}: truncated file ({n} {what} cannot fit in the "
                              f"{len(self.buf) - self.pos} bytes left)")
        return n


def _read_cameras_bin(path: Path) -> dict[int, ColmapIntrinsics]:
    r = _Reader(path)
    cameras = {}
    for _ in range(r.count(24, "cameras")):
        camera_id, model_id, width, height = r.read("iiQQ")
        model = _MODELS_BY_ID.get(model_id)
        if model is None:
            raise ColmapError(f"{path}: camera {camera_id} has unknown model id {model_id}")
        params = r.read("d" * len(model.params))
        cameras[camera_id] = _pinhole(path, camera_id, model.name, width, height, params)
    if r.pos != len(r.buf):
        raise ColmapError(f"{path}: {len(r.buf) - r.pos} unexpected bytes after the last camera")
    return cameras


def _read_images_bin(path: Path) -> dict[int, tuple]:
    r = _Reader(path)
    images = {}
    for _ in range(r.count(64, "images")):
        image_id, *pose, camera_id = r.read("i7di")
        name = r.string()
        (num_points,) = r.read("Q")
        r.skip(24 * num_points, f"the 2D points of image {name!r}")
        images[image_id] = (np.array(pose[:4]), np.array(pose[4:]), camera_id, name)
    if r.pos != len(r.buf):
        raise ColmapError(f"{path}: {len(r.buf) - r.pos} unexpected bytes after the last image")
    return images


def read_colmap_points(sparse_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(xyz [P, 3] float64, rgb [P, 3] uint8)`` of ``points3D.bin``/``.txt`` (tracks skipped)."""
    cams_path, _ = find_model_files(sparse_dir)
    path = cams_path.with_name("points3D" + cams_path.suffix)
    if not path.is_file():
        raise ColmapError(f"{path}: no such file")
    xyz, rgb = [], []
    if path.suffix == ".bin":
        r = _Reader(path)
        for _ in range(r.count(51, "points")):
            _, x, y, z, red, green, blue, _, track_length = r.read("Q3d3BdQ")
            r.skip(8 * track_length, "a point track")
            xyz.append((x, y, z))
            rgb.append((red, green, blue))
    else:
        for lineno, line in _data_lines(path):
            if not line:
                continue
            fields = line.split()
            try:
                xyz.append(tuple(float(v) for v in fields[1:4]))
                rgb.append(tuple(int(v) for v in fields[4:7]))
            except ValueError:
                raise ColmapError(f"{path}:{lineno}: expected 'POINT3D_ID X Y Z R G B ERROR TRACK...'"
                                  f", got {line!r}") from None
            if len(xyz[-1]) != 3 or len(rgb[-1]) != 3:
                raise ColmapError(f"{path}:{lineno}: expected 'POINT3D_ID X Y Z R G B ERROR "
                                  f"TRACK...', got {line!r}")
    return (np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, dtype=np.uint8).reshape(-1, 3))


# ---- writing ----------------------------------------------------------------------------------

def write_colmap_text(sparse_dir, cameras: list[Camera], image_names: list[str], points=None) -> None:
    """Write ``cameras.txt``, ``images.txt`` and ``points3D.txt`` into ``sparse_dir``.

    Cameras become ``PINHOLE`` entries (identical intrinsics share one id); image ids follow the
    list order from 1. ``points`` is None (empty ``points3D.txt``), xyz ``[P, 3]``, or a tuple
    ``(xyz [P, 3], rgb [P, 3] 0..255)``. Each file is written atomically.
    """
    if len(cameras) != len(image_names):
        raise ValueError(f"{len(cameras)} cameras but {len(image_names)} image names")
    if len(set(image_names)) != len(image_names):
        raise ValueError("image names are not unique")
    for name in image_names:
        if not name or name != name.strip() or "\n" in name:
            raise ValueError(f"image name {name!r} cannot be written to images.txt")
    sparse_dir = Path(sparse_dir)
    sparse_dir.mkdir(parents=True, exist_ok=True)

    camera_ids: dict[tuple, int] = {}
    cam_lines = ["# Camera list with one line of data per camera:",
                 "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    img_lines = ["# Image list with two lines of data per image:",
                 "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
                 "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for image_id, (cam, name) in enumerate(zip(cameras, image_names), start=1):
        key = (cam.width, cam.height, float(cam.fx), float(cam.fy), float(cam.cx), float(cam.cy))
        if key not in camera_ids:
            camera_ids[key] = len(camera_ids) + 1
            cam_lines.append(f"{camera_ids[key]} PINHOLE {cam.width} {cam.height} "
                             + " ".join(repr(v) for v in key[2:]))
        w2c = cam.world_to_camera
        values = [*quat_from_matrix(w2c[:3, :3]), *w2c[:3, 3]]
        img_lines.append(f"{image_id} " + " ".join(repr(float(v)) for v in values)
                         + f" {camera_ids[key]} {name}")
        img_lines.append("")

    pts_lines = ["# 3D point list with one line of data per point:",
                 "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]
    if points is not None:
        xyz, rgb = points if isinstance(points, tuple) else (points, None)
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        rgb = (np.full(xyz.shape, 128, np.uint8) if rgb is None
               else np.clip(np.rint(np.asarray(rgb, dtype=np.float64)), 0, 255).astype(np.uint8))
        if rgb.shape != xyz.shape:
            raise ValueError(f"points: rgb has shape {rgb.shape}, xyz has {xyz.shape}")
        for i, (p, c) in enumerate(zip(xyz.tolist(), rgb.tolist()), start=1):
            pts_lines.append(f"{i} {p[0]!r} {p[1]!r} {p[2]!r} {c[0]} {c[1]} {c[2]} 0")

    _write_text(sparse_dir / "cameras.txt", cam_lines)
    _write_text(sparse_dir / "images.txt", img_lines)
    _write_text(sparse_dir / "points3D.txt", pts_lines)


def _write_text(path: Path, lines: list[str]) -> None:
    write_text(path, "\n".join(lines) + "\n")

"""``transforms.json`` cameras (instant-ngp, nerfstudio and the Blender-synthetic NeRF scenes).

Intrinsics come from ``fl_x fl_y cx cy w h`` or ``camera_angle_x``/``camera_angle_y``, at the top
level or overridden per frame; a missing ``w``/``h`` is read from the image file's header (the
Blender scenes give none). ``transform_matrix`` is camera-to-world in OpenGL axes (x right, y up,
z backwards); :class:`~gs_core.camera.Camera` wants OpenCV world-to-camera (x right, y down, z
forwards), so we flip the camera's y and z axes and invert. Only undistorted pinhole frames are
accepted: non-zero ``k*``/``p*`` or a fisheye/equirectangular model raise :class:`TransformsError`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from ..camera import Camera

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])  # flips a camera's y and z axes
_DISTORTION = ("k1", "k2", "k3", "k4", "k5", "k6", "p1", "p2")
_PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV")  # OPENCV with zero coefficients is pinhole
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")


class TransformsError(ValueError):
    """A transforms.json that cannot be used; the message names the file and the problem."""


@dataclass
class TransformsModel:
    """The frames of a transforms.json, in file order."""

    cameras: list[Camera]  # ``name`` = the frame's file_path without a leading ./
    image_paths: list[Path]  # resolved against the json's folder (may not exist; callers check)


def read_transforms_json(path: str | os.PathLike, images_dir: str = "images") -> TransformsModel:
    """Cameras and image files of ``path``.

    Frames whose ``file_path`` starts with ``images/`` are looked up in ``images_dir`` instead, the
    way nerfstudio finds its downscaled ``images_2``, ``images_4``... folders.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TransformsError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransformsError(f"{path}: not valid JSON ({exc})") from None
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise TransformsError(f"{path}: no 'frames' list")
    cameras, image_paths, seen = [], [], {}
    for index, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise TransformsError(f"{path}: frame {index} has no 'file_path'")
        where = f"{path}: frame {index} ({frame['file_path']})"
        name = str(PurePosixPath(frame["file_path"]))  # drops a leading ./
        if name in seen:  # one photo at two poses
            raise TransformsError(f"{where}: the same image as frame {seen[name]}; each image needs exactly one pose")
        seen[name] = index
        image_path = _image_path(path.parent, name, images_dir)
        cameras.append(_camera(where, meta, frame, name, image_path))
        image_paths.append(image_path)
    return TransformsModel(cameras, image_paths)


def _image_path(folder: Path, name: str, images_dir: str) -> Path:
    parts = PurePosixPath(name).parts
    if images_dir != "images" and parts and parts[0] == "images":
        name = str(PurePosixPath(images_dir, *parts[1:]))
    image_path = folder / name
    if not image_path.is_file():  # the Blender scenes leave out the extension
        for suffix in _IMAGE_SUFFIXES:
            candidate = folder / (name + suffix)
            if candidate.is_file():
                return candidate
    return image_path


def _camera(where: str, meta: dict, frame: dict, name: str, image_path: Path) -> Camera:
    def get(key):
        value = frame.get(key, meta.get(key))
        if value is not None and key != "camera_model" and not isinstance(value, (int, float)):
            raise TransformsError(f"{where}: '{key}' is {value!r}, expected a number")
        return value

    model = get("camera_model")
    if model is not None and str(model).upper() not in _PINHOLE_MODELS:
        raise TransformsError(f"{where}: camera_model {model!r} is not a pinhole model; only "
                              "undistorted pinhole cameras are supported (undistort the images first)")
    if frame.get("is_fisheye", meta.get("is_fisheye")):
        raise TransformsError(f"{where}: fisheye cameras are not supported (undistort the images first)")
    distorted = {k: get(k) for k in _DISTORTION if get(k)}
    if distorted:
        coeffs = ", ".join(f"{k}={v:g}" for k, v in distorted.items())
        raise TransformsError(f"{where}: non-zero distortion ({coeffs}); only undistorted pinhole "
                              "cameras are supported (undistort the images first)")

    width, height = get("w"), get("h")
    if width is None or height is None:
        width, height = _image_size(where, image_path)
    width, height = int(width), int(height)
    fx, fy = get("fl_x"), get("fl_y")
    angle_x, angle_y = get("camera_angle_x"), get("camera_angle_y")
    if fx is None and angle_x is not None:
        fx = 0.5 * width / math.tan(0.5 * angle_x)
    if fy is None and angle_y is not None:
        fy = 0.5 * height / math.tan(0.5 * angle_y)
    fx, fy = (fx if fx is not None else fy), (fy if fy is not None else fx)
    if fx is None:
        raise TransformsError(f"{where}: no focal length (fl_x/fl_y or camera_angle_x)")
    cx, cy = get("cx"), get("cy")
    cx = width / 2 if cx is None else cx
    cy = height / 2 if cy is None else cy
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise TransformsError(f"{where}: invalid intrinsics fx={fx} fy={fy} cx={cx} cy={cy}")

    c2w_gl = _pose(where, frame.get("transform_matrix"))
    w2c = np.linalg.inv(c2w_gl @ OPENGL_TO_OPENCV)
    try:
        return Camera(fx=float(fx), fy=float(fy), cx=float(cx), cy=float(cy), width=width,
                      height=height, world_to_camera=w2c, name=name)
    except ValueError as exc:
        raise TransformsError(f"{where}: {exc}") from None


def _pose(where: str, matrix) -> np.ndarray:  # [4, 4] camera-to-world, OpenGL axes
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise TransformsError(f"{where}: transform_matrix must be a finite 4x4 (or 3x4) matrix")
    R = m[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4) or np.linalg.det(R) < 0 \
            or not np.allclose(m[3], [0, 0, 0, 1]):
        raise TransformsError(f"{where}: transform_matrix is not a rigid camera-to-world transform")
    return m


def _image_size(where: str, image_path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image_path) as im:  # reads the header only
            return im.size
    except FileNotFoundError:
        raise TransformsError(f"{where}: no 'w'/'h' and image {image_path} does not exist") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise TransformsError(f"{where}: no 'w'/'h' and image {image_path} cannot be read ({exc})") from None

"""A scene folder as the pipeline reads it: posed images, optional splats, optional 2D masks.

::

    root/
      images/            the photos (or images_2, images_4... downscaled copies)
      sparse/0/          COLMAP model, text or binary   } one of these
      transforms.json    instant-ngp / nerfstudio       }
      scene.ply          optional trained splats (INRIA PLY)
      masks/<stem>.npz   optional SAM-style mask stacks (or <stem>.npy stacks, <stem>/ folders of binary PNGs)
      object_mask/<stem>.png  optional instance-id PNGs (Gaussian Grouping)

Loading reads only the camera model and each image's header (to check its size); pixels and masks
are read on demand and not cached, so memory stays bounded however many views there are. Nothing
is ever written into ``root``. Every problem raises :class:`DatasetError` naming the file.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .camera import Camera
from .errors import UserError
from .io.colmap import ColmapError, find_model_files, read_colmap
from .io.masks import MaskError, labels_to_stack, load_binary_pngs, load_label_map, load_mask_npy, load_mask_stack
from .io.ply import PlyError
from .io.transforms_json import TransformsError, read_transforms_json

MAX_FILE_DOWNSCALE = 32  # images_<k> folders with integer k up to this are recognised


class DatasetError(UserError, ValueError):
    """A dataset folder that cannot be used; the message names the file and the problem."""


@dataclass
class Dataset:
    """Posed views of one scene; ``cameras[i]`` matches ``image(i)`` and ``masks(i)`` in size."""

    root: Path
    cameras: list[Camera]  # at the loaded resolution
    names: list[str]  # image paths relative to the images folder
    image_paths: list[Path]
    file_sizes: list[tuple[int, int]]  # (width, height) of each image file
    scene_path: Path | None  # root/scene.ply when present
    masks_dir: Path | None  # root/masks when present
    object_mask_dir: Path | None  # root/object_mask when present

    @classmethod
    def load(cls, root: str | os.PathLike, *, downscale: float = 1, images_dir: str = "images",
             sparse: str | os.PathLike | None = None) -> "Dataset":
        """Read the cameras of ``root`` and check every image against its camera.

        ``downscale`` divides the resolution (2 = half size). ``sparse`` overrides where the
        cameras are: a COLMAP model folder or a transforms JSON, relative to ``root``. Images may be
        an integer downscale of their camera (COLMAP users' ``images_2`` folders); the camera is
        then scaled to the files.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: dataset folder does not exist")
        if not (isinstance(downscale, numbers.Real) and math.isfinite(downscale) and downscale > 0):
            raise DatasetError(f"{root}: downscale must be a positive number, got {downscale!r}")
        source = _camera_source(root, sparse)
        images_root = root / images_dir
        try:
            if source.suffix == ".json":
                model = read_transforms_json(source, images_dir=images_dir)
                cameras, paths = model.cameras, model.image_paths
                names = [_relative_name(p, images_root, source.parent) for p in paths]
            else:
                if not images_root.is_dir():
                    raise DatasetError(f"{images_root}: images folder does not exist")
                colmap = read_colmap(source)
                cameras, names = colmap.cameras, colmap.names
                paths = [images_root / name for name in names]
        except (ColmapError, TransformsError) as exc:
            raise DatasetError(str(exc)) from exc
        if not cameras:
            raise DatasetError(f"{source}: the camera model has no images")

        file_cameras = [_match_image(cam, path, source) for cam, path in zip(cameras, paths)]
        cameras = [replace(cam if downscale == 1 else cam.scaled(1.0 / downscale), name=name)
                   for cam, name in zip(file_cameras, names)]
        scene = root / "scene.ply"
        masks, object_mask = root / "masks", root / "object_mask"
        return cls(root=root, cameras=cameras, names=names, image_paths=paths,
                   file_sizes=[(cam.width, cam.height) for cam in file_cameras],
                   scene_path=scene if scene.is_file() else None,
                   masks_dir=masks if masks.is_dir() else None,
                   object_mask_dir=object_mask if object_mask.is_dir() else None)

    def __len__(self) -> int:
        return len(self.cameras)

    def image(self, i: int) -> np.ndarray:  # [H, W, 3] float32 in [0, 1]
        """View ``i``'s pixels at its camera's size (alpha dropped), read from disk each call."""
        from PIL import Image

        path, cam = self.image_paths[i], self.cameras[i]
        try:
            with Image.open(path) as im:
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                    grey = np.clip(np.asarray(im, dtype=np.float32) / 65535.0, 0.0, 1.0)  # [H, W]
                    rgb = np.repeat(grey[:, :, None], 3, axis=2)
                else:
                    rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read image ({exc})") from exc
        if rgb.shape[:2] != (cam.height, cam.width):
            rgb = _resize_image(rgb, cam.width, cam.height)
        return rgb

    def mask_source(self, i: int) -> Path | None:
        """Where view ``i``'s precomputed masks are: ``masks/<stem>.npz`` (SAM-style stack), else
        ``masks/<stem>.npy`` (bare stack), else the folder ``masks/<stem>/`` of binary PNGs; None."""
        if self.masks_dir is None:
            return None
        base = self.masks_dir / Path(self.names[i]).with_suffix("")
        for path in (base.parent / f"{base.name}.npz", base.parent / f"{base.name}.npy"):
            if path.is_file():
                return path
        return base if base.is_dir() else None

    def masks(self, i: int) -> np.ndarray | None:  # [M, H, W] bool
        """View ``i``'s mask stack (:meth:`mask_source`; ``<stem>``: the image name without its
        extension) at its camera's size, or None when the view has none."""
        path = self.mask_source(i)
        if path is None:
            return None
        try:
            if path.suffix == ".npz":
                stack, _ = load_mask_stack(path)
            elif path.suffix == ".npy":
                stack = load_mask_npy(path)
            else:
                stack = load_binary_pngs(path)
        except MaskError as exc:
            raise DatasetError(str(exc)) from exc
        return self._fit_to_camera(i, stack, path, "mask stack")

    def mask_stack(self, i: int) -> tuple[np.ndarray | None, Path | None]:  # [M, H, W] bool, its file
        """The one mask loader every method uses: view ``i``'s mask stack (:meth:`masks`), else its
        instance-id PNG (:meth:`label_map`) as one mask per id; with the file or folder it came from.
        ``(None, None)`` when the view has neither."""
        stack = self.masks(i)
        if stack is not None:
            return stack, self.mask_source(i)
        ids = self.label_map(i)
        if ids is None:
            return None, None
        return labels_to_stack(ids)[0], self.object_mask_dir / Path(self.names[i]).with_suffix(".png")

    def with_masks(self, masks_dir: str | os.PathLike) -> "Dataset":
        """The same views with their masks read from ``masks_dir`` (e.g. generated SAM masks in a
        work folder) instead of ``root/masks``."""
        return replace(self, masks_dir=Path(masks_dir))

    def label_map(self, i: int) -> np.ndarray | None:  # [H, W] int32, 0 = no object
        """The instance-id PNG ``object_mask/<stem>.png`` of view ``i`` at its camera's size, or None.

        Ids are kept (not turned into a stack): Gaussian Grouping's ids match across views."""
        if self.object_mask_dir is None:
            return None
        path = self.object_mask_dir / Path(self.names[i]).with_suffix(".png")
        if not path.is_file():
            return None
        try:
            labels = load_label_map(path)
        except MaskError as exc:
            raise DatasetError(str(exc)) from exc
        return self._fit_to_camera(i, labels[None], path, "instance mask")[0]

    def load_scene(self):
        """The trained splats in ``scene.ply`` (a :class:`~gs_core.scene.GaussianScene`)."""
        from .scene import GaussianScene

        if self.scene_path is None:
            raise DatasetError(f"{self.root / 'scene.ply'}: no such file")
        try:
            return GaussianScene.load(self.scene_path)
        except PlyError as exc:
            raise DatasetError(str(exc)) from exc

    def _fit_to_camera(self, i: int, stack: np.ndarray, path: Path, what: str) -> np.ndarray:
        """``stack [M, h, w]`` resized (nearest) to view ``i``'s camera; it must match the image
        file's size or the camera's."""
        cam, file_size = self.cameras[i], self.file_sizes[i]
        size = (stack.shape[2], stack.shape[1])
        if size not in (file_size, (cam.width, cam.height)):
            raise DatasetError(f"{path}: {what} is {size[0]}x{size[1]}, but image "
                               f"{self.image_paths[i]} is {file_size[0]}x{file_size[1]}")
        if size == (cam.width, cam.height):
            return stack
        return _resize_nearest(stack, cam.width, cam.height)


def _camera_source(root: Path, sparse) -> Path:
    """The COLMAP folder or transforms JSON that holds the cameras."""
    if sparse is not None:
        source = root / sparse
        if source.suffix == ".json" and not source.is_file():
            raise DatasetError(f"{source}: no such file")
        if source.suffix != ".json":
            try:
                find_model_files(source)
            except ColmapError as exc:
                raise DatasetError(str(exc)) from exc
        return source
    try:
        find_model_files(root / "sparse")
        return root / "sparse"
    except ColmapError:
        pass
    for name in ("transforms.json", "transforms_train.json"):
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{root}: no cameras: expected a COLMAP model in sparse/0 (or sparse/) "
                       "or a transforms.json")


def _relative_name(path: Path, images_root: Path, json_dir: Path) -> str:
    """A transforms frame's name: relative to the images folder when inside it."""
    for base in (images_root, json_dir):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _match_image(cam: Camera, path: Path, source: Path) -> Camera:
    """``cam`` at the size of the image file ``path``, which must be its size or an integer
    downscale of it (rounded either way)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # header only
            width, height = im.size
    except FileNotFoundError:
        raise DatasetError(f"{path}: image file does not exist (listed in {source})") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc})") from None
    if (width, height) == (cam.width, cam.height):
        return cam
    for k in range(2, MAX_FILE_DOWNSCALE + 1):
        if width in (cam.width // k, -(-cam.width // k)) and height in (cam.height // k, -(-cam.height // k)):
            sx, sy = width / cam.width, height / cam.height
            return replace(cam, fx=cam.fx * sx, fy=cam.fy * sy, cx=cam.cx * sx, cy=cam.cy * sy,
                           width=width, height=height)
    raise DatasetError(f"{path}: image is {width}x{height}, but its camera in {source} is "
                       f"{cam.width}x{cam.height} (nor an integer downscale of it)")


def _resize_image(rgb: np.ndarray, width: int, height: int) -> np.ndarray:  # [height, width, 3]
    """Area average when shrinking, bicubic when enlarging; per channel in float."""
    from PIL import Image

    shrink = width <= rgb.shape[1] and height <= rgb.shape[0]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    channels = [np.asarray(Image.fromarray(np.ascontiguousarray(rgb[:, :, c]), mode="F")
                           .resize((width, height), method)) for c in range(3)]
    return np.clip(np.stack(channels, axis=2), 0.0, 1.0).astype(np.float32)


def _resize_nearest(stack: np.ndarray, width: int, height: int) -> np.ndarray:  # [M, height, width]
    """Nearest-neighbour resize sampling at pixel centres."""
    def centres(n_out: int, n_in: int) -> np.ndarray:  # [n_out] source index of each output pixel
        return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)

    return stack[:, centres(height, stack.shape[1])[:, None], centres(width, stack.shape[2])[None, :]]

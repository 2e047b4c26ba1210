"""2D instance masks for one image, in the two forms the lifting methods read.

* SAM-style stacks ``masks/<image stem>.npz``: ``masks`` ``[M, H, W]`` bool, optional ``scores``
  ``[M]``; masks may overlap. Generated masks are cached in the same form, written atomically.
* Instance PNGs (Gaussian Grouping's ``object_mask/``): 8- or 16-bit greyscale, one id per pixel,
  0 = no object; read as an int label map or as a stack of disjoint binary masks.
* Other precomputed forms users have: ``masks/<stem>.npy`` (a bare ``[M, H, W]`` bool or 0/1 stack)
  and ``masks/<stem>/*.png`` (a folder of binary PNGs per view, one mask each, any non-zero pixel in).
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .atomic import atomic_write

class MaskError(ValueError):
    """A mask file that cannot be used; the message names the file and the problem."""


def load_mask_stack(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """``(masks [M, H, W] bool, scores [M] float32 | None)`` from a ``.npz`` stack.

    ``masks`` may also be stored as 0/1 integers; anything else raises :class:`MaskError`.
    """
    path = Path(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MaskError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise MaskError(f"{path}: not a readable .npz mask stack ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise MaskError(f"{path}: expected an .npz archive with a 'masks' array, got a bare array")
    with npz:
        if "masks" not in npz.files:
            raise MaskError(f"{path}: no 'masks' array (has {npz.files})")
        try:
            masks = npz["masks"]
            scores = npz["scores"] if "scores" in npz.files else None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise MaskError(f"{path}: corrupt .npz mask stack ({exc})") from None
    return _checked(path, masks, scores)


def save_mask_stack(path: str | os.PathLike, masks: np.ndarray, scores: np.ndarray | None = None) -> None:
    """Write a ``.npz`` stack atomically (temp file in the same folder, then ``os.replace``)."""
    path = Path(path)
    masks, scores = _checked(path, np.asarray(masks), None if scores is None else np.asarray(scores))
    arrays = {"masks": masks} if scores is None else {"masks": masks, "scores": scores}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:  # a file object, so numpy does not append ".npz"
        np.savez_compressed(fh, **arrays)


def load_mask_npy(path: str | os.PathLike) -> np.ndarray:  # -> [M, H, W] bool
    """A bare ``.npy`` stack ``[M, H, W]`` (bool or 0/1 integers); no pickles."""
    path = Path(path)
    try:
        masks = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise MaskError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as exc:
        raise MaskError(f"{path}: not a readable .npy mask stack ({exc})") from None
    if not isinstance(masks, np.ndarray):
        raise MaskError(f"{path}: expected a bare [M, H, W] array")
    return _checked(path, masks, None)[0]


def load_binary_pngs(folder: str | os.PathLike) -> np.ndarray:  # -> [M, H, W] bool
    """A folder of binary mask PNGs (one mask per file, sorted by name; any non-zero pixel is in).

    Greyscale, 1-bit, 16-bit or palette images; colour images are refused (an overlay or a photo
    dropped there by mistake would otherwise be read as a mask)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and not p.name.startswith("."))
    if not files:
        raise MaskError(f"{folder}: mask folder has no .png files")
    masks = []
    for path in files:
        try:
            with Image.open(path) as im:
                if im.mode not in ("1", "L", "LA", "P", "I;16", "I;16B", "I;16L", "I"):
                    raise MaskError(f"{path}: binary masks must be greyscale, 1-bit or palette PNGs, got mode {im.mode}")
                m = np.asarray(im.getchannel(0) if im.mode == "LA" else im)
        except (UnidentifiedImageError, OSError) as exc:
            raise MaskError(f"{path}: not a readable image ({exc})") from None
        if masks and m.shape != masks[0].shape:
            raise MaskError(f"{path}: mask is {m.shape[1]}x{m.shape[0]}, but {files[0].name} in the same folder "
                            f"is {masks[0].shape[1]}x{masks[0].shape[0]}")
        masks.append(m != 0)
    return np.stack(masks)


def _checked(path: Path, masks: np.ndarray, scores: np.ndarray | None):
    if masks.ndim != 3:
        raise MaskError(f"{path}: masks must be [M, H, W], got shape {masks.shape}")
    if masks.dtype != bool:
        if masks.dtype.kind not in "iu" or ((masks != 0) & (masks != 1)).any():
            raise MaskError(f"{path}: masks must be bool (or 0/1 integers), got {masks.dtype}")
        masks = masks.astype(bool)
    if scores is not None:
        if scores.shape != (masks.shape[0],):
            raise MaskError(f"{path}: scores must be [M] = [{masks.shape[0]}], got shape {scores.shape}")
        if scores.dtype.kind not in "fiu" or not np.isfinite(scores).all():
            raise MaskError(f"{path}: scores must be finite numbers, got {scores.dtype}")
        scores = scores.astype(np.float32)
    return masks, scores


def load_label_map(path: str | os.PathLike) -> np.ndarray:  # [H, W] int32, 0 = no object
    """An instance PNG (8/16-bit greyscale or palette index) as a label map."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I"):
                raise MaskError(f"{path}: instance masks must be 8/16-bit greyscale or palette PNGs "
                                f"(one id per pixel), got mode {mode}")
            labels = np.asarray(im)
    except FileNotFoundError:
        raise MaskError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise MaskError(f"{path}: not a readable image ({exc})") from None
    if labels.ndim != 2:
        raise MaskError(f"{path}: instance mask must be one channel, got shape {labels.shape}")
    if labels.min(initial=0) < 0:
        raise MaskError(f"{path}: instance ids must be non-negative")
    return labels.astype(np.int32)


def labels_to_stack(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(masks [M, H, W] bool, ids [M] int32)``: one mask per non-zero id, ids ascending."""
    ids = np.unique(labels)
    ids = ids[ids != 0].astype(np.int32)
    return labels[None] == ids[:, None, None], ids


def load_instance_masks(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """An instance PNG as ``(masks [M, H, W] bool, ids [M] int32)``."""
    return labels_to_stack(load_label_map(path))

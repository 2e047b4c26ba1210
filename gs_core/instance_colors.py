"""One colour per instance id, the same in every picture gs_core draws and in Blender's preview
(numpy only: the add-on carries a copy, see ``build_addon.py``)."""

from __future__ import annotations

import numpy as np


def instance_colors(ids: np.ndarray) -> np.ndarray:  # [...] int -> [..., 3] uint8 sRGB
    """A fixed colour per id (a multiplicative hash, so an id keeps its colour whatever else is
    shown); -1 (no instance) black."""
    ids = np.asarray(ids, dtype=np.int64)
    h = (ids * 2654435761 + 97) % (2**32)
    rgb = np.stack([(h >> 0) & 255, (h >> 8) & 255, (h >> 16) & 255], axis=-1)
    rgb = 60 + (rgb * 195) // 255
    return np.where(ids[..., None] >= 0, rgb, 0).astype(np.uint8)


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:  # [..., 3] uint8 sRGB -> [..., 3] float32 linear
    """The sRGB transfer function undone (Blender's colour attributes are scene-linear)."""
    c = np.asarray(rgb, dtype=np.float32) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)

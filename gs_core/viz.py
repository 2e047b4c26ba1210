"""Pictures for people: label maps in colour, mask stacks over images, captioned panels (pillow)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .instance_colors import instance_colors
from .labelmaps import masks_to_labels


def label_colors(labels: np.ndarray) -> np.ndarray:  # [H, W] int -> [H, W, 3] uint8
    """A fixed colour per id (:func:`gs_core.instance_colors.instance_colors`: the same as Blender's
    preview); -1 black."""
    return instance_colors(labels)


def to_uint8(image: np.ndarray) -> np.ndarray:  # [H, W, 3] float in [0, 1] -> uint8
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def mask_overlay(image: np.ndarray, masks: np.ndarray, opacity: float = 0.6) -> np.ndarray:
    """``masks`` [M, H, W] over ``image`` [H, W, 3] (float), smallest mask on top; -> uint8."""
    labels = masks_to_labels(masks)
    base = to_uint8(image).astype(np.float32)
    colours = label_colors(labels).astype(np.float32)
    out = np.where(labels[..., None] >= 0, (1 - opacity) * base + opacity * colours, base)
    return out.astype(np.uint8)


def panel(rows: list[list[tuple[str, np.ndarray]]], path: str | os.PathLike, scale: int = 2) -> None:
    """A grid of captioned uint8 [H, W, 3] tiles (rows of (caption, tile)), saved as PNG."""
    h = max(t.shape[0] for row in rows for _, t in row) * scale
    w = max(t.shape[1] for row in rows for _, t in row) * scale
    cap = 16
    cols = max(len(row) for row in rows)
    canvas = Image.new("RGB", (cols * w, len(rows) * (h + cap)), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    try:  # Pillow's default font at its default 10 px kerns "GT objects" into "GTobjects"
        font = ImageFont.load_default(size=12)
    except TypeError:  # Pillow < 10.1: the bitmap font, which has no size
        font = ImageFont.load_default()
    for r, row in enumerate(rows):
        for c, (caption, tile) in enumerate(row):
            im = Image.fromarray(tile).resize((tile.shape[1] * scale, tile.shape[0] * scale), Image.NEAREST)
            canvas.paste(im, (c * w, r * (h + cap) + cap))
            draw.text((c * w + 3, r * (h + cap) + 1), caption, fill=(230, 230, 230), font=font)
    canvas.save(path)

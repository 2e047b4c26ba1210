"""The ``.splat`` format (antimatter15's WebGL viewer): read and write (numpy only; vendored into the
add-on).

32 bytes per splat, no header: position float32 x3, linear scale float32 x3, colour RGBA uint8 x4
(``rgb = (0.5 + SH_C0 * f_dc) * 255``, ``a = sigmoid(opacity) * 255``), rotation uint8 x4 (w x y z of
the unit quaternion as ``q * 128 + 128``). No SH rest bands, normals or extra columns. Axes are the
PLY's own (no flip): viewers and converters copy x y z straight across.

Why our own code: the one PyPI package for it, ``ply2splat``, is a Rust converter from PLY files
(no reader, no arrays in memory); the format is a numpy structured dtype. ``ply2splat`` wrote the
fixture in ``tests/io/data`` that this reader is checked against.

What .splat drops (see :func:`lost_in_splat`): every SH rest band (view-dependent colour), colour
and opacity precision (8 bits, colours clipped to [0, 1]), rotation precision (8 bits per
component), normals, extra columns, 2DGS flatness (the normal axis is written at scale
``exp(-10)``); positions and scales stay float32.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import SceneFormatError
from .ply import PlyTable

SH_C0 = 0.28209479177387814
RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
FLAT_LOG_SCALE = -10.0


class SplatError(SceneFormatError):
    """A .splat file that cannot be read or written; the message names the file and the problem."""


def read_splat_table(path: str | os.PathLike) -> PlyTable:
    """The splats of a .splat file as INRIA PLY columns (float32, SH degree 0)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SplatError(f"{path}: no such file") from None
    if path.is_dir():
        raise SplatError(f"{path}: is a folder, not a .splat file")
    if size == 0:
        raise SplatError(f"{path}: empty file")
    if size % RECORD.itemsize:
        raise SplatError(f"{path}: {size:,} bytes is not a whole number of 32-byte splats "
                         f"(truncated or not a .splat file)")
    try:
        records = np.fromfile(path, dtype=RECORD)
    except OSError as exc:
        raise SplatError(f"{path}: {exc.strerror or exc}") from None
    if len(records) * RECORD.itemsize != size:
        raise SplatError(f"{path}: could read only {len(records) * RECORD.itemsize:,} of {size:,} bytes")
    means = records["position"]
    scales = records["scale"]
    for name, values in (("position", means), ("scale", scales)):
        bad = ~np.isfinite(values).all(axis=1)
        if bad.any():
            raise SplatError(f"{path}: {int(bad.sum())} splats have NaN or infinite {name}s (first: splat "
                             f"{int(np.argmax(bad))}); not a .splat file or corrupt")
    negative = (scales < 0).any(axis=1)
    if negative.any():
        raise SplatError(f"{path}: {int(negative.sum())} splats have negative scales (first: splat "
                         f"{int(np.argmax(negative))}); not a .splat file or corrupt")
    rgba = records["rgba"].astype(np.float32) / np.float32(255)
    dc = (rgba[:, :3] - np.float32(0.5)) / np.float32(SH_C0)
    with np.errstate(divide="ignore"):
        opacity = np.log(rgba[:, 3] / (np.float32(1) - rgba[:, 3]))  # 0 / 255 -> -inf / +inf
        log_scales = np.log(scales)  # a zero scale (flat axis) -> -inf
    quats = (records["rot"].astype(np.float32) - np.float32(128)) / np.float32(128)
    cols = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    cols.update({f"f_dc_{i}": dc[:, i] for i in range(3)})
    cols["opacity"] = opacity
    cols.update({f"scale_{i}": log_scales[:, i] for i in range(3)})
    cols.update({f"rot_{i}": quats[:, i] for i in range(4)})
    return PlyTable({k: np.ascontiguousarray(v, np.float32) for k, v in cols.items()}, ["read from .splat"])


def lost_in_splat(scene) -> list[str]:
    """What writing ``scene`` (a :class:`~gs_core.scene.GaussianScene`) to .splat loses."""
    lost = ["8-bit colour, opacity and rotation"]
    degree = {0: 0, 3: 1, 8: 2, 15: 3, 24: 4}.get(scene.sh_rest.shape[1], "?")
    if degree:
        lost.append(f"SH bands 1-{degree} (view-dependent colour)")
    return lost + lost_columns(scene)


def lost_columns(scene) -> list[str]:
    """What every 3DGS-only exchange format (.splat, SPZ) drops of ``scene`` beyond precision and SH."""
    lost = []
    if scene.log_scales.shape[1] == 2:
        lost.append("2DGS flatness (written as thin 3DGS splats)")
    if scene.normals is not None:
        lost.append("normals")
    if scene.extra:
        lost.append(f"extra columns ({', '.join(sorted(scene.extra))})")
    return lost


def encode_splat(scene, path: str | os.PathLike = "<splat>") -> np.ndarray:
    """``scene`` as .splat records [N] (the file is their bytes)."""
    path = Path(path)
    n = len(scene.means)
    if n == 0:
        raise SplatError(f"{path}: refusing to write a .splat with no splats")
    q = np.asarray(scene.quats, np.float64)
    norm = np.linalg.norm(q, axis=1)
    if not np.all(np.isfinite(norm)) or np.any(norm == 0):
        raise SplatError(f"{path}: splat {int(np.argmax(~np.isfinite(norm) | (norm == 0)))} has a zero or "
                         "non-finite rotation quaternion")
    log_scales = np.asarray(scene.log_scales, np.float64)
    if log_scales.shape[1] == 2:
        log_scales = np.concatenate([log_scales, np.full((n, 1), FLAT_LOG_SCALE)], axis=1)
    for name, values in (("means", scene.means), ("sh_dc", scene.sh_dc)):
        if not np.all(np.isfinite(values)):
            raise SplatError(f"{path}: {name} has NaN or infinite values")
    if np.isnan(log_scales).any() or np.isnan(np.asarray(scene.opacity_logits)).any():
        raise SplatError(f"{path}: scales or opacities have NaN values")
    out = np.empty(n, RECORD)
    out["position"] = scene.means
    out["scale"] = np.exp(log_scales)
    with np.errstate(over="ignore"):
        alpha = 1.0 / (1.0 + np.exp(-np.asarray(scene.opacity_logits, np.float64)))
    rgb = 0.5 + SH_C0 * np.asarray(scene.sh_dc, np.float64)
    out["rgba"] = np.clip(np.rint(np.concatenate([rgb, alpha[:, None]], axis=1) * 255), 0, 255)
    out["rot"] = np.clip(np.rint(q / norm[:, None] * 128 + 128), 0, 255)
    return out


def write_splat(path: str | os.PathLike, scene) -> None:
    """Write ``scene`` (a :class:`~gs_core.scene.GaussianScene`) as .splat, atomically, in scene order."""
    path = Path(path)
    records = encode_splat(scene, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        records.tofile(fh)

"""PlayCanvas compressed PLY (SuperSplat's ``.compressed.ply``): read (numpy + plyfile; vendored into
the add-on).

The file is a PLY with three elements (parsed by :func:`gs_core.io.ply.read_ply_elements`, the one
PLY parser): ``chunk`` holds per-256-splat float32 bounds (``min/max_x y z``, ``min/max_scale_x y
z`` as log-scales, and in newer files ``min/max_r g b``), ``vertex`` four uint32 words per splat
and the optional ``sh`` element uint8 ``f_rest_*`` (INRIA channel-major names). Decoding follows
PlayCanvas's reader (splat-transform ``readCompressedChunked``):

* ``packed_position``, ``packed_scale``: 11/10/11 bits, each a fraction of its chunk's range;
* ``packed_rotation``: 2 bits naming the largest of ``rot_0..3`` (w x y z), three 10-bit values
  ``(v / 1023 - 0.5) * sqrt(2)`` for the others, the largest from the unit norm;
* ``packed_color``: r g b a bytes (r in the high byte); rgb a fraction of the chunk's colour range
  (or of [0, 1] in files without it) giving ``0.5 + SH_C0 * f_dc``; a = sigmoid(opacity);
* SH bytes ``b``: ``(t - 0.5) * 8`` with ``t`` = 0 for 0, 1 for 255, else ``(b + 0.5) / 256``.

Axes are the PLY's own. Why our own code: ``gsply`` reads it but needs numba and a C++ extension;
with plyfile doing the parsing, decoding is a dozen numpy lines. PlayCanvas's splat-transform wrote
the fixture in ``tests/io/data`` that this reader is checked against. Writing is not offered: SPZ
is smaller and more widely read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .ply import PlyError, PlyTable, read_ply_elements

SH_C0 = 0.28209479177387814
CHUNK = 256
_HEADER_PROBE = 1 << 16
_POSITION = ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")
_SCALE = ("min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z")
_COLOR = ("min_r", "min_g", "min_b", "max_r", "max_g", "max_b")
_PACKED = ("packed_position", "packed_rotation", "packed_scale", "packed_color")


class CompressedPlyError(PlyError):
    """A compressed PLY that cannot be read; the message names the file and the problem."""


def is_compressed_ply(path: str | os.PathLike) -> bool:
    """Whether ``path``'s PLY header describes PlayCanvas's compressed layout (reads the header only)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_PROBE)
    except OSError:
        return False
    end = head.find(b"end_header")
    header = head if end < 0 else head[:end]
    return head.startswith(b"ply") and b"element chunk" in header and b"packed_position" in header


def _unorm(words: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((words >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float32) / np.float32((1 << bits) - 1)


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    return lo * (np.float32(1) - t) + hi * t


def read_compressed_ply_table(path: str | os.PathLike) -> PlyTable:
    """The splats of a PlayCanvas compressed PLY as INRIA PLY columns (float32)."""
    path = Path(path)
    try:
        elements, comments = read_ply_elements(path)
    except CompressedPlyError:
        raise
    except PlyError as exc:
        raise CompressedPlyError(str(exc)) from None
    for name in ("chunk", "vertex"):
        if name not in elements:
            raise CompressedPlyError(f"{path}: compressed PLY without a {name!r} element")
    chunk, vertex = elements["chunk"], elements["vertex"]
    n = len(vertex)
    if n == 0:
        raise CompressedPlyError(f"{path}: the file has no splats")
    missing = [c for c in _POSITION + _SCALE if c not in chunk.dtype.names] + \
              [c for c in _PACKED if c not in vertex.dtype.names]
    if missing:
        raise CompressedPlyError(f"{path}: compressed PLY missing properties: {', '.join(missing)}")
    if len(chunk) != -(-n // CHUNK):
        raise CompressedPlyError(f"{path}: {len(chunk)} chunks for {n:,} splats (expected {-(-n // CHUNK)})")
    bounds = {name: chunk[name].astype(np.float32) for name in chunk.dtype.names}
    for name in _POSITION + _SCALE + tuple(c for c in _COLOR if c in bounds):
        if not np.all(np.isfinite(bounds[name])):
            raise CompressedPlyError(f"{path}: chunk bound {name!r} has NaN or infinite values")
    words = {name: vertex[name] for name in _PACKED}
    for name, col in words.items():
        if col.dtype.kind not in "ui":
            raise CompressedPlyError(f"{path}: {name} has type {col.dtype}, expected uint32")
        words[name] = col.astype(np.uint32)
    ci = np.arange(n) // CHUNK  # [N] chunk of each splat

    def ranged(prefix_lo, prefix_hi, t):  # [N] values of one axis from its chunk bounds
        return _lerp(bounds[prefix_lo][ci], bounds[prefix_hi][ci], t)

    cols: dict[str, np.ndarray] = {}
    p = words["packed_position"]
    for axis, (shift, bits) in zip("xyz", ((21, 11), (11, 10), (0, 11))):
        cols[axis] = ranged(f"min_{axis}", f"max_{axis}", _unorm(p, shift, bits))
    c = words["packed_color"]
    rgb = [_unorm(c, shift, 8) for shift in (24, 16, 8)]
    if all(name in bounds for name in _COLOR):
        rgb = [ranged(f"min_{ch}", f"max_{ch}", t) for ch, t in zip("rgb", rgb)]
    for i, value in enumerate(rgb):
        cols[f"f_dc_{i}"] = (value - np.float32(0.5)) / np.float32(SH_C0)
    sh = elements.get("sh")
    if sh is not None:
        if len(sh) != n:
            raise CompressedPlyError(f"{path}: 'sh' element has {len(sh):,} rows for {n:,} splats")
        rest = [name for name in sh.dtype.names if name.startswith("f_rest_")]
        if len(rest) not in (9, 24, 45) or rest != [f"f_rest_{i}" for i in range(len(rest))]:
            raise CompressedPlyError(f"{path}: 'sh' element has {len(rest)} f_rest columns (expected 9, 24 or 45)")
        wrong = [name for name in rest if sh[name].dtype != np.uint8]
        if wrong:
            raise CompressedPlyError(f"{path}: SH column {wrong[0]!r} has type {sh[wrong[0]].dtype}, expected uchar")
        b = np.arange(256, dtype=np.float32)
        t = np.where(b == 0, 0, np.where(b == 255, 1, (b + np.float32(0.5)) / np.float32(256)))
        table = ((t - np.float32(0.5)) * np.float32(8)).astype(np.float32)  # byte -> coefficient
        for name in rest:
            cols[name] = table[sh[name]]
    with np.errstate(divide="ignore"):
        a = _unorm(c, 0, 8)
        cols["opacity"] = np.log(a / (np.float32(1) - a))  # 0 / 255 -> -inf / +inf
    s = words["packed_scale"]
    for i, (axis, (shift, bits)) in enumerate(zip("xyz", ((21, 11), (11, 10), (0, 11)))):
        cols[f"scale_{i}"] = ranged(f"min_scale_{axis}", f"max_scale_{axis}", _unorm(s, shift, bits))
    r = words["packed_rotation"]
    norm = np.float32(np.sqrt(2.0))
    abc = [(_unorm(r, shift, 10) - np.float32(0.5)) * norm for shift in (20, 10, 0)]
    largest = (r >> np.uint32(30)).astype(np.int64)
    m = np.sqrt(np.maximum(np.float32(0), np.float32(1) - (abc[0] ** 2 + abc[1] ** 2 + abc[2] ** 2)))
    quats = np.empty((n, 4), np.float32)
    for slot in range(4):  # the three stored values fill the slots other than the largest, in order
        others = [i for i in range(4) if i != slot]
        for k, i in enumerate(others):
            rows = largest == slot
            quats[rows, i] = abc[k][rows]
        quats[largest == slot, slot] = m[largest == slot]
    cols.update({f"rot_{i}": quats[:, i] for i in range(4)})
    return PlyTable({k: np.ascontiguousarray(v, np.float32) for k, v in cols.items()},
                    comments + ["read from PlayCanvas compressed PLY"])

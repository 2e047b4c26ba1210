"""Stable per-splat source ids: which row of which file each splat came from (numpy only; vendored
into the Blender add-on, which stores them per splat, and usable by the backend).

A backend selection indexes the rows of one PLY file (a work folder's ``scene.ply``). In Blender the
splats of that file get separated, joined with splats of other files, partly deleted, so an object's
point order says nothing about rows. Each splat therefore carries two integers, kept by Blender's
separate / join / delete like any point attribute:

* the **file id**: a fingerprint of the file's bytes (CRC-32, 31 bits so it fits an int32 attribute,
  never 0). Content, not path: a work folder moved to another disk keeps its ids, and a file
  rewritten with other rows (prepare run again) gets a new id instead of silently mapping to the
  wrong splats. Two files share an id only if their bytes are equal, or with probability 2^-31 per
  pair of different files.
* the **row**: the splat's row in that file.

``UNKNOWN`` (0) marks splats of no known file (e.g. made by another importer, or filled in by
Blender when joining an object that has no ids); they never match a row.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np

UNKNOWN = 0
_CHUNK = 4 << 20
_cache: dict[tuple, int] = {}  # (real path, size, mtime_ns, inode) -> id


def file_id(path: str | os.PathLike) -> int:
    """The id of the file at ``path``: CRC-32 of its bytes in 31 bits, never ``UNKNOWN``.

    CRC-32 is fast enough for a million splats at import (docs/benchmarks.md, "Choices made by
    measurement"); the answer is cached per (path, size, modification time, inode) for the life of
    the process.
    """
    path = Path(path)
    stat = path.stat()
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _cache:
        crc, buffer = 0, bytearray(_CHUNK)  # one reused cache-sized buffer: no per-chunk allocation
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as fh:
            while size := fh.readinto(buffer):
                crc = zlib.crc32(view[:size], crc)
        _cache[key] = (crc & 0x7FFFFFFF) or 1
    return _cache[key]


def rows_lookup(rows: np.ndarray) -> np.ndarray:
    """Rows as a bool table [max row + 1] (``rows``: bool mask [M] or integer indices [K] >= 0)."""
    rows = np.asarray(rows)
    if rows.dtype == np.bool_:
        return rows.reshape(-1)
    if rows.size and not np.issubdtype(rows.dtype, np.integer):
        raise ValueError(f"rows must be a bool mask or integer indices, got dtype {rows.dtype}")
    rows = rows.reshape(-1).astype(np.int64)
    if rows.size and rows.min() < 0:
        raise ValueError(f"rows must be >= 0, got {rows.min()}")
    lookup = np.zeros(int(rows.max()) + 1 if rows.size else 0, bool)
    lookup[rows] = True
    return lookup


def rows_mask(file_ids: np.ndarray,  # [N] int, each splat's file id
              splat_rows: np.ndarray,  # [N] int, each splat's row in its file
              source: int,
              rows: np.ndarray,  # [M] bool or [K] int: rows of file ``source``
              ) -> np.ndarray:  # [N] bool
    """Which splats hold one of ``rows`` of file ``source`` (none for ``UNKNOWN``)."""
    file_ids, splat_rows = np.asarray(file_ids).reshape(-1), np.asarray(splat_rows).reshape(-1)
    if file_ids.shape != splat_rows.shape:
        raise ValueError(f"file ids {file_ids.shape} and rows {splat_rows.shape} differ in length")
    lookup = rows_lookup(rows)
    mask = (file_ids == source) & (source != UNKNOWN) & (splat_rows >= 0) & (splat_rows < len(lookup))
    mask[mask] = lookup[splat_rows[mask]]
    return mask


def rows_of(file_ids: np.ndarray,  # [N] int
            splat_rows: np.ndarray,  # [N] int
            source: int,
            mask: np.ndarray | None = None,  # [N] bool: only these splats
            ) -> np.ndarray:  # [K] int64, sorted, unique
    """The rows of file ``source`` that the splats (``mask`` of them) hold: the inverse of
    :func:`rows_mask`, e.g. to send a selection made in Blender to the backend."""
    file_ids, splat_rows = np.asarray(file_ids).reshape(-1), np.asarray(splat_rows).reshape(-1)
    keep = (file_ids == source) & (source != UNKNOWN)
    if mask is not None:
        keep &= np.asarray(mask, bool).reshape(-1)
    return np.unique(splat_rows[keep].astype(np.int64))

"""Selecting splats by their rows in a source file, and back: how a backend selection (rows of the
prepared ``scene.ply``) reaches the splats wherever separate, join and delete have put them.

Each splat carries its source id, ``gs:source`` (the file's content id) and ``gs:index`` (its row in
that file), set at import and carried along by Blender's point-cloud edits; the mapping itself is
Blender-free (:mod:`gs_core.splat_ids`). Splats without ids (from another importer, or joined in
from such an object, where Blender fills 0) never match. Hidden splats are never selected, as in
:func:`.edit_ops.selected_splats`.

The selection is Edit Mode's ``.selection`` attribute, written directly (in Object or Edit Mode), so
Separate / Delete / Hide act on it next.
"""

from __future__ import annotations

import os

import numpy as np

from . import splat_attributes as sa
from . import splat_object
from .gs_core_modules import splat_ids

SELECTION = ".selection"  # Blender's point-cloud Edit Mode selection
MODES = ("SET", "ADD", "REMOVE")


def resolve_source(source: int | str | os.PathLike) -> int:
    """A file id: ``source`` itself, or the id of the file at that path."""
    if isinstance(source, (int, np.integer)):
        return int(source)
    return splat_ids.file_id(source)


def source_ids(obj) -> list[int]:
    """The file ids the splats of ``obj`` come from (sorted; ``UNKNOWN`` left out)."""
    ids = splat_object.read_attributes(obj.data, [sa.SOURCE]).get(sa.SOURCE)
    return [] if ids is None else [int(i) for i in np.unique(ids) if i != splat_ids.UNKNOWN]


def rows_mask(obj, rows: np.ndarray, source: int | str | os.PathLike) -> np.ndarray:  # [N] bool
    """The splats of ``obj`` that hold ``rows`` (bool [M] or indices [K]) of file ``source``."""
    ids = splat_object.read_attributes(obj.data, [sa.SOURCE, sa.INDEX])
    if sa.SOURCE not in ids or sa.INDEX not in ids:
        return np.zeros(len(obj.data.points), bool)
    return splat_ids.rows_mask(ids[sa.SOURCE], ids[sa.INDEX], resolve_source(source), rows)


def select_rows(objects, rows: np.ndarray, source: int | str | os.PathLike, mode: str = "SET") -> int:
    """Select the splats of ``objects`` holding ``rows`` of file ``source``; returns how many splats of
    ``objects`` are selected afterwards.

    rows: bool [M] or integer indices [K] over the rows of the file (e.g. a backend's
    ``selection.npy`` over ``WORK/scene.ply``). source: that file's id (:func:`gs_core.splat_ids.file_id`,
    or :func:`source_ids` of the objects prepared) or its path. mode: ``SET`` replaces each object's
    selection, ``ADD`` extends it (shift-click), ``REMOVE`` subtracts (ctrl-click). All masks are
    computed before anything is written, so an error leaves every selection as it was.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    source = resolve_source(source)
    lookup = splat_ids.rows_lookup(rows)  # validated once, reused per object
    masks = []
    for obj in objects:
        hit = rows_mask(obj, lookup, source)
        current = splat_object.read_attributes(obj.data, [SELECTION, sa.HIDDEN])
        selected = current.get(SELECTION, np.zeros_like(hit))
        mask = hit if mode == "SET" else (selected | hit) if mode == "ADD" else (selected & ~hit)
        if sa.HIDDEN in current:
            mask &= ~current[sa.HIDDEN]
        masks.append(mask)
    for obj, mask in zip(objects, masks):
        splat_object.write_attributes(obj.data, {SELECTION: sa.Attribute("BOOLEAN", mask)})
        obj.data.update_tag()
    return int(sum(int(m.sum()) for m in masks))


def selected_rows(objects, source: int | str | os.PathLike) -> np.ndarray:  # [K] int64
    """The rows of file ``source`` held by the selected, visible splats of ``objects`` (sorted, unique):
    the inverse of :func:`select_rows`, e.g. splats picked in Edit Mode sent to the backend."""
    source = resolve_source(source)
    rows = []
    for obj in objects:
        values = splat_object.read_attributes(obj.data, [sa.SOURCE, sa.INDEX, SELECTION, sa.HIDDEN])
        if sa.SOURCE not in values or sa.INDEX not in values or SELECTION not in values:
            continue
        mask = values[SELECTION] & ~values[sa.HIDDEN] if sa.HIDDEN in values else values[SELECTION]
        rows.append(splat_ids.rows_of(values[sa.SOURCE], values[sa.INDEX], source, mask))
    return np.unique(np.concatenate(rows)) if rows else np.zeros(0, np.int64)

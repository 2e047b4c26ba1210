"""PLY columns <-> point-cloud attributes, without Blender (tests and gs_core import this directly).

Names follow Blender 5.3's native splat import where 5.0's attribute types allow, so objects made
here render natively on 5.3+:

* ``position`` FLOAT_VECTOR: x y z
* ``radiance:base`` FLOAT_COLOR: f_dc_0..2 as stored, sigmoid(opacity) (5.3 uses a float4; 5.0 has
  no float4 type and FLOAT_COLOR is four float32 that 5.3 converts on lookup)
* ``scale`` FLOAT_VECTOR: exp(scale_*) (2DGS: the flat third axis is 0)
* ``rotation`` QUATERNION: rot_0..3 normalised (wxyz)
* ``radiance:sh_k`` FLOAT_VECTOR: rest coefficient k of (r, g, b), k = 0 .. 3(K)-1 in degree order

Lossless storage. exp/log, sigmoid/logit and normalisation do not round-trip float32 bits, and a
column may not be float32 at all. So a column also gets a raw attribute ``ply:<column>`` exactly when
its native attribute cannot give its bits back: unknown columns always (nx ny nz included); opacity,
scales and rotations of a typical trained file; nothing for x y z, f_dc, f_rest in float32. Raw
attributes hold the bits exactly: float32 as FLOAT, 8..32-bit integers as INT, float64 as the two
32-bit halves in INT32_2D, uint32 by bit pattern in INT. The column order, dtypes and comments ride
in a small JSON schema (an object custom property, so separate and join keep it).

Native attributes stay authoritative for edits: on export a column takes its raw value only where
the native value still equals the activation of the raw one (same functions, same bits), else it is
derived from the native value. Recolouring, rescaling in Blender, joining with an object that has no
raw attributes (e.g. a 5.3-native import) all export what Blender shows; untouched splats export
their original bits.

Add-on bookkeeping is never written to PLY: ``gs:source`` and ``gs:index``, the stable per-splat
source id (the file's content id and the splat's row in it, see :mod:`gs_core.splat_ids`; Blender's
separate, join and delete carry them along, so backend selections over a file's rows map back to
the right splats), ``gs:color`` viewport colour from the DC term, ``gs:hidden``, ``radius``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from .gs_core_modules import ply, sh, splat_ids, splat_transform

POSITION = "position"
BASE = "radiance:base"
SCALE = "scale"
ROTATION = "rotation"
SH_PREFIX = "radiance:sh_"
RAW_PREFIX = "ply:"
INDEX = "gs:index"
SOURCE = "gs:source"
COLOR = "gs:color"
HIDDEN = "gs:hidden"
RADIUS = "radius"
SCHEMA_PROPERTY = "gs_ply_schema"

# Blender attribute data type -> (components, foreach key, numpy dtype of the flat buffer)
LAYOUT = {
    "FLOAT": (1, "value", np.float32),
    "INT": (1, "value", np.int32),
    "INT8": (1, "value", np.int8),
    "BOOLEAN": (1, "value", np.bool_),
    "FLOAT2": (2, "vector", np.float32),
    "INT32_2D": (2, "value", np.int32),
    "FLOAT_VECTOR": (3, "vector", np.float32),
    "FLOAT_COLOR": (4, "color", np.float32),
    "QUATERNION": (4, "value", np.float32),
}


class Attribute(NamedTuple):
    data_type: str  # a key of LAYOUT
    values: np.ndarray  # [N] or [N, components], LAYOUT dtype


@dataclass
class SplatData:
    """What one splat object holds: attributes by name, plus the PLY schema."""

    attributes: dict[str, Attribute]
    schema: dict = field(default_factory=dict)  # see make_schema

    def __len__(self) -> int:
        return len(self.attributes[POSITION].values)


def sh_attribute(k: int) -> str:
    return f"{SH_PREFIX}{k}"


def make_schema(columns: dict[str, np.dtype], comments=(), sources=()) -> dict:
    """Column order and dtypes, PLY comments, and the files the splats came from."""
    return {"columns": [[name, np.dtype(dt).str] for name, dt in columns.items()],
            "comments": list(comments), "sources": list(sources)}


def schema_to_json(schema: dict) -> str:
    return json.dumps(schema, separators=(",", ":"))


def schema_from_json(text: str | None) -> dict:
    return json.loads(text) if text else {}


def merge_schemas(schemas) -> dict:
    """One schema for joined objects: the union of columns (first seen first), all sources."""
    columns: dict[str, str] = {}
    comments, sources = None, []
    for schema in schemas:
        for name, dtype in schema.get("columns", []):
            columns.setdefault(name, dtype)
        if comments is None and schema.get("columns"):
            comments = schema.get("comments", [])
        sources += [s for s in schema.get("sources", []) if s not in sources]
    return make_schema(columns, comments or [], sources)


# ---- activations: one definition, used for import, for the unedited test and for export ---------

def activate_opacity(logit: np.ndarray) -> np.ndarray:  # [N] -> float32
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-np.asarray(logit, np.float64)))).astype(np.float32)


def deactivate_opacity(alpha: np.ndarray) -> np.ndarray:  # [N] -> float64 logit
    a = np.asarray(alpha, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(a) - np.log1p(-a)


def activate_scale(log_scale: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(np.asarray(log_scale, np.float64)).astype(np.float32)


def deactivate_scale(scale: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.asarray(scale, np.float64))


def normalize_quats(quats: np.ndarray) -> np.ndarray:  # [N, 4] -> [N, 4] float32, zero -> identity
    q = np.asarray(quats, np.float64)
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(norm > 0, q / norm, [1.0, 0.0, 0.0, 0.0])
    return unit.astype(np.float32)


def _identity(values):
    return np.asarray(values, np.float64)


class _Native(NamedTuple):
    """How one native attribute is computed from PLY columns and back."""

    name: str
    data_type: str
    columns: list  # column name per component (None: component not from the file)
    activate: Callable  # raw [N, C] float64 -> native [N, C] float32
    deactivate: Callable  # native [N, C] -> raw [N, C] float64
    joint: bool = False  # components edited together (a quaternion)


def _elementwise(fn_per_column):
    """Apply per-column functions to [N, C] arrays."""
    def apply(values):
        return np.stack([fn(values[:, i]) for i, fn in enumerate(fn_per_column)], axis=1)
    return apply


def _as_f32(values):
    return np.asarray(values).astype(np.float32)


def _natives(num_rest: int, num_scales: int) -> list[_Native]:
    """The native attributes of a file with ``num_rest`` rest coefficients per channel."""
    natives = [
        _Native(POSITION, "FLOAT_VECTOR", ["x", "y", "z"], _as_f32, _identity),
        _Native(BASE, "FLOAT_COLOR", ["f_dc_0", "f_dc_1", "f_dc_2", "opacity"],
                _elementwise([_as_f32] * 3 + [activate_opacity]),
                _elementwise([_identity] * 3 + [deactivate_opacity])),
        _Native(SCALE, "FLOAT_VECTOR", [f"scale_{i}" for i in range(num_scales)] + [None] * (3 - num_scales),
                _elementwise([activate_scale] * 3), _elementwise([deactivate_scale] * 3)),
        _Native(ROTATION, "QUATERNION", ["rot_0", "rot_1", "rot_2", "rot_3"], normalize_quats, _identity,
                joint=True),
    ]
    for k in range(num_rest):
        natives.append(_Native(sh_attribute(k), "FLOAT_VECTOR",
                               [f"f_rest_{k + c * num_rest}" for c in range(3)], _as_f32, _identity))
    return natives


# ---- raw columns ----------------------------------------------------------------------------------

def encode_raw(column: np.ndarray) -> Attribute:
    """A PLY column as an attribute that keeps its bits."""
    kind, size = column.dtype.kind, column.dtype.itemsize
    if kind == "f" and size == 4:
        return Attribute("FLOAT", column.astype(np.float32))
    if kind == "f" and size == 8:
        return Attribute("INT32_2D", np.ascontiguousarray(column.astype(np.float64)).view(np.int32).reshape(-1, 2))
    if (kind in "iu" and size < 4) or (kind == "i" and size == 4):
        return Attribute("INT", column.astype(np.int32))
    if kind == "u" and size == 4:
        return Attribute("INT", column.astype(np.uint32).view(np.int32))
    raise ValueError(f"PLY column type {column.dtype} has no lossless attribute type")


def decode_raw(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The PLY column (``dtype``) back from a raw attribute's values."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize == 8:
        return np.ascontiguousarray(values, dtype=np.int32).view(np.float64).reshape(-1)
    if dtype.kind == "u" and dtype.itemsize == 4:
        return np.asarray(values, np.int32).view(np.uint32)
    return np.asarray(values).astype(dtype)


def _default_raw_dtype(values: np.ndarray) -> np.dtype:
    """A raw attribute's column dtype when no schema says (e.g. attributes added by hand)."""
    if values.ndim == 2:  # INT32_2D: float64 halves
        return np.dtype(np.float64)
    return np.dtype(np.uint8) if values.dtype == np.bool_ else values.dtype


def _bits(values: np.ndarray) -> np.ndarray:
    """Compare float32 arrays by bit pattern (NaN payloads and -0.0 included)."""
    return np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)


# ---- validation ---------------------------------------------------------------------------------

class Layout(NamedTuple):
    num_rest: int  # rest coefficients per channel (0, 3, 8, 15, ...)
    num_scales: int  # 3 (3DGS) or 2 (2DGS)


def splat_layout(table: ply.PlyTable, source: str) -> Layout:
    """Check ``table`` is an INRIA-style splat table; raise ply.PlyError naming ``source`` if not."""
    names = table.names
    num_scales = ply.count_indexed(names, "scale_")
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [n for n in required if n not in table.columns]
    if num_scales not in (2, 3):
        missing.append("scale_0..scale_2 (3DGS) or scale_0..scale_1 (2DGS)")
    if missing:
        raise ply.PlyError(f"{source}: not a Gaussian-splat PLY, missing columns: {', '.join(missing)}")
    num_rest_total = ply.count_indexed(names, "f_rest_")
    if num_rest_total % 3:
        raise ply.PlyError(f"{source}: {num_rest_total} f_rest_* columns is not a multiple of 3")
    try:
        ply.sh_degree_for(num_rest_total // 3)
    except ValueError as exc:
        raise ply.PlyError(f"{source}: {exc}") from None
    known = required + [f"scale_{i}" for i in range(num_scales)] + [f"f_rest_{i}" for i in range(num_rest_total)]
    for name in known:
        if table.columns[name].dtype.kind != "f":
            raise ply.PlyError(f"{source}: column {name!r} has type {table.columns[name].dtype}, "
                               "expected float")
    for name, column in table.columns.items():
        try:
            encode_raw(column)
        except ValueError as exc:
            raise ply.PlyError(f"{source}: column {name!r}: {exc}") from None
    return Layout(num_rest_total // 3, num_scales)


# ---- PLY table -> attributes ------------------------------------------------------------------------

def table_to_splat_data(table: ply.PlyTable, source: str, source_id: int = splat_ids.UNKNOWN) -> SplatData:
    """Attributes for ``table`` (see the module docstring); ``source_id`` is the file's
    :func:`gs_core.splat_ids.file_id`. Raises ply.PlyError for a non-splat table."""
    layout = splat_layout(table, source)
    n = len(table)
    cols = table.columns
    attributes: dict[str, Attribute] = {}
    exact: set[str] = set()  # columns their native attribute gives back bit for bit
    for native in _natives(*layout):
        raw = np.stack([cols[c] if c else np.full(n, -np.inf) for c in native.columns], axis=1)
        values = np.ascontiguousarray(native.activate(raw), dtype=np.float32)  # [N, C]
        attributes[native.name] = Attribute(native.data_type, values)
        back = native.deactivate(values)
        for i, name in enumerate(native.columns):
            if name and np.array_equal(back[:, i].astype(cols[name].dtype).view(_uint(cols[name])),
                                       cols[name].view(_uint(cols[name]))):
                exact.add(name)
    for name, column in cols.items():
        if name not in exact:
            attributes[RAW_PREFIX + name] = encode_raw(column)
    attributes[SOURCE] = Attribute("INT", np.full(n, source_id, dtype=np.int32))
    attributes[INDEX] = Attribute("INT", np.arange(n, dtype=np.int32))
    attributes.update(display_attributes(attributes[BASE].values, cols, layout.num_scales))
    schema = make_schema({k: v.dtype for k, v in cols.items()}, table.comments, [source])
    return SplatData(attributes, schema)


def _uint(column: np.ndarray):
    return np.dtype(f"u{column.dtype.itemsize}")


def display_attributes(base: np.ndarray, cols: dict, num_scales: int) -> dict[str, Attribute]:
    """Viewport colour (linear, from the DC term; alpha = opacity) and point radius (geometric mean
    of the 1-sigma extents). Display only: never exported."""
    srgb = np.clip(sh.SH_C0 * base[:, :3].astype(np.float64) + 0.5, 0.0, 1.0)
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    color = np.concatenate([linear, base[:, 3:4]], axis=1).astype(np.float32)
    log_scales = np.stack([cols[f"scale_{i}"].astype(np.float64) for i in range(num_scales)], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        radius = np.nan_to_num(np.exp(log_scales.mean(axis=1)), nan=0.0, posinf=0.0)
    return {COLOR: Attribute("FLOAT_COLOR", color), RADIUS: Attribute("FLOAT", radius.astype(np.float32))}


# ---- attributes -> PLY table ------------------------------------------------------------------------

def count_sh_attributes(names) -> int:
    """How many ``radiance:sh_k`` attributes make whole SH bands (0, 3, 8, 15, 24)."""
    available = ply.count_indexed(names, SH_PREFIX)
    degree = 0
    while (degree + 2) ** 2 - 1 <= available:
        degree += 1
    return (degree + 1) ** 2 - 1


def splat_data_to_table(attributes: dict[str, np.ndarray], schema: dict, label: str) -> ply.PlyTable:
    """The PLY table of one object's attributes (name -> values [N] or [N, C]); see the module
    docstring for how raw and native attributes combine. ``label`` names the object in errors."""
    schema_dtypes = {name: np.dtype(dt) for name, dt in schema.get("columns", [])}
    num_scales = 2 if ("scale_0" in schema_dtypes and "scale_2" not in schema_dtypes) else 3
    num_rest = count_sh_attributes(attributes)
    missing = [a for a in (POSITION, BASE, SCALE, ROTATION) if a not in attributes]
    if missing:
        raise ValueError(f"{label}: not a splat object, missing attributes {', '.join(missing)}")
    derived: dict[str, np.ndarray] = {}
    for native in _natives(num_rest, num_scales):
        derived.update(_columns_of(native, attributes, schema_dtypes))
    for name, values in attributes.items():
        if name.startswith(RAW_PREFIX) and name[len(RAW_PREFIX):] not in derived:
            column = name[len(RAW_PREFIX):]
            derived[column] = decode_raw(values, schema_dtypes.get(column, _default_raw_dtype(values)))
    inria_order = list(_inria_order(num_rest, num_scales))
    order = [c for c in schema_dtypes if c in derived]
    order += [c for c in inria_order if c in derived and c not in order]
    order += [c for c in derived if c not in order]
    return ply.PlyTable({c: np.ascontiguousarray(derived[c]) for c in order}, list(schema.get("comments", [])))


def _inria_order(num_rest: int, num_scales: int):
    yield from ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2")
    yield from (f"f_rest_{i}" for i in range(3 * num_rest))
    yield "opacity"
    yield from (f"scale_{i}" for i in range(num_scales))
    yield from ("rot_0", "rot_1", "rot_2", "rot_3")


def _columns_of(native: _Native, attributes: dict, schema_dtypes: dict) -> dict[str, np.ndarray]:
    """The PLY columns of one native attribute, raw bits where the splat is unedited."""
    values = np.asarray(attributes[native.name], dtype=np.float32).reshape(len(attributes[POSITION]), -1)
    from_native = native.deactivate(values)  # [N, C] float64
    raw_full = from_native.copy()
    has_raw = np.zeros(values.shape[1], bool)
    for i, name in enumerate(native.columns):
        if name and RAW_PREFIX + name in attributes:
            dtype = schema_dtypes.get(name, np.dtype(np.float32))
            raw_full[:, i] = decode_raw(attributes[RAW_PREFIX + name], dtype)
            has_raw[i] = True
    if has_raw.any():
        unedited = _bits(native.activate(raw_full)) == _bits(values)  # [N, C]
        if native.joint:
            unedited[:] = unedited.all(axis=1, keepdims=True)
    out = {}
    for i, name in enumerate(native.columns):
        if not name:
            continue
        dtype = schema_dtypes.get(name, np.dtype(np.float32))
        column = from_native[:, i].astype(dtype)
        if has_raw[i]:
            raw = decode_raw(attributes[RAW_PREFIX + name], dtype)
            column = np.where(unedited[:, i], raw, column)
        out[name] = column
    return out


# ---- transforms and merging ---------------------------------------------------------------------------

def transform_table(table: ply.PlyTable, matrix: np.ndarray) -> ply.PlyTable:
    """``table`` with a 4x4 world transform baked in (positions, rotations, log-scales, SH, normals).

    The identity returns ``table`` itself; raises splat_transform.SplatTransformError when the
    transform cannot be baked exactly.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if np.array_equal(matrix, np.eye(4)):
        return table
    cols = table.columns
    num_scales = ply.count_indexed(table.names, "scale_")
    num_rest = ply.count_indexed(table.names, "f_rest_") // 3
    rest = np.stack([cols[f"f_rest_{i}"] for i in range(3 * num_rest)], axis=1) if num_rest else \
        np.zeros((len(table), 0))
    splats = splat_transform.Splats(
        means=np.stack([cols[c] for c in "xyz"], axis=1),
        quats=np.stack([cols[f"rot_{i}"] for i in range(4)], axis=1),
        log_scales=np.stack([cols[f"scale_{i}"] for i in range(num_scales)], axis=1),
        sh_rest=rest.reshape(len(table), 3, num_rest).transpose(0, 2, 1),  # [N, K, 3]
    )
    moved = splat_transform.transform_splats(matrix, splats)
    new = dict(cols)

    def put(names, values):  # values [N, len(names)]
        for i, name in enumerate(names):
            new[name] = np.asarray(values[:, i]).astype(cols[name].dtype)

    put(["x", "y", "z"], moved.means)
    put([f"rot_{i}" for i in range(4)], moved.quats)
    put([f"scale_{i}" for i in range(num_scales)], moved.log_scales)
    if num_rest:
        put([f"f_rest_{i}" for i in range(3 * num_rest)], moved.sh_rest.transpose(0, 2, 1).reshape(len(table), -1))
    if all(n in cols for n in ("nx", "ny", "nz")):
        normals = np.stack([cols[n] for n in ("nx", "ny", "nz")], axis=1)
        put(["nx", "ny", "nz"], splat_transform.transform_normals(matrix, normals))
    return ply.PlyTable(new, list(table.comments))


def concatenate_tables(tables: list) -> ply.PlyTable:
    """Rows of all ``tables`` in order; columns are the union (first seen first), each in the widest
    dtype among the tables; a table without a column contributes zeros (e.g. missing higher SH bands)."""
    if len(tables) == 1:
        return tables[0]
    order: dict[str, np.dtype] = {}
    for table in tables:
        for name, column in table.columns.items():
            order[name] = np.result_type(order[name], column.dtype) if name in order else column.dtype
    columns = {}
    for name, dtype in order.items():
        columns[name] = np.concatenate([t.columns[name].astype(dtype, copy=False) if name in t.columns
                                        else np.zeros(len(t), dtype) for t in tables])
    return ply.PlyTable(columns, list(tables[0].comments) if tables else [])

"""Lossless PLY tables for Gaussian-splat scenes (numpy + plyfile only; vendored into the add-on).

A splat PLY is one ``vertex`` element whose properties are the per-splat columns
(``x y z nx ny nz f_dc_* f_rest_* opacity scale_* rot_*`` for INRIA 3DGS/2DGS, plus whatever a
trainer adds). :class:`PlyTable` keeps every column in file order with its file dtype (native byte
order), so reading and writing back is bit-exact, unknown columns included. Binary little/big
endian and ASCII are read; binary little endian is written, atomically.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import SceneFormatError

try:  # plyfile is a small pure-python package; the add-on ships it as a wheel
    import plyfile
except ImportError as exc:  # pragma: no cover - exercised only in a broken install
    raise ImportError("gs_core.io.ply needs the 'plyfile' package (pip install plyfile)") from exc


class PlyError(SceneFormatError):
    """A PLY file that cannot be used; the message names the file and the problem."""


@dataclass
class PlyTable:
    """The ``vertex`` element of a PLY file as ordered 1-D columns."""

    columns: dict[str, np.ndarray]  # name -> [N], native byte order, file dtype
    comments: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return 0 if not self.columns else len(next(iter(self.columns.values())))

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def select(self, index) -> "PlyTable":
        """Rows ``index`` (bool mask or integer indices) of every column."""
        return PlyTable({k: v[index] for k, v in self.columns.items()}, list(self.comments))

    def to_structured(self) -> np.ndarray:
        """One little-endian structured array, the layout written to disk."""
        dtype = [(name, col.dtype.newbyteorder("<") if col.dtype.itemsize > 1 else col.dtype)
                 for name, col in self.columns.items()]
        if len({d for _, d in dtype}) == 1:  # one dtype (the usual all-float32 file): block copy
            block = contiguous_transpose(np.stack(list(self.columns.values())).astype(dtype[0][1]))
            return block.view(np.dtype(dtype)).reshape(len(self))
        out = np.empty(len(self), dtype=dtype)
        for name, col in self.columns.items():
            out[name] = col
        return out


def read_ply_table(path: str | os.PathLike) -> PlyTable:
    """Read the ``vertex`` element of ``path`` losslessly.

    Raises :class:`PlyError` naming the file for a missing file, a file that is not PLY, a
    truncated body, or a file without vertices.
    """
    path = Path(path)
    if not path.is_file():
        raise PlyError(f"{path}: no such file")
    with _ply_errors(path), open(path, "rb") as fh:
        _check_text_counts(path, fh)
        # plyfile parses the header and checks the body length; with mmap its binary reader
        # is lazy (without, it loops in Python per value: ~1 min for 1M splats)
        data = plyfile.PlyData.read(fh, mmap="c")
        body = _read_vertex_body(fh, data)
    try:
        vertex = data["vertex"]
    except KeyError:
        raise PlyError(f"{path}: no 'vertex' element (elements: "
                       f"{[e.name for e in data.elements]})") from None
    for prop in vertex.properties:
        if isinstance(prop, plyfile.PlyListProperty):
            raise PlyError(f"{path}: vertex property {prop.name!r} is a list; splat PLYs use scalars")
    if vertex.data.dtype.names is None:
        raise PlyError(f"{path}: vertex element has no scalar properties")
    comments = list(data.comments)
    if body is None:
        body = np.array(vertex.data)  # [N] structured, copied out of the map
    del data, vertex  # drop plyfile's map so the file can be replaced (Windows)
    return PlyTable(_split_columns(body), comments)


def _check_text_counts(path: Path, fh) -> None:
    """An ASCII PLY's element counts against its size, before plyfile allocates ``count`` rows: each
    value takes at least two bytes (a digit and a separator), so a header claiming more rows than the
    file can hold is refused instead of allocated (the fuzzer found a 2 kB file asking for 56 TB)."""
    head = fh.read(1 << 20)
    fh.seek(0)
    end = head.find(b"end_header")
    if end < 0 or b"format ascii" not in head[:end]:
        return  # binary bodies are checked against the file length by plyfile itself
    body = os.fstat(fh.fileno()).st_size - end
    values, count = 0, 0
    for line in head[:end].split(b"\n"):
        words = line.split()
        if len(words) == 3 and words[0] == b"element" and words[2].isdigit():
            count = int(words[2])
        elif words[:1] == [b"property"]:
            values += count
    if 2 * values > body + 2:
        raise PlyError(f"{path}: truncated ASCII PLY (the header claims {values:,} values, the file has "
                       f"{body:,} bytes after it)")


@contextmanager
def _ply_errors(path: Path):
    """plyfile's parse errors (and numpy's, on hostile headers) as one-line PlyErrors naming ``path``."""
    try:
        yield
    except plyfile.PlyHeaderParseError as exc:
        raise PlyError(f"{path}: not a valid PLY header ({exc})") from exc
    except plyfile.PlyElementParseError as exc:
        raise PlyError(f"{path}: truncated or corrupt data ({exc})") from exc
    except (ValueError, EOFError, IndexError, MemoryError, OverflowError, UnicodeDecodeError) as exc:
        if isinstance(exc, PlyError):
            raise
        raise PlyError(f"{path}: cannot parse PLY ({exc})") from exc


def read_ply_elements(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every element of ``path`` as a structured array [count] in native byte order, and the
    comments; for multi-element files such as PlayCanvas's compressed PLY. Raises :class:`PlyError`."""
    path = Path(path)
    if not path.is_file():
        raise PlyError(f"{path}: no such file")
    with _ply_errors(path), open(path, "rb") as fh:
        _check_text_counts(path, fh)
        data = plyfile.PlyData.read(fh, mmap="c")
        elements = {}
        for element in data.elements:
            if any(isinstance(p, plyfile.PlyListProperty) for p in element.properties):
                raise PlyError(f"{path}: element {element.name!r} has list properties")
            body = np.array(element.data)  # copied out of the map
            elements[element.name] = body.astype(body.dtype.newbyteorder("="), copy=False)
        comments = list(data.comments)
        del data
    return elements, comments


def _read_vertex_body(fh, data: "plyfile.PlyData") -> np.ndarray | None:
    """The vertex rows read with one ``np.fromfile`` when they are the first binary element.

    Copying out of plyfile's map page-faults 4 KiB at a time (~1 s per GB); a plain read does not.
    Returns None for layouts where the body offset is not simply the header length.
    """
    if data.text or not data.elements or data.elements[0].name != "vertex":
        return None
    vertex = data.elements[0]
    if any(isinstance(p, plyfile.PlyListProperty) for p in vertex.properties):
        return None
    fh.seek(0)
    for line in iter(fh.readline, b""):
        if line.strip() == b"end_header":
            break
    else:
        return None
    body = np.fromfile(fh, dtype=vertex.data.dtype, count=vertex.count)
    return body if len(body) == vertex.count else None


def _split_columns(body: np.ndarray) -> dict[str, np.ndarray]:
    """Columns of a structured array in native byte order, each contiguous."""
    names = body.dtype.names
    dtypes = {body.dtype.fields[name][0] for name in names}
    if len(dtypes) == 1 and body.dtype.itemsize == len(names) * next(iter(dtypes)).itemsize:
        # one dtype, no padding (the usual all-float32 splat file): one blocked transpose
        dtype = dtypes.pop()
        block = body.view(dtype).reshape(len(body), len(names))  # [N, C]
        rows = contiguous_transpose(block).astype(dtype.newbyteorder("="), copy=False)  # [C, N]
        return dict(zip(names, rows))
    return {name: np.ascontiguousarray(body[name], dtype=body[name].dtype.newbyteorder("="))
            for name in names}


def contiguous_transpose(a: np.ndarray, rows_per_chunk: int = 4096) -> np.ndarray:
    """``a.T`` of a 2-D array as a new C-contiguous array ``[C, R]``, copied in cache-sized chunks
    (numpy's one-shot strided copy is ~4x slower on splat-sized tables)."""
    out = np.empty((a.shape[1], a.shape[0]), dtype=a.dtype)
    for start in range(0, a.shape[0], rows_per_chunk):
        out[:, start:start + rows_per_chunk] = a[start:start + rows_per_chunk].T
    return out


def write_ply_table(path: str | os.PathLike, table: PlyTable) -> None:
    """Write ``table`` as binary little-endian PLY, atomically (temp file + rename)."""
    path = Path(path)
    if len(table.columns) == 0:
        raise PlyError(f"{path}: refusing to write a PLY with no columns")
    lengths = {k: len(v) for k, v in table.columns.items()}
    if len(set(lengths.values())) > 1:
        raise PlyError(f"{path}: columns have different lengths {lengths}")
    element = plyfile.PlyElement.describe(table.to_structured(), "vertex")
    ply = plyfile.PlyData([element], text=False, byte_order="<", comments=list(table.comments))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        ply.write(fh)


# ---- INRIA column layout ---------------------------------------------------------------------

def sh_rest_names(num_rest: int) -> list[str]:
    """``f_rest_*`` names for ``num_rest`` coefficients per channel (INRIA order: channel-major)."""
    return [f"f_rest_{i}" for i in range(3 * num_rest)]


def count_indexed(names, prefix: str) -> int:
    """How many consecutive ``prefix0, prefix1, ...`` columns exist."""
    n = 0
    names = set(names)
    while f"{prefix}{n}" in names:
        n += 1
    return n


def sh_degree_for(num_rest: int) -> int:
    """SH degree from the number of non-DC coefficients per channel (0, 3, 8, 15 -> 0..3)."""
    for degree in range(0, 5):
        if (degree + 1) ** 2 - 1 == num_rest:
            return degree
    raise ValueError(f"{num_rest} rest coefficients per channel is not a full SH band set")

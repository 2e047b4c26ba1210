"""Lossless PLY tables for Gaussian-splat scenes (numpy only; vendored into the add-on).

A splat PLY is one ``vertex`` element whose properties are the per-splat columns
(``x y z nx ny nz f_dc_* f_rest_* opacity scale_* rot_*`` for INRIA 3DGS/2DGS, plus whatever a
trainer adds). :class:`PlyTable` keeps every column in file order with its file dtype (native byte
order), so reading and writing back is bit-exact, unknown columns included. Binary little/big
endian and ASCII are read; binary little endian is written, atomically.

The PLY format (Turk 1994; Bourke's description) is a text header of ``element`` / ``property``
lines and a body of fixed-size rows per element when no property is a list, which is all a splat
file has: the header is parsed here and the body read with one ``np.fromfile`` per element. (gs_core
once used plyfile, GPL-3.0; see the README's Licences section.)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .errors import SceneFormatError

# PLY scalar type names (the original names and the sized aliases) -> numpy type codes
SCALAR_TYPES = {"char": "i1", "uchar": "u1", "short": "i2", "ushort": "u2", "int": "i4", "uint": "u4",
                "float": "f4", "double": "f8", "int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2",
                "int32": "i4", "uint32": "u4", "float32": "f4", "float64": "f8"}
# what a column of each numpy type is written as (the original names, as INRIA's trainer writes)
_TYPE_NAMES = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort", "i4": "int", "u4": "uint",
               "f4": "float", "f8": "double"}
_FORMATS = {"ascii": "=", "binary_little_endian": "<", "binary_big_endian": ">"}
MAX_HEADER_BYTES = 1 << 20


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


@dataclass
class PlyElement:
    """One ``element`` line of a header and its properties."""

    name: str
    count: int
    properties: list[tuple[str, str]]  # (name, numpy type code), or (name, "list") for list properties

    def has_lists(self) -> bool:
        return any(code == "list" for _, code in self.properties)

    def dtype(self, order: str) -> np.dtype:  # the row layout in the file
        return np.dtype([(name, order + code) for name, code in self.properties])


@dataclass
class PlyHeader:
    format: str  # ascii, binary_little_endian, binary_big_endian
    elements: list[PlyElement]
    comments: list[str]
    size: int  # bytes up to and including the end_header line


def read_ply_header(path: Path, fh) -> PlyHeader:
    """Parse the header at the start of ``fh``; a :class:`PlyError` names ``path`` and the line."""
    head = fh.read(MAX_HEADER_BYTES)
    if not head.startswith(b"ply") or head[3:4] not in (b"\n", b"\r"):
        raise PlyError(f"{path}: not a valid PLY header (the file does not start with 'ply')")
    match = re.search(rb"[\r\n]end_header[ \t\r]*\n", head)
    if match is None:
        raise PlyError(f"{path}: not a valid PLY header (no end_header line in its first "
                       f"{MAX_HEADER_BYTES >> 20} MiB)")
    end, stop = match.start() + 1, match.end()
    try:
        text = head[:end].decode("ascii")
    except UnicodeDecodeError:
        raise PlyError(f"{path}: not a valid PLY header (bytes that are not ASCII)") from None
    fmt, elements, comments = None, [], []
    for number, line in enumerate(text.splitlines()[1:], start=2):
        words = line.split()
        bad = f"{path}: not a valid PLY header (line {number}: {line.strip()[:80]!r})"
        if not words:
            continue
        key = words[0]
        if key == "comment":
            comments.append(line.strip()[len("comment"):].strip())
        elif key == "obj_info":
            continue
        elif key == "format":
            if fmt is not None or len(words) != 3 or words[1] not in _FORMATS or words[2] != "1.0":
                raise PlyError(bad)
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise PlyError(bad)
            elements.append(PlyElement(words[1], int(words[2]), []))
        elif key == "property":
            if not elements:
                raise PlyError(bad + ": a property before any element")
            if len(words) == 5 and words[1] == "list" and words[2] in SCALAR_TYPES and words[3] in SCALAR_TYPES:
                prop = (words[4], "list")
            elif len(words) == 3 and words[1] in SCALAR_TYPES:
                prop = (words[2], SCALAR_TYPES[words[1]])
            else:
                raise PlyError(bad)
            if any(name == prop[0] for name, _ in elements[-1].properties):
                raise PlyError(bad + f": property {prop[0]!r} twice")
            elements[-1].properties.append(prop)
        else:
            raise PlyError(bad)
    if fmt is None:
        raise PlyError(f"{path}: not a valid PLY header (no format line)")
    return PlyHeader(fmt, elements, comments, stop)


def _read_elements(path: Path, wanted) -> tuple[dict[str, np.ndarray], list[str], list[PlyElement]]:
    """The bodies of the elements ``wanted(element)`` selects, structured [count] in native byte order;
    elements after the last wanted one are not read."""
    if not path.is_file():
        raise PlyError(f"{path}: no such file")
    try:
        return _read_elements_from(path, wanted)
    except PlyError:
        raise
    except (ValueError, TypeError, EOFError, IndexError, MemoryError, OverflowError) as exc:  # hostile headers
        raise PlyError(f"{path}: cannot parse PLY ({exc.__class__.__name__}: {exc})") from None


def _read_elements_from(path: Path, wanted):
    with open(path, "rb") as fh:
        header = read_ply_header(path, fh)
        want = [wanted(e) for e in header.elements]
        last = max((k for k, w in enumerate(want) if w), default=-1)
        for element in header.elements[:last + 1]:
            if element.has_lists():
                raise PlyError(f"{path}: element {element.name!r} has list properties; splat PLYs use scalars")
        out = {}
        if header.format == "ascii":
            _check_text_counts(path, header, os.fstat(fh.fileno()).st_size)
            fh.seek(header.size)
            tokens = fh.read().split()
            at = 0
            for element, keep in zip(header.elements[:last + 1], want):
                n = element.count * len(element.properties)
                if at + n > len(tokens):
                    raise PlyError(f"{path}: truncated ASCII PLY (element {element.name!r} needs {n:,} values, "
                                   f"{max(0, len(tokens) - at):,} are left)")
                if keep:
                    out[element.name] = _parse_text_rows(path, element, tokens[at:at + n])
                at += n
        else:
            order = _FORMATS[header.format]
            size = os.fstat(fh.fileno()).st_size
            offset = header.size
            for element, keep in zip(header.elements[:last + 1], want):
                if keep and not element.properties:
                    raise PlyError(f"{path}: {element.name} element has no scalar properties")
                dtype = element.dtype(order)
                nbytes = element.count * dtype.itemsize
                if offset + nbytes > size:
                    raise PlyError(f"{path}: truncated or corrupt data (element {element.name!r} needs "
                                   f"{nbytes:,} bytes, {max(0, size - offset):,} are left)")
                if keep:
                    fh.seek(offset)
                    body = np.fromfile(fh, dtype=dtype, count=element.count)
                    if len(body) != element.count:
                        raise PlyError(f"{path}: truncated or corrupt data (element {element.name!r})")
                    out[element.name] = body.astype(body.dtype.newbyteorder("="), copy=False)
                offset += nbytes
    return out, header.comments, header.elements


def _parse_text_rows(path: Path, element: PlyElement, tokens: list[bytes]) -> np.ndarray:
    """ASCII rows of a scalar element: integers exactly (range-checked), floats parsed as float64 and
    rounded once to the column's type."""
    width = len(element.properties)
    out = np.empty(element.count, dtype=element.dtype("="))
    if not width:
        return out
    table = np.array(tokens, dtype=bytes).reshape(element.count, width)
    for k, (name, code) in enumerate(element.properties):
        try:
            if code[0] == "f":
                out[name] = table[:, k].astype(np.float64)
            else:
                values = table[:, k].astype(np.int64)
                info = np.iinfo(code)
                if len(values) and (values.min() < info.min or values.max() > info.max):
                    raise ValueError(f"a value out of the range of {np.dtype(code)}")
                out[name] = values
        except (ValueError, OverflowError) as exc:
            raise PlyError(f"{path}: cannot parse ASCII PLY (element {element.name!r}, property {name!r}: "
                           f"{exc})") from None
    return out


def read_ply_table(path: str | os.PathLike) -> PlyTable:
    """Read the ``vertex`` element of ``path`` losslessly.

    Raises :class:`PlyError` naming the file for a missing file, a file that is not PLY, a
    truncated body, or a file without vertices.
    """
    path = Path(path)
    bodies, comments, elements = _read_elements(path, lambda e: e.name == "vertex")
    if "vertex" not in bodies:
        raise PlyError(f"{path}: no 'vertex' element (elements: {[e.name for e in elements]})")
    body = bodies["vertex"]
    if body.dtype.names is None or not body.dtype.names:
        raise PlyError(f"{path}: vertex element has no scalar properties")
    return PlyTable(_split_columns(body), comments)


def _check_text_counts(path: Path, header: PlyHeader, file_size: int) -> None:
    """An ASCII PLY's element counts against its size, before ``count`` rows are allocated: each value
    takes at least two bytes (a digit and a separator), so a header claiming more rows than the file can
    hold is refused instead of allocated (the fuzzer found a 2 kB file asking for 56 TB)."""
    values = sum(e.count * len(e.properties) for e in header.elements)
    body = file_size - header.size
    if 2 * values > body + 2:
        raise PlyError(f"{path}: truncated ASCII PLY (the header claims {values:,} values, the file has "
                       f"{body:,} bytes after it)")


def read_ply_elements(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every element of ``path`` as a structured array [count] in native byte order, and the
    comments; for multi-element files such as PlayCanvas's compressed PLY. Raises :class:`PlyError`."""
    bodies, comments, _ = _read_elements(Path(path), lambda e: True)
    return bodies, comments


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
    lines = ["ply", "format binary_little_endian 1.0"]
    for comment in table.comments:
        if "\n" in comment or "\r" in comment or not comment.isascii():
            raise PlyError(f"{path}: comment {comment[:40]!r} is not one line of ASCII")
        lines.append(f"comment {comment}".rstrip())
    lines.append(f"element vertex {len(table)}")
    for name, col in table.columns.items():
        code = col.dtype.str[1:]
        if code not in _TYPE_NAMES or not name or any(c.isspace() for c in name) or not name.isascii():
            raise PlyError(f"{path}: column {name!r} ({col.dtype}) cannot be a PLY property")
        lines.append(f"property {_TYPE_NAMES[code]} {name}")
    lines.append("end_header")
    header = ("\n".join(lines) + "\n").encode("ascii")
    body = table.to_structured()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        fh.write(header)
        _write_body(fh, body)


def _write_body(fh, body: np.ndarray) -> None:
    """The rows, written straight from the array (no bytes copy)."""
    fh.flush()
    body.tofile(fh)


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

"""GaussianScene: the per-splat parameters of a trained 3DGS or 2DGS scene, read from and written to
INRIA PLY without losing a bit.

Arrays keep the file's activation conventions (log-scales, opacity logits, raw quaternions wxyz,
SH coefficients); :meth:`GaussianScene.to_gaussians` activates them into the engine's torch form.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .io import compressed_ply, spz, splat
from .io.errors import SceneFormatError
from .io.ply import (PlyError, PlyTable, contiguous_transpose, count_indexed, read_ply_table, sh_degree_for,
                     write_ply_table)

if TYPE_CHECKING:  # pragma: no cover
    from .engine.gaussians import Gaussians

SH_C0 = 0.28209479177387814  # Y_0^0; colour = SH_C0 * f_dc + 0.5

_NORMALS = ("nx", "ny", "nz")


@dataclass
class GaussianScene:
    """N splats. 3DGS has 3 log-scales per splat, 2DGS has 2 (the splat's normal has no extent)."""

    means: np.ndarray  # [N, 3]
    quats: np.ndarray  # [N, 4] wxyz, as stored (not necessarily normalised)
    log_scales: np.ndarray  # [N, 3] (3DGS) or [N, 2] (2DGS)
    opacity_logits: np.ndarray  # [N]
    sh_dc: np.ndarray  # [N, 3]
    sh_rest: np.ndarray  # [N, K, 3], K = (degree+1)^2 - 1, coefficient-major like gsplat
    normals: np.ndarray | None = None  # [N, 3] when the file has nx, ny, nz
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # unknown columns, [N] each
    column_order: list[str] | None = None  # file order, to write back in the same layout
    comments: list[str] = field(default_factory=list)

    # ---- shape facts ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.means)

    def __repr__(self) -> str:  # the dataclass default prints every array in full
        extra = f", extra columns {sorted(self.extra)}" if self.extra else ""
        return (f"GaussianScene({len(self):,} {self.kind.upper()} splats, SH degree {self.sh_degree}"
                f"{', with normals' if self.normals is not None else ''}{extra})")

    @property
    def kind(self) -> str:
        return "2dgs" if self.log_scales.shape[1] == 2 else "3dgs"

    @property
    def sh_degree(self) -> int:
        return sh_degree_for(self.sh_rest.shape[1])

    @property
    def base_colors(self) -> np.ndarray:  # [N, 3]
        """View-independent colour from the DC term, clipped to [0, 1]."""
        return np.clip(SH_C0 * self.sh_dc + 0.5, 0.0, 1.0)

    @property
    def opacities(self) -> np.ndarray:  # [N]
        return 1.0 / (1.0 + np.exp(-self.opacity_logits.astype(np.float64)))

    # ---- table conversion -----------------------------------------------------------------
    @classmethod
    def from_table(cls, table: PlyTable, source: str = "<table>") -> "GaussianScene":
        names = table.names
        cols = table.columns
        missing = [n for n in ("x", "y", "z", "opacity", "f_dc_0", "f_dc_1", "f_dc_2") if n not in cols]
        n_scale = count_indexed(names, "scale_")
        n_rot = count_indexed(names, "rot_")
        if n_scale not in (2, 3):
            missing.append("scale_0..scale_2 (3DGS) or scale_0..scale_1 (2DGS)")
        if n_rot != 4:
            missing.append("rot_0..rot_3")
        if missing:
            raise PlyError(f"{source}: not a Gaussian-splat PLY, missing columns: {', '.join(missing)}")
        n_rest_total = count_indexed(names, "f_rest_")
        if n_rest_total % 3:
            raise PlyError(f"{source}: {n_rest_total} f_rest_* columns is not a multiple of 3")
        k = n_rest_total // 3
        try:
            sh_degree_for(k)
        except ValueError as exc:
            raise PlyError(f"{source}: {exc}") from None

        def stack(keys):  # [N, len(keys)]
            if not keys:
                return np.zeros((len(table), 0), np.float32)
            return contiguous_transpose(np.stack([cols[n] for n in keys]))

        known = (["x", "y", "z", "opacity"] + [f"f_dc_{i}" for i in range(3)]
                 + [f"scale_{i}" for i in range(n_scale)] + [f"rot_{i}" for i in range(4)]
                 + [f"f_rest_{i}" for i in range(n_rest_total)])
        has_normals = all(n in cols for n in _NORMALS)
        if has_normals:
            known += list(_NORMALS)
        for name in known:
            col = cols[name]
            if col.dtype.kind != "f":
                raise PlyError(f"{source}: column {name!r} has type {col.dtype}, expected a float type")
            # opacity and log-scales may be +-inf (fully opaque/transparent, zero extent); NaN never
            infinite_ok = name == "opacity" or name.startswith("scale_")
            bad = np.isnan(col) if infinite_ok else ~np.isfinite(col)
            if bad.any():
                raise PlyError(f"{source}: column {name!r} has {int(bad.sum())} NaN"
                               f"{'' if infinite_ok else '/inf'} values (first at vertex {int(np.argmax(bad))})")
        rest = stack([f"f_rest_{c * k + j}" for j in range(k) for c in range(3)]).reshape(len(table), k, 3)
        known_set = set(known)
        return cls(
            means=stack(["x", "y", "z"]),
            quats=stack([f"rot_{i}" for i in range(4)]),
            log_scales=stack([f"scale_{i}" for i in range(n_scale)]),
            opacity_logits=cols["opacity"].copy(),
            sh_dc=stack([f"f_dc_{i}" for i in range(3)]),
            sh_rest=rest,
            normals=stack(list(_NORMALS)) if has_normals else None,
            extra={n: cols[n] for n in names if n not in known_set},
            column_order=list(names),
            comments=list(table.comments),
        )

    def to_table(self) -> PlyTable:
        """Columns in INRIA layout; file order and dtypes kept when the scene came from a file."""
        n = len(self)
        k = self.sh_rest.shape[1]
        cols: dict[str, np.ndarray] = {}

        def add(names, array):  # array [N, len(names)] -> one contiguous column per name
            cols.update(zip(names, contiguous_transpose(array)))

        add("xyz", self.means)
        if self.normals is not None:
            add(_NORMALS, self.normals)
        add([f"f_dc_{i}" for i in range(3)], self.sh_dc)
        # f_rest is channel-major in the file: column c * k + j holds coefficient j of channel c
        rest = contiguous_transpose(self.sh_rest.reshape(n, 3 * k))  # [k * 3, N], row j * 3 + c
        cols.update((f"f_rest_{c * k + j}", rest[j * 3 + c]) for c in range(3) for j in range(k))
        cols["opacity"] = self.opacity_logits
        add([f"scale_{i}" for i in range(self.log_scales.shape[1])], self.log_scales)
        add([f"rot_{i}" for i in range(4)], self.quats)
        for name, col in self.extra.items():
            if len(col) != n:
                raise ValueError(f"extra column {name!r} has {len(col)} rows, scene has {n}")
            cols[name] = col
        if self.column_order is not None and set(self.column_order) == set(cols):
            cols = {name: cols[name] for name in self.column_order}
        return PlyTable({k_: np.ascontiguousarray(v) for k_, v in cols.items()}, list(self.comments))

    # ---- files ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike, **options) -> "GaussianScene":
        """Read a scene file by its type (:func:`scene_file_type`): INRIA 3DGS/2DGS PLY (binary or
        ASCII), PlayCanvas compressed PLY, SPZ or .splat; ``options`` go to the format's reader
        (SPZ: ``axes``). Raises a :class:`~gs_core.io.errors.SceneFormatError` naming the file."""
        return cls.from_table(read_scene_table(path, **options), source=str(path))

    def save(self, path: str | os.PathLike, **options) -> None:
        """Write atomically, the format chosen by the extension: ``.ply`` (binary little-endian,
        lossless), ``.spz`` (``version`` 2-4, default 3) or ``.splat``; see :func:`lost_on_save`."""
        path = Path(path)
        kind = scene_file_type(path, for_writing=True)
        if kind == "spz":
            spz.write_spz(path, self, **options)
        elif kind == "splat":
            splat.write_splat(path, self, **options)
        else:
            write_ply_table(path, self.to_table(), **options)

    # ---- editing ----------------------------------------------------------------------------
    def subset(self, index) -> "GaussianScene":
        """Rows ``index`` (bool mask [N] or integer indices) of every array."""
        return replace(
            self, means=self.means[index], quats=self.quats[index], log_scales=self.log_scales[index],
            opacity_logits=self.opacity_logits[index], sh_dc=self.sh_dc[index],
            sh_rest=self.sh_rest[index], normals=None if self.normals is None else self.normals[index],
            extra={k: v[index] for k, v in self.extra.items()},
        )

    def concat(self, other: "GaussianScene") -> "GaussianScene":
        """Rows of ``self`` then rows of ``other`` (same columns; normals kept only when both have them)."""
        if self.kind != other.kind or self.sh_rest.shape[1:] != other.sh_rest.shape[1:] or \
                set(self.extra) != set(other.extra):
            raise ValueError("concat needs scenes with the same columns")

        def cat(x, y):
            return None if x is None or y is None else np.concatenate([x, y])

        return replace(self, means=cat(self.means, other.means), quats=cat(self.quats, other.quats),
                       log_scales=cat(self.log_scales, other.log_scales),
                       opacity_logits=cat(self.opacity_logits, other.opacity_logits),
                       sh_dc=cat(self.sh_dc, other.sh_dc), sh_rest=cat(self.sh_rest, other.sh_rest),
                       normals=cat(self.normals, other.normals),
                       extra={k: np.concatenate([v, other.extra[k]]) for k, v in self.extra.items()})

    def to_gaussians(self, device="cpu") -> "Gaussians":
        """Activated torch tensors for the engine (normalised quats, exp scales, sigmoid opacity)."""
        from .engine.gaussians import Gaussians

        return Gaussians.from_scene(self, device=device)


# ---- scene files by type ---------------------------------------------------------------------------

READABLE = (".ply", ".compressed.ply", ".spz", ".splat")
WRITABLE = (".ply", ".spz", ".splat")


def scene_file_type(path: str | os.PathLike, for_writing: bool = False) -> str:
    """"ply", "compressed_ply", "spz" or "splat", from the extension (case-insensitive); for reading
    a ``.ply`` the header tells compressed from plain, and a file with another extension is sniffed
    (gzip or NGSP: SPZ; "ply": PLY). Raises :class:`SceneFormatError` for anything else."""
    path = Path(path)
    name = path.name.lower()
    if for_writing:
        if name.endswith(".compressed.ply"):
            raise SceneFormatError(f"{path}: writing PlayCanvas compressed PLY is not supported; "
                                   "write .spz (smaller, widely read) or .ply")
        for suffix in WRITABLE:
            if name.endswith(suffix):
                return suffix[1:]
        raise SceneFormatError(f"{path}: unknown scene file type; write {', '.join(WRITABLE)}")
    if name.endswith(".spz"):
        return "spz"
    if name.endswith(".splat"):
        return "splat"
    if not name.endswith(".ply"):
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
        except OSError as exc:
            raise SceneFormatError(f"{path}: {exc.strerror or exc}") from None
        if head[:2] == b"\x1f\x8b" or head == b"NGSP":
            return "spz"
        if head[:3] != b"ply":
            raise SceneFormatError(f"{path}: unknown scene file type; read {', '.join(READABLE)}")
    return "compressed_ply" if compressed_ply.is_compressed_ply(path) else "ply"


def read_scene_table(path: str | os.PathLike, **options) -> PlyTable:
    """The splats of any scene file we read, as INRIA PLY columns (lossless for plain PLY)."""
    kind = scene_file_type(path)
    if kind == "spz":
        return spz.read_spz_table(path, **options)
    if options:
        raise TypeError(f"options {sorted(options)} apply to SPZ files only")
    if kind == "splat":
        return splat.read_splat_table(path)
    if kind == "compressed_ply":
        return compressed_ply.read_compressed_ply_table(path)
    return read_ply_table(path)


def lost_on_save(path: str | os.PathLike, scene: GaussianScene) -> list[str]:
    """What saving ``scene`` to ``path`` drops (empty for PLY): for the CLI's note and the add-on's report."""
    kind = scene_file_type(path, for_writing=True)
    if kind == "spz":
        return spz.lost_in_spz(scene)
    if kind == "splat":
        return splat.lost_in_splat(scene)
    return []

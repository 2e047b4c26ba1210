"""The native CPU backend: C++/OpenMP kernels from ``cuda/raster_cpu.cpp``, built on first use.

The extension is compiled with torch's ``cpp_extension`` (``-O3 -march=native -fopenmp``) into a
cache folder keyed by the source, torch version and CPU, so it builds once per machine. If there is
no compiler, :func:`available` is False, a warning says why, and ``auto`` falls back to ``torch``.
"""

from __future__ import annotations

import hashlib
import os
import platform
import warnings
from pathlib import Path

import torch
from torch import Tensor

from .projection import Projection

_SOURCE_NAME = "raster_cpu.cpp"
SCRATCH_BYTES = 256 << 20  # cap on the per-intersection trace buffer
_ext = None
_error: str | None = None


def source_path() -> Path:
    """The kernel source: ``cuda/`` beside the package (source checkout / editable install)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "cuda" / _SOURCE_NAME, here / "csrc" / _SOURCE_NAME):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{_SOURCE_NAME} not found beside gs_core (looked in ../cuda and engine/csrc)")


def _cpu_key() -> str:
    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        pass
    return platform.machine() + flags


def _build_dir(source: Path) -> Path:
    digest = hashlib.sha1(source.read_bytes() + torch.__version__.encode() + _cpu_key().encode()).hexdigest()[:12]
    root = Path(os.environ.get("GS_CORE_CACHE", Path.home() / ".cache" / "gs_core"))
    path = root / "ext" / f"raster_cpu_{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load(verbose: bool = False):
    """Build (once) and import the extension; raises on failure."""
    global _ext
    if _ext is None:
        from torch.utils import cpp_extension

        source = source_path()
        _ext = cpp_extension.load(
            name="gs_core_raster_cpu", sources=[str(source)], build_directory=str(_build_dir(source)),
            extra_cflags=["-O3", "-march=native", "-fopenmp", "-ffp-contract=off"],
            extra_ldflags=["-fopenmp"], verbose=verbose)
    return _ext


def available() -> bool:
    """True when the extension builds/imports; warns once with the reason when it does not."""
    global _error
    if _ext is not None:
        return True
    if _error is not None:
        return False
    try:
        load()
        return True
    except Exception as exc:  # no compiler, no headers, ...: fall back to the torch reference
        _error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        warnings.warn(f"gs_core: native CPU kernels unavailable ({_error}); using the slower torch "
                      "backend", RuntimeWarning, stacklevel=2)
        return False


def _common(proj: Projection, pixels: Tensor, order: Tensor, offsets: Tensor):
    """Kernel arguments: geometry, pixels in the caller's order, and their tile grouping."""
    shape = proj.conics if proj.kind == "3dgs" else proj.ray_transforms.reshape(-1, 9)
    xy = pixels.to(torch.int32)
    return (proj.kind == "2dgs", proj.means2d.contiguous(), shape.contiguous(), proj.opacities.contiguous(),
            proj.tile_offsets.contiguous(), proj.flat_ids.contiguous(), xy[:, 0].contiguous(),
            xy[:, 1].contiguous(), order.to(torch.int32).contiguous(), offsets.contiguous(), proj.tiles_x)


def rasterize(proj: Projection, features: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor):
    """features [N, D] -> (features [P, D], alpha [P], depth [P]) in the caller's pixel order."""
    two_d, m2d, shape, opac, toff, fid, px, py, order32, poff, tiles_x = _common(proj, pixels, order, offsets)
    return tuple(load().render_forward(two_d, m2d, shape, opac, proj.depths.contiguous(), toff, fid, px, py,
                                       order32, poff, tiles_x, features.contiguous()))


def trace(proj: Projection, values: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor, power: int):
    """values [P, D] -> (weighted_sum [N, D], weight_sum [N], alpha_sum [N], hits [N])."""
    args = _common(proj, pixels, order, offsets)
    return tuple(load().trace_dense(*args, values.contiguous(), power, SCRATCH_BYTES))


def trace_labels(proj: Projection, labels: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor,
                 power: int, top_k: int):
    """labels [P] int32, negative = ignored -> (labels [N, k], weights [N, k], weight_sum [N],
    alpha_sum [N], hits [N])."""
    args = _common(proj, pixels, order, offsets)
    return tuple(load().trace_labels(*args, labels.to(torch.int32).contiguous(), power, top_k))

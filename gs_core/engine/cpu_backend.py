"""The native CPU backend: C++/OpenMP kernels from ``cuda/raster_cpu.cpp``.

Installing gs_core compiles the kernels once per instruction-set variant (``setup.py``,
:mod:`~gs_core.engine.isa`); here the widest variant this CPU runs is imported. When none is
prebuilt, or a source checkout's ``raster_cpu.cpp`` or torch changed since, the kernels are compiled
for this machine with torch's ``cpp_extension`` (``-march=native``) into a cache folder keyed by the
source, torch version and CPU, saying so on stderr with the time it took. Without a compiler,
:func:`available` is False, a warning says why, and ``auto`` falls back to ``torch``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..camera import Camera
from . import isa
from .gaussians import Gaussians
from .projection import Projection, camera_tensors

_SOURCE_NAME = "raster_cpu.cpp"
_BUILD_INFO = Path(__file__).resolve().parent / "_raster_build.json"  # written by setup.py
SCRATCH_BYTES = 256 << 20  # cap on the per-intersection trace buffer
_ext = None
_variant: str | None = None  # what _ext is: an isa.VARIANTS name or isa.NATIVE
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


def _build_dir(source: Path, flags: list[str]) -> Path:
    key = f"{torch.__version__} {_cpu_key()} {isa.compiler()} {' '.join(flags)}"
    digest = hashlib.sha1(source.read_bytes() + key.encode()).hexdigest()[:12]
    root = Path(os.environ.get("GS_CORE_CACHE", Path.home() / ".cache" / "gs_core"))
    path = root / "ext" / f"raster_cpu_{digest}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def runnable_variants() -> list[str]:
    """The prebuilt variants this CPU can run, widest first (torch's CPU detection decides)."""
    return isa.runnable(torch.backends.cpu.get_cpu_capability())


def _stale_reason(variant: str) -> str | None:
    """Why the prebuilt ``variant`` does not match this source checkout and torch (None if it does)."""
    try:
        info = json.loads(_BUILD_INFO.read_text())
    except (OSError, ValueError):
        return "no prebuilt kernels (gs_core was installed without building them)"
    if variant not in info.get("variants", []):
        return f"the {variant} kernels were not built when gs_core was installed"
    if info.get("torch") != torch.__version__:
        return f"the prebuilt kernels are for torch {info.get('torch')}, this is torch {torch.__version__}"
    try:
        source = source_path()
    except FileNotFoundError:
        return None  # an installed wheel: no source to compare with
    if hashlib.sha1(source.read_bytes()).hexdigest() != info.get("source_sha1"):
        return f"{source} changed since the kernels were prebuilt"
    return None


def prebuilt(variant: str):
    """Import the prebuilt module of ``variant``; raises ImportError if it is missing or stale."""
    if variant not in isa.VARIANTS:
        raise ValueError(f"unknown kernel variant {variant!r}; choose from {', '.join(isa.VARIANTS)}")
    if variant not in runnable_variants():
        raise ImportError(f"this CPU cannot run the {variant} kernels (torch reports "
                          f"{torch.backends.cpu.get_cpu_capability()})")
    reason = _stale_reason(variant)
    if reason:
        raise ImportError(reason)
    return importlib.import_module(f"{__package__}.{isa.module_name(variant)}")


def prebuilt_variants() -> list[str]:
    """The prebuilt variants that import here (present, up to date, runnable on this CPU)."""
    found = []
    for name in runnable_variants():
        try:
            prebuilt(name)
            found.append(name)
        except ImportError:
            pass
    return found


def _compile(verbose: bool = False):
    """Compile the kernels for this CPU (-march=native) into the cache; announce it when it runs."""
    from torch.utils import cpp_extension

    source = source_path()
    flags = isa.compile_flags(["-march=native"])
    build_dir = _build_dir(source, flags)
    fresh = not (build_dir / "gs_core_raster_cpu.so").is_file()
    if fresh:
        print(f"gs_core: compiling the native CPU kernels for this machine (once; about a minute) into "
              f"{build_dir}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    ext = cpp_extension.load(
        name="gs_core_raster_cpu", sources=[str(source)], build_directory=str(build_dir),
        extra_cflags=flags, extra_ldflags=isa.link_flags(), verbose=verbose)
    if fresh:
        print(f"gs_core: compiled the native CPU kernels in {time.perf_counter() - start:.0f} s",
              file=sys.stderr, flush=True)
    return ext


def load(verbose: bool = False):
    """Import (the first time: choose, and compile if needed) the kernels; raises on failure.

    ``GS_CORE_ISA`` forces a prebuilt variant (an error if it is missing or this CPU cannot run it)
    or ``native``; otherwise the widest runnable prebuilt variant, else a compile for this CPU."""
    global _ext, _variant
    if _ext is None:
        wanted = isa.forced()
        if wanted == isa.NATIVE:
            _ext, _variant = _compile(verbose), isa.NATIVE
        elif wanted is not None:
            _ext, _variant = prebuilt(wanted), wanted
        else:
            reason = None
            for variant in runnable_variants():
                try:
                    _ext, _variant = prebuilt(variant), variant
                    break
                except ImportError as exc:
                    reason = reason or str(exc)
            else:
                print(f"gs_core: {reason}", file=sys.stderr)
                _ext, _variant = _compile(verbose), isa.NATIVE
        _say_if_serial(_ext)
    return _ext


_said_serial = False


def _say_if_serial(ext) -> None:
    """Once per process: kernels built without OpenMP run on one thread (e.g. Apple Clang's build)."""
    global _said_serial
    if not getattr(ext, "openmp", True) and not _said_serial:
        _said_serial = True
        print("gs_core: the native CPU kernels were built without OpenMP (the compiler has none, or "
              f"{isa.NO_OPENMP_ENV} was set): they run on one thread", file=sys.stderr, flush=True)


def use(variant: str | None) -> str | None:
    """Switch the kernels this process uses to a prebuilt ``variant`` (None: choose again on next
    use); returns the previous one. For tests and benchmarks that compare variants."""
    global _ext, _variant
    previous = _variant
    if variant is None:
        _ext, _variant = None, None
    else:
        _ext, _variant = prebuilt(variant), variant
        _say_if_serial(_ext)
    return previous


def variant() -> str | None:
    """Which kernels are loaded: a prebuilt variant name, ``native`` (compiled here), or None."""
    return _variant


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


def rasterize(proj: Projection, features: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor,
              keep_state: bool = False):
    """features [N, D] -> (features [P, D], alpha [P], depth [P]) in the caller's pixel order; with
    ``keep_state`` also what :func:`rasterize_backward` needs: the final transmittance [P] and the
    last blended intersection [P] int32 (-1: none) of every pixel.

    Args:
        features: [N, D] float32, one feature row per Gaussian.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    two_d, m2d, shape, opac, toff, fid, px, py, order32, poff, tiles_x = _common(proj, pixels, order, offsets)
    return tuple(load().render_forward(two_d, m2d, shape, opac, proj.depths.contiguous(), toff, fid, px, py,
                                       order32, poff, tiles_x, features.contiguous(), keep_state))


def rasterize_backward(proj: Projection, features: Tensor, state: tuple[Tensor, Tensor], grad_features: Tensor,
                       grad_alpha: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor):
    """The gradient of :func:`rasterize` (gsplat's rasterization backward, per tile back to front).

    features [N, D], state = (T_final [P], last [P]) from ``rasterize(..., keep_state=True)``,
    grad_features [P, D], grad_alpha [P] -> dL/d(means2d [N, 2], shape [N, 3] conics or [N, 9] ray
    transforms row-major, opacities [N], features [N, D]). Deterministic (no atomics).

    Args:
        features: [N, D] float32, as given to :func:`rasterize`.
        state: ([P], [P]) the final transmittance (float32) and last blended intersection (int32, -1: none)
            of every pixel, from ``rasterize(..., keep_state=True)``.
        grad_features: [P, D] dL/d(rendered features).
        grad_alpha: [P] dL/d(alpha).
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    args = _common(proj, pixels, order, offsets)
    return tuple(load().render_backward(*args, features.contiguous(), state[0].contiguous(), state[1].contiguous(),
                                        grad_features.contiguous(), grad_alpha.contiguous(), SCRATCH_BYTES))


def trace(proj: Projection, values: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor, power: int):
    """values [P, D] -> (weighted_sum [N, D], weight_sum [N], alpha_sum [N], hits [N]).

    Args:
        values: [P, D] float32, one row per pixel of ``pixels``.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    args = _common(proj, pixels, order, offsets)
    return tuple(load().trace_dense(*args, values.contiguous(), power, SCRATCH_BYTES))


def trace_labels(proj: Projection, labels: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor,
                 power: int, top_k: int, sparse: bool = False):
    """labels [P] int32, negative = ignored -> (labels [N, k], weights [N, k], weight_sum [N],
    alpha_sum [N], hits [N]); with ``sparse`` (gaussians [E], labels [E], weights [E], weight_sum [N],
    alpha_sum [N], hits [N]): the same histogram as entries, no [N, k] arrays. Deterministic.

    Args:
        labels: [P] int, one label per pixel of ``pixels``; negative = ignored.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    args = _common(proj, pixels, order, offsets)
    return tuple(load().trace_labels(*args, labels.to(torch.int32).contiguous(), power, top_k, sparse))


def project_forward(two_d: bool, means: Tensor, quats: Tensor, scales: Tensor, viewmat: Tensor, K: Tensor,
                    width: int, height: int, tile_size: int):
    """means [N, 3], quats [N, 4], scales [N, 3], viewmat [4, 4], K [3, 3] (float32) -> (means2d [N, 2],
    depths [N], radii [N, 2] int32, conics [N, 3] or ray transforms [N, 3, 3], tile_offsets [T + 1],
    flat_ids [M]): :func:`gs_core.engine.projection.project_reference`'s fields, in one parallel region.

    Args:
        means: [N, 3] float32 world-space centres.
        quats: [N, 4] float32 wxyz.
        scales: [N, 3] float32.
        viewmat: [4, 4] float32 world -> camera.
        K: [3, 3] float32 intrinsics.
    """
    return tuple(load().project_forward(two_d, means.contiguous(), quats.contiguous(), scales.contiguous(),
                                        viewmat.contiguous(), K.contiguous(), width, height, tile_size))


def project_backward(two_d: bool, means: Tensor, quats: Tensor, scales: Tensor, viewmat: Tensor, K: Tensor,
                     width: int, height: int, v_means2d: Tensor, v_depths: Tensor, v_shape: Tensor):
    """dL/d(means2d [N, 2], depths [N], conics [N, 3] / ray transforms [N, 3, 3]) -> dL/d(means [N, 3],
    quats [N, 4], scales [N, 3]): the vector-Jacobian product of the projection, per Gaussian.

    Args:
        means: [N, 3] float32, as given to :func:`project_forward`.
        quats: [N, 4] float32 wxyz.
        scales: [N, 3] float32.
        viewmat: [4, 4] float32 world -> camera.
        K: [3, 3] float32 intrinsics.
        v_means2d: [N, 2] dL/d(means2d).
        v_depths: [N] dL/d(depths).
        v_shape: [N, 3] dL/d(conics) (3DGS) or [N, 3, 3] dL/d(ray transforms) (2DGS).
    """
    return tuple(load().project_backward(two_d, means.contiguous(), quats.contiguous(), scales.contiguous(),
                                         viewmat.contiguous(), K.contiguous(), width, height,
                                         v_means2d.contiguous(), v_depths.contiguous(), v_shape.contiguous()))


# ---- the native projection as an autograd op (the torch reference: projection.project_reference) ---

class _NativeProjection(torch.autograd.Function):
    """The native projection (:func:`project_forward`) with its native backward (:func:`project_backward`)."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmat, K, width, height, tile_size, two_d):
        means2d, depths, radii, shape, tile_offsets, flat_ids = project_forward(
            two_d, means, quats, scales, viewmat, K, width, height, tile_size)
        ctx.save_for_backward(means, quats, scales, viewmat, K)
        ctx.setup = (two_d, width, height)
        ctx.mark_non_differentiable(radii, tile_offsets, flat_ids)
        return means2d, depths, shape, radii, tile_offsets, flat_ids

    @staticmethod
    def backward(ctx, v_means2d, v_depths, v_shape, *_):
        means, quats, scales, viewmat, K = ctx.saved_tensors
        two_d, width, height = ctx.setup
        n = means.shape[0]
        v_means2d = means.new_zeros(n, 2) if v_means2d is None else v_means2d
        v_depths = means.new_zeros(n) if v_depths is None else v_depths
        v_shape = means.new_zeros((n, 3, 3) if two_d else (n, 3)) if v_shape is None else v_shape
        v_means, v_quats, v_scales = project_backward(two_d, means, quats, scales, viewmat, K, width, height,
                                                      v_means2d, v_depths, v_shape)
        return v_means, v_quats, v_scales, None, None, None, None, None, None


def project(gaussians: Gaussians, camera: Camera, tile_size: int) -> Projection:
    """The native projection of float32 CPU ``gaussians`` into ``camera``, binned into tiles; forward
    and backward in C++, the same fields as :func:`~gs_core.engine.projection.project_reference` to
    float32 rounding (radii may differ by 1 where a ceil lands on a rounding boundary)."""
    two_d = gaussians.kind == "2dgs"
    viewmat, K = camera_tensors(camera, "cpu", torch.float32)
    means2d, depths, shape, radii, tile_offsets, flat_ids = _NativeProjection.apply(
        gaussians.means, gaussians.quats, gaussians.scales, viewmat, K, camera.width, camera.height,
        tile_size, two_d)
    return Projection(camera=camera, kind=gaussians.kind, means2d=means2d, depths=depths, radii=radii,
                      conics=None if two_d else shape, ray_transforms=shape if two_d else None,
                      opacities=gaussians.opacities.contiguous(), tile_offsets=tile_offsets,
                      flat_ids=flat_ids, tile_size=tile_size)

"""The CUDA backend: gsplat's rasterizer on our projection (imported lazily, CUDA only).

``render`` calls gsplat's ``rasterize_to_pixels`` (3DGS) / ``rasterize_to_pixels_2dgs`` (2DGS) with
the tile lists of :func:`gs_core.engine.project`, so geometry and binning are shared with the other
backends; gsplat's own autograd gives the gradient w.r.t. the features (its backward is the trace,
``RasterizeToPixels3DGSBwd.cu``). Traces (power 2, label histograms, hit counts) have no gsplat
counterpart and run on :mod:`.batched_backend` (the reference's formulas over blocks of tiles) on
the same GPU.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from . import batched_backend
from .projection import Projection

DIFFERENTIABLE = True  # rasterize() carries its own autograd; the API need not wrap it
_MAX_CHANNELS = 512


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """CUDA is present and gsplat's CUDA extension loads (gsplat builds it on first use: minutes, once)."""
    if not torch.cuda.is_available():
        return False
    try:
        from gsplat.cuda._backend import _C  # needs `packaging`; None without a CUDA toolkit
    except Exception:
        return False
    return _C is not None


def _full_frame(proj: Projection, features: Tensor) -> tuple[Tensor, Tensor]:
    """gsplat render of features [N, D] over the whole frame -> ([H, W, D], [H, W])."""
    from gsplat.cuda._wrapper import rasterize_to_pixels, rasterize_to_pixels_2dgs

    offsets = proj.tile_offsets[:-1].reshape(1, proj.tiles_y, proj.tiles_x).to(torch.int32)
    ids = proj.flat_ids.to(torch.int32)
    outs, alpha = [], None
    for lo in range(0, features.shape[1], _MAX_CHANNELS):
        chunk = features[None, :, lo:lo + _MAX_CHANNELS]
        if proj.kind == "3dgs":
            out, a = rasterize_to_pixels(proj.means2d[None], proj.conics[None], chunk, proj.opacities[None],
                                         proj.width, proj.height, proj.tile_size, offsets, ids)
        else:
            n = proj.num_gaussians
            zeros3 = torch.zeros(1, n, 3, device=features.device)
            out, a = rasterize_to_pixels_2dgs(proj.means2d[None], proj.ray_transforms[None], chunk,
                                              proj.opacities[None], zeros3, torch.zeros(1, n, 2, device=features.device),
                                              proj.width, proj.height, proj.tile_size, offsets, ids)[:2]
        outs.append(out[0])
        alpha = a[0, ..., 0]
    return torch.cat(outs, dim=-1), alpha


def rasterize(proj: Projection, features: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor):
    """features [N, D] -> (features [P, D], alpha [P], depth [P]); differentiable w.r.t. features.

    Args:
        features: [N, D] one feature row per Gaussian.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 (unused: gsplat renders the full frame).
        offsets: [T + 1] int64 (unused).
    """
    depth_col = proj.depths[:, None].to(features)
    out, alpha = _full_frame(proj, torch.cat([features, depth_col], dim=1))
    rows = out[pixels[:, 1], pixels[:, 0]]
    return rows[:, :-1], alpha[pixels[:, 1], pixels[:, 0]].detach(), rows[:, -1].detach()


def trace(proj: Projection, values: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor, power: int):
    """The batched reference's trace (:func:`.batched_backend.trace`) on the CUDA tensors.

    Args:
        values: [P, D] float, one row per pixel of ``pixels``.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    return batched_backend.trace(proj, values, pixels, order, offsets, power)


def trace_labels(proj: Projection, labels: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor,
                 power: int, top_k: int):
    """The batched reference's label trace (:func:`.batched_backend.trace_labels`) on the CUDA tensors.

    Args:
        labels: [P] int, one label per pixel of ``pixels``; negative = ignored.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    return batched_backend.trace_labels(proj, labels, pixels, order, offsets, power, top_k)

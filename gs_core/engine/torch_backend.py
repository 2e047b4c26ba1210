"""The readable reference backend: pure torch, any device, the test oracle for ``cpu`` and ``gsplat``.

Per 16x16 tile, the weights of every (pixel, Gaussian) pair are formed as a dense matrix and
composited with a cumulative product; this mirrors the native kernel's front-to-back loop:

* ``alpha = min(0.999, o * exp(-sigma))``, skipped when ``sigma < 0`` or ``alpha < 1/255``;
* a pixel stops before the Gaussian that would take its transmittance to ``<= 1e-4``;
* the blending weight is ``w = alpha * T``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .projection import Projection

DIFFERENTIABLE = True  # plain torch ops: autograd gives the feature gradient
ALPHA_MAX = 0.999  # gsplat's clamp (INRIA's rasterizer uses 0.99)
ALPHA_MIN = 1.0 / 255.0
T_MIN = 1e-4


def alpha_at(proj: Projection, gids: Tensor, x: Tensor, y: Tensor) -> Tensor:
    """Alpha of Gaussians ``gids`` at points (x, y), all three broadcast together -> 0 where skipped.

    ``x``, ``y`` are pixel centres (pixel index + 0.5) in the projection's dtype; e.g. ``gids`` [1, G]
    and ``x`` [P, 1] give [P, G] (one tile), ``gids`` [B, 1, L] and ``x`` [B, S, 1] give [B, S, L].

    Args:
        gids: [..., G] int64 Gaussian ids, broadcast with ``x`` and ``y`` (e.g. [1, G] or [B, 1, L]).
        x: [..., 1] pixel-centre x in the projection's dtype (e.g. [P, 1] or [B, S, 1]).
        y: [..., 1] pixel-centre y, as ``x``.
    """
    dx = x - proj.means2d[gids, 0]
    dy = y - proj.means2d[gids, 1]
    if proj.kind == "3dgs":
        a, b, c = proj.conics[gids].unbind(-1)
        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
    else:  # 2DGS ray-splat intersection (gsplat accumulate_2dgs)
        M = proj.ray_transforms[gids]  # [..., 3, 3]
        h_u = -M[..., 0, :] + M[..., 2, :] * x[..., None]  # [..., 3]
        h_v = -M[..., 1, :] + M[..., 2, :] * y[..., None]
        cr = torch.cross(h_u, h_v, dim=-1)
        us, vs = cr[..., 0] / cr[..., 2], cr[..., 1] / cr[..., 2]
        sigma_3d = us * us + vs * vs
        sigma_2d = 2.0 * (dx * dx + dy * dy)
        sigma = 0.5 * torch.minimum(sigma_3d, sigma_2d)
        sigma = torch.where(torch.isnan(sigma), torch.full_like(sigma, -1.0), sigma)
    alpha = torch.clamp_max(proj.opacities[gids] * torch.exp(-sigma), ALPHA_MAX)
    return torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))


def _alphas(proj: Projection, gids: Tensor, px: Tensor, py: Tensor) -> Tensor:
    """Alpha of Gaussians ``gids`` [G] at pixel centres (px, py) [P] -> [P, G], 0 where skipped."""
    x = px.to(proj.means2d.dtype)[:, None] + 0.5
    y = py.to(proj.means2d.dtype)[:, None] + 0.5
    return alpha_at(proj, gids[None], x, y)


def composite(alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Front-to-back blending along the last axis: alpha [..., G] (0 = skipped) -> the alphas used
    [..., G] (0 past the pixel's termination), weights ``w = alpha T`` [..., G], final T [...].

    Args:
        alpha: [..., G] alphas front to back, 0 = skipped.
    """
    one_minus = 1.0 - alpha
    T_after = torch.cumprod(one_minus, dim=-1)
    T_before = torch.cat([torch.ones_like(T_after[..., :1]), T_after[..., :-1]], dim=-1)
    used = (alpha > 0) & (T_after > T_MIN)
    alpha = torch.where(used, alpha, torch.zeros_like(alpha))
    w = alpha * T_before
    T_final = torch.prod(torch.where(used, one_minus, torch.ones_like(one_minus)), dim=-1)
    return alpha, w, T_final


def tile_weights(proj: Projection, tile: int, px: Tensor, py: Tensor):
    """Blending weights of tile ``tile`` at pixels (px, py) [P] (all inside that tile).

    Returns ``gids`` [G] (the tile's Gaussians, front to back), ``alpha`` [P, G] and ``w`` [P, G]
    (0 where a Gaussian is skipped or the pixel has terminated), and the final transmittance [P].

    Args:
        px: [P] int64 pixel x, inside tile ``tile``.
        py: [P] int64 pixel y.
    """
    start, end = int(proj.tile_offsets[tile]), int(proj.tile_offsets[tile + 1])
    gids = proj.flat_ids[start:end].long()
    alpha, w, T_final = composite(_alphas(proj, gids, px, py))
    return gids, alpha, w, T_final


def _tiles(proj: Projection, pixels: Tensor, order: Tensor, offsets: Tensor):
    for tile in range(offsets.shape[0] - 1):
        lo, hi = int(offsets[tile]), int(offsets[tile + 1])
        if lo == hi:
            continue
        rows = order[lo:hi]
        yield tile, rows, pixels[rows, 0], pixels[rows, 1]


def rasterize(proj: Projection, features: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor):
    """features [N, D] -> (features [P, D], alpha [P], depth [P]) at ``pixels`` [P, 2].

    Differentiable through torch autograd w.r.t. ``features`` and every tensor of ``proj`` (the
    oracle the native backward is tested against; float64 works).

    Args:
        features: [N, D] one feature row per Gaussian.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    P, D = pixels.shape[0], features.shape[1]
    parts, part_rows = [], []
    alpha_out = features.new_zeros(P)
    depth_out = features.new_zeros(P)
    for tile, rows, px, py in _tiles(proj, pixels, order, offsets):
        gids, _, w, T_final = tile_weights(proj, tile, px, py)
        parts.append(w @ features[gids])
        part_rows.append(rows)
        alpha_out[rows] = 1.0 - T_final
        depth_out[rows] = w @ proj.depths[gids]
    out = features.new_zeros(P, D)
    if parts:  # one scatter (autograd-friendly) instead of a copy of [P, D] per tile
        out = out.index_put((torch.cat(part_rows),), torch.cat(parts))
    return out, alpha_out, depth_out


def trace(proj: Projection, values: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor, power: int):
    """values [P, D] -> per Gaussian ``sum_p w^k v_p`` [N, D], ``sum_p w^k`` [N], ``sum_p alpha`` [N]
    and the number of pixels each Gaussian was blended into [N].

    Args:
        values: [P, D] float, one row per pixel of ``pixels``.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    N, D = proj.num_gaussians, values.shape[1]
    dev = pixels.device
    acc = torch.zeros(N, D, device=dev)
    wsum = torch.zeros(N, device=dev)
    asum = torch.zeros(N, device=dev)
    hits = torch.zeros(N, dtype=torch.int32, device=dev)
    for tile, rows, px, py in _tiles(proj, pixels, order, offsets):
        gids, alpha, w, _ = tile_weights(proj, tile, px, py)
        wk = w if power == 1 else w * w
        acc.index_add_(0, gids, wk.T @ values[rows])
        wsum.index_add_(0, gids, wk.sum(0))
        asum.index_add_(0, gids, alpha.sum(0))
        hits.index_add_(0, gids, (w > 0).sum(0).to(torch.int32))
    return acc, wsum, asum, hits


def trace_labels(proj: Projection, labels: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor,
                 power: int, top_k: int):
    """labels [P] int (negative = ignore) -> per-Gaussian top-k label histogram.

    Returns ``labels`` [N, k] int32 (-1 padded), ``weights`` [N, k], ``weight_sum`` [N] (all labels),
    ``alpha_sum`` [N], ``hits`` [N]. Labels are sorted by weight, descending; ties by label.

    Args:
        labels: [P] int, one label per pixel of ``pixels``; negative = ignored.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    N = proj.num_gaussians
    dev = pixels.device
    keys, vals = [], []
    wsum = torch.zeros(N, device=dev)
    asum = torch.zeros(N, device=dev)
    hits = torch.zeros(N, dtype=torch.int32, device=dev)
    for tile, rows, px, py in _tiles(proj, pixels, order, offsets):
        lab = labels[rows]
        keep = lab >= 0
        if not bool(keep.any()):
            continue
        rows, px, py, lab = rows[keep], px[keep], py[keep], lab[keep]
        gids, alpha, w, _ = tile_weights(proj, tile, px, py)
        wk = w if power == 1 else w * w
        uniq, inv = torch.unique(lab, return_inverse=True)
        per_label = torch.zeros(uniq.shape[0], gids.shape[0], device=dev).index_add_(0, inv, wk)  # [L, G]
        li, gi = torch.nonzero(per_label > 0, as_tuple=True)
        keys.append(torch.stack([gids[gi], uniq[li].long()], dim=1))
        vals.append(per_label[li, gi])
        wsum.index_add_(0, gids, wk.sum(0))
        asum.index_add_(0, gids, alpha.sum(0))
        hits.index_add_(0, gids, (w > 0).sum(0).to(torch.int32))
    if not keys:
        return top_k_histogram(None, None, N, top_k, dev) + (wsum, asum, hits)
    uniq, inv = torch.unique(torch.cat(keys), dim=0, return_inverse=True)  # sorted by (gaussian, label)
    total = torch.zeros(uniq.shape[0], device=dev).index_add_(0, inv, torch.cat(vals))
    return top_k_histogram(uniq, total, N, top_k, dev) + (wsum, asum, hits)


def top_k_histogram(uniq: Tensor | None, total: Tensor | None, N: int, top_k: int, device):
    """Per-Gaussian top-k of (gaussian, label) sums: ``uniq`` [K, 2] int64 sorted by (gaussian, label),
    ``total`` [K] -> labels [N, k] int32 (-1 padded) and weights [N, k], by weight descending, ties by label.

    Args:
        uniq: [K, 2] int64 (gaussian, label) pairs, or None for none.
        total: [K] float weight of each pair, or None.
    """
    out_labels = torch.full((N, top_k), -1, dtype=torch.int32, device=device)
    out_weights = torch.zeros(N, top_k, device=device)
    if uniq is None or uniq.shape[0] == 0:
        return out_labels, out_weights
    # sort by gaussian asc, weight desc, label asc (unique already sorted by label)
    order_w = torch.sort(-total, stable=True).indices
    order_g = order_w[torch.sort(uniq[order_w, 0], stable=True).indices]
    g_sorted = uniq[order_g, 0]
    first = torch.searchsorted(g_sorted, g_sorted, right=False)
    rank = torch.arange(g_sorted.shape[0], device=device) - first
    sel = rank < top_k
    out_labels[g_sorted[sel], rank[sel]] = uniq[order_g[sel], 1].to(torch.int32)
    out_weights[g_sorted[sel], rank[sel]] = total[order_g[sel]]
    return out_labels, out_weights

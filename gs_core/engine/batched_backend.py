"""The torch reference batched over tiles: the traces of the CUDA path, and its render without gsplat.

:mod:`.torch_backend` forms one tile's (pixel, Gaussian) weights at a time, a dozen small ops per
tile: readable, but on a GPU a garden view is some ten thousand kernel launches. Here tiles of
similar list length (the same power of two) are padded to one block [B tiles, S pixel slots,
L Gaussians] and run through the same formulas (:func:`.torch_backend.alpha_at`,
:func:`.torch_backend.composite`, :func:`.torch_backend.top_k_histogram`), so a view costs a few
dozen large ops, any device. Padded Gaussians and pixels get alpha 0, which leaves every product
and sum unchanged. Memory per block is bounded by ``pair_budget`` (pixel, Gaussian) pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from .projection import Projection
from .torch_backend import alpha_at, composite, top_k_histogram

DIFFERENTIABLE = True  # plain torch ops: autograd gives every gradient
PAIR_BUDGET = {"cuda": 1 << 26, "cpu": 1 << 22}  # (pixel, Gaussian) pairs per block: ~30 bytes each


def pair_budget(device: torch.device) -> int:
    return PAIR_BUDGET.get(device.type, PAIR_BUDGET["cpu"])


@dataclass
class _Block:
    """Tiles of one block: their Gaussians front to back and their pixels, padded."""

    gids: Tensor  # [B, L] int64 Gaussian ids (0 where padded)
    gvalid: Tensor  # [B, L] bool
    rows: Tensor  # [B, S] int64 pixel rows (0 where padded)
    pvalid: Tensor  # [B, S] bool

    def weights(self, proj: Projection, pixels: Tensor, keep: Tensor | None = None):
        """alpha [B, S, L] and w [B, S, L] (0 where padded or terminated), final T [B, S]."""
        xy = pixels[self.rows].to(proj.means2d.dtype) + 0.5  # [B, S, 2]
        alpha = alpha_at(proj, self.gids[:, None, :], xy[..., 0:1], xy[..., 1:2])
        ok = self.pvalid if keep is None else self.pvalid & keep
        alpha = torch.where(ok[:, :, None] & self.gvalid[:, None, :], alpha, torch.zeros_like(alpha))
        return composite(alpha)


def _blocks(proj: Projection, order: Tensor, offsets: Tensor, budget: int) -> Iterator[_Block]:
    """Tiles that have both pixels and Gaussians, grouped by ceil(log2(list length)), in blocks of at
    most ``budget`` padded pairs (at least one tile)."""
    dev = order.device
    n_pix = offsets[1:] - offsets[:-1]  # [T]
    n_g = (proj.tile_offsets[1:] - proj.tile_offsets[:-1]).to(dev)
    tiles = torch.nonzero((n_pix > 0) & (n_g > 0)).squeeze(1)
    if tiles.numel() == 0:
        return
    tiles = tiles[torch.sort(n_g[tiles], stable=True).indices]
    lengths = n_g[tiles]
    bucket = torch.ceil(torch.log2(lengths.double())).long()  # 1 -> 0, 2 -> 1, 3..4 -> 2, ...
    edges = torch.nonzero(bucket[1:] != bucket[:-1]).squeeze(1) + 1
    bounds = [0, *edges.tolist(), tiles.numel()]
    S = int(n_pix[tiles].max())
    flat_ids = proj.flat_ids.to(dev).long()
    g_start = proj.tile_offsets.to(dev)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        L = int(lengths[hi - 1])
        step = max(1, budget // (S * L))
        for b0 in range(lo, hi, step):
            tb = tiles[b0:min(hi, b0 + step)]
            ar_l = torch.arange(L, device=dev)
            gvalid = ar_l[None] < n_g[tb, None]
            gidx = torch.where(gvalid, g_start[tb, None] + ar_l[None], torch.zeros_like(gvalid, dtype=torch.long))
            gids = torch.where(gvalid, flat_ids[gidx], torch.zeros_like(gidx))
            ar_s = torch.arange(S, device=dev)
            pvalid = ar_s[None] < n_pix[tb, None]
            pidx = torch.where(pvalid, offsets[tb, None] + ar_s[None], torch.zeros_like(pvalid, dtype=torch.long))
            rows = torch.where(pvalid, order[pidx], torch.zeros_like(pidx))
            yield _Block(gids, gvalid, rows, pvalid)


def rasterize(proj: Projection, features: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor):
    """features [N, D] -> (features [P, D], alpha [P], depth [P]) at ``pixels`` [P, 2]; autograd
    reaches ``features`` and every tensor of ``proj``.

    Args:
        features: [N, D] one feature row per Gaussian.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    P, D = pixels.shape[0], features.shape[1]
    parts, alphas, depths, part_rows = [], [], [], []
    for blk in _blocks(proj, order, offsets, pair_budget(features.device)):
        _, w, T_final = blk.weights(proj, pixels)  # [B, S, L]
        parts.append(torch.einsum("bsl,bld->bsd", w, features[blk.gids])[blk.pvalid])
        depths.append(torch.einsum("bsl,bl->bs", w, proj.depths[blk.gids])[blk.pvalid])
        alphas.append((1.0 - T_final)[blk.pvalid])
        part_rows.append(blk.rows[blk.pvalid])
    out, alpha_out, depth_out = features.new_zeros(P, D), features.new_zeros(P), features.new_zeros(P)
    if parts:  # one scatter each (autograd-friendly)
        rows = (torch.cat(part_rows),)
        out = out.index_put(rows, torch.cat(parts))
        alpha_out = alpha_out.index_put(rows, torch.cat(alphas).to(alpha_out))
        depth_out = depth_out.index_put(rows, torch.cat(depths).to(depth_out))
    return out, alpha_out, depth_out


def trace(proj: Projection, values: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor, power: int):
    """values [P, D] -> ``sum_p w^k v_p`` [N, D], ``sum_p w^k`` [N], ``sum_p alpha`` [N], hits [N].

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
    for blk in _blocks(proj, order, offsets, pair_budget(dev)):
        alpha, w, _ = blk.weights(proj, pixels)
        wk = (w if power == 1 else w * w).float()
        g = blk.gids[blk.gvalid]
        acc.index_add_(0, g, torch.einsum("bsl,bsd->bld", wk, values[blk.rows])[blk.gvalid])
        wsum.index_add_(0, g, wk.sum(1)[blk.gvalid])
        asum.index_add_(0, g, alpha.sum(1).float()[blk.gvalid])
        hits.index_add_(0, g, (w > 0).sum(1, dtype=torch.int32)[blk.gvalid])
    return acc, wsum, asum, hits


def trace_labels(proj: Projection, labels: Tensor, pixels: Tensor, order: Tensor, offsets: Tensor,
                 power: int, top_k: int):
    """labels [P] int (negative = ignore) -> per-Gaussian top-k label histogram, as
    :func:`.torch_backend.trace_labels` returns it.

    Args:
        labels: [P] int, one label per pixel of ``pixels``; negative = ignored.
        pixels: [P, 2] int64 pixel rows (x, y).
        order: [P] int64 the rows of ``pixels`` tile by tile (``group_pixels_by_tile``).
        offsets: [T + 1] int64, T = tiles_x * tiles_y: tile t owns ``order[offsets[t]:offsets[t + 1]]``.
    """
    N = proj.num_gaussians
    dev = pixels.device
    wsum = torch.zeros(N, device=dev)
    asum = torch.zeros(N, device=dev)
    hits = torch.zeros(N, dtype=torch.int32, device=dev)
    keys, vals = [], []
    for blk in _blocks(proj, order, offsets, pair_budget(dev)):
        lab = labels[blk.rows].long()  # [B, S]
        alpha, w, _ = blk.weights(proj, pixels, keep=lab >= 0)
        wk = (w if power == 1 else w * w).float()
        b, s, l = torch.nonzero(wk > 0, as_tuple=True)
        key = (blk.gids[b, l] << 32) | lab[b, s]  # (gaussian, label) packed; labels are >= 0 here
        uniq, inv = torch.unique(key, return_inverse=True)  # reduce in the block: few keys survive
        keys.append(uniq)
        vals.append(torch.zeros(uniq.shape[0], device=dev).index_add_(0, inv, wk[b, s, l]))
        g = blk.gids[blk.gvalid]
        wsum.index_add_(0, g, wk.sum(1)[blk.gvalid])
        asum.index_add_(0, g, alpha.sum(1).float()[blk.gvalid])
        hits.index_add_(0, g, (w > 0).sum(1, dtype=torch.int32)[blk.gvalid])
    if not keys:
        return top_k_histogram(None, None, N, top_k, dev) + (wsum, asum, hits)
    uniq, inv = torch.unique(torch.cat(keys), return_inverse=True)  # sorted by (gaussian, label)
    total = torch.zeros(uniq.shape[0], device=dev).index_add_(0, inv, torch.cat(vals))
    pairs = torch.stack([uniq >> 32, uniq & 0xFFFFFFFF], dim=1)
    return top_k_histogram(pairs, total, N, top_k, dev) + (wsum, asum, hits)

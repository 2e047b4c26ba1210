"""Instance patches (Trace3D Sec. 3.2): a view's overlapping masks cut into disjoint pieces.

Pixels covered by the same set of masks form one patch; pixels no mask covers get none (-1). The
patch -> masks membership is kept, so the masks' hierarchy (a part inside its object inside its
group) survives: a patch covered by masks {part, object, group} can be regrouped into any of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_MIN_AREA = 96  # released code: masks of at most 96 px dropped ...
REFERENCE_PIXELS = 1_000_000  # ... at about 1 megapixel


def scaled_min_area(height: int, width: int) -> int:
    """The released code's minimum mask area scaled with the image area (at least 1 px)."""
    return max(1, int(round(REFERENCE_MIN_AREA * height * width / REFERENCE_PIXELS)))


@dataclass
class InstancePatches:
    """The disjoint patches of one view."""

    patch_map: np.ndarray  # [H, W] int16 patch id (int32 past 32766 patches: patch_dtype), -1 = no mask covers the pixel
    membership: np.ndarray  # [p, M] bool: mask m covers patch j
    areas: np.ndarray  # [p] int64 pixels per patch
    kept_masks: np.ndarray  # [M] int64: index of each membership column in the input stack

    @property
    def num_patches(self) -> int:
        return len(self.areas)

    def mask_patches(self, m: int) -> np.ndarray:  # -> [k] patch ids making up kept mask m
        return np.flatnonzero(self.membership[:, m])

    def roots(self) -> np.ndarray:  # -> [p] int64
        """Each patch's root: the kept mask of largest area covering it (ties: the first in the
        stack). Two patches with one root lie inside one mask of the view (a part and its object,
        two objects and their group); two with different roots are cut apart at every level the
        view's masks give."""
        if self.num_patches == 0:
            return np.zeros(0, np.int64)
        mask_area = self.membership.T.astype(np.int64) @ self.areas  # [M] pixels per kept mask
        order = np.argsort(-mask_area, kind="stable")  # largest first
        return order[np.argmax(self.membership[:, order], axis=1)].astype(np.int64)


RULES = ("cells", "finest")


def patch_dtype(num_patches: int) -> type:
    """The integer type of a view's patch ids (and of ``num_patches`` itself, the uncovered label of
    its trace): int16 while they fit, int32 past it. A patch map travels to a worker in every pass of
    GIT, so its bytes are half of int32's in the usual case."""
    return np.int16 if num_patches < np.iinfo(np.int16).max else np.int32


def make_patches(masks: np.ndarray, min_area: int | None = None, rule: str = "cells") -> InstancePatches:
    """Cut a mask stack ``masks`` [M, H, W] bool into disjoint patches (Trace3D Sec. 3.2).

    ``rule`` "cells" (Trace3D): pixels covered by the same set of masks form one patch. "finest":
    each pixel goes to the smallest mask covering it (SAM's hierarchy kept: a part inside its object
    cuts it, a coarser mask's edge does not), and a patch's membership lists the masks covering all
    of its pixels.
    Masks smaller than ``min_area`` pixels (default :func:`scaled_min_area`) are dropped first.
    Patch ids are dense and ordered by first pixel in raster order, so they are deterministic.

    Args:
        masks: [M, H, W] bool the view's mask stack.
    """
    if rule not in RULES:
        raise ValueError(f"patch rule must be one of {RULES}, got {rule!r}")
    masks = np.asarray(masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [M, H, W], got shape {masks.shape}")
    M, H, W = masks.shape
    if min_area is None:
        min_area = scaled_min_area(H, W)
    keep = np.flatnonzero(masks.reshape(M, -1).sum(1) >= min_area) if M else np.zeros(0, np.int64)
    masks = masks[keep]
    if len(keep) == 0:
        return InstancePatches(np.full((H, W), -1, patch_dtype(0)), np.zeros((0, 0), bool), np.zeros(0, np.int64), keep)
    if rule == "finest":
        return _finest(masks, keep)
    bits = np.packbits(masks.reshape(len(keep), -1), axis=0)  # [ceil(M/8), H*W] uint8
    keys = np.ascontiguousarray(bits.T).view(np.dtype((np.void, bits.shape[0]))).ravel()  # [H*W]
    covered = masks.any(axis=0).ravel()
    uniq, first, inverse = np.unique(keys[covered], return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # raster order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    patch = np.full(H * W, -1, patch_dtype(len(uniq)))
    patch[covered] = rank[inverse.ravel()]
    membership = np.unpackbits(uniq.view(np.uint8).reshape(len(uniq), -1), axis=1, count=len(keep))
    membership = membership[order].astype(bool)
    areas = np.bincount(patch[covered], minlength=len(uniq)).astype(np.int64)
    return InstancePatches(patch.reshape(H, W), membership, areas, keep)


def _finest(masks: np.ndarray, keep: np.ndarray) -> InstancePatches:
    """The "finest" rule of :func:`make_patches` on the kept masks ``masks`` [M, H, W] bool."""
    from .labelmaps import masks_to_labels  # the smallest covering mask per pixel

    M, H, W = masks.shape
    flat = masks.reshape(M, -1)
    label = masks_to_labels(masks).ravel()
    covered = label >= 0
    uniq, first, inverse = np.unique(label[covered], return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    patch = np.full(H * W, -1, patch_dtype(len(uniq)))
    patch[covered] = rank[inverse.ravel()]
    areas = np.bincount(patch[covered], minlength=len(uniq)).astype(np.int64)
    # membership: the masks covering every pixel of the patch
    inside = np.zeros((len(uniq), M), np.int64)
    for m in range(M):
        inside[:, m] = np.bincount(patch[covered & flat[m]], minlength=len(uniq))
    return InstancePatches(patch.reshape(H, W), inside == areas[:, None], areas, keep)

"""Which query learns which mask (paper Sec. "Matching Strategy").

* ID matching (Eq. 8): query ``i`` always predicts the instance with global id ``i`` (here: the id
  :func:`query_ids_by_area` gives it), so each query's target is one object across all views. The
  global ids come from the Trace3D core's consistent instance maps, in place of DEVA.
* Hungarian matching (Eq. 9-10, "IQGS-H"): per view, the assignment of queries to that view's masks
  minimising ``lambda_focal * focal + lambda_dice * dice`` (:func:`scipy.optimize.linear_sum_assignment`);
  needs no global ids.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from .losses import dice_cost, focal_cost


def query_ids_by_area(maps: list[np.ndarray], num_queries: int) -> np.ndarray:  # -> [Nq] int64, -1 = free
    """The global id each query stands for: ids by total pixel area over the views, largest first,
    so with fewer queries than ids the smallest ids go unlearnt.

    Args:
        maps: [V] of [H, W] int global id per pixel, -1 = none.
    """
    ids = np.concatenate([np.asarray(m).ravel() for m in maps]) if maps else np.zeros(0, np.int64)
    ids = ids[ids >= 0]
    out = np.full(num_queries, -1, np.int64)
    if ids.size:
        uniq, area = np.unique(ids, return_counts=True)
        ranked = uniq[np.argsort(-area, kind="stable")][:num_queries]
        out[:len(ranked)] = ranked
    return out


def id_matching(query_ids: np.ndarray, mask_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8: pairs (query, mask) with ``query_ids[query] == mask_ids[mask]``. Returns (queries [K], masks [K]).

    Args:
        query_ids: [Nq] int64 global id of each query, -1 = free.
        mask_ids: [M] global id of each mask.
    """
    lookup = {int(g): q for q, g in enumerate(query_ids) if g >= 0}
    pairs = [(lookup[int(g)], m) for m, g in enumerate(mask_ids) if int(g) in lookup]
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    q, m = np.array(pairs, np.int64).T
    return q, m


@torch.no_grad()
def hungarian_matching(logits: Tensor, targets: Tensor,  # [Nq, P], [M, P]
                       w_focal: float = 20.0, w_dice: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 9-10: the one-to-one assignment of queries to masks of least total cost. Returns
    (queries [K], masks [K]), K = min(Nq, M).

    Args:
        logits: [Nq, P] each query's mask logits at P pixels.
        targets: [M, P] in {0, 1}, the view's masks.
    """
    if targets.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cost = w_focal * focal_cost(logits, targets) + w_dice * dice_cost(logits, targets)
    q, m = linear_sum_assignment(cost.double().cpu().numpy())
    return q.astype(np.int64), m.astype(np.int64)

"""Which views get masks: a covering subset of a capture's cameras (issue 12 item 2).

SAM on every view of a 300-image capture is hours on a CPU, and neighbouring photos of a capture
see nearly the same thing. :func:`covering_views` picks ``n`` views spread over camera positions and
viewing directions by greedy farthest-point sampling (Gonzalez' 2-approximation of the k-centre
cover), so every skipped view has a chosen one nearby in both where it stands and where it looks.
"""

from __future__ import annotations

import numpy as np

from .camera import Camera


def pose_features(cameras: list[Camera]) -> np.ndarray:  # -> [V, 6]
    """Per camera: its position over the rig's scale (median distance to the rig's centre) and its
    unit viewing direction; Euclidean distance between rows mixes the two on comparable scales."""
    pos = np.stack([c.position for c in cameras])  # [V, 3]
    look = np.stack([c.camera_to_world[:3, 2] for c in cameras])  # [V, 3] camera +z in world
    look /= np.linalg.norm(look, axis=1, keepdims=True)
    scale = float(np.median(np.linalg.norm(pos - pos.mean(0), axis=1)))
    return np.concatenate([pos / max(scale, 1e-9), look], axis=1)


def covering_views(cameras: list[Camera], n: int) -> list[int]:
    """Indices (ascending) of ``n`` views covering ``cameras``: the first is the view nearest the
    mean pose, each next one the view farthest from all chosen so far."""
    if n < 1:
        raise ValueError(f"need at least one view, got {n}")
    if n >= len(cameras):
        return list(range(len(cameras)))
    f = pose_features(cameras)
    chosen = [int(np.argmin(np.linalg.norm(f - f.mean(0), axis=1)))]
    dist = np.linalg.norm(f - f[chosen[0]], axis=1)
    while len(chosen) < n:
        k = int(np.argmax(dist))
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(f - f[k], axis=1))
    return sorted(chosen)


def cover_radius(cameras: list[Camera], chosen: list[int]) -> float:
    """The largest pose distance from any view to its nearest chosen view (what the cover leaves out)."""
    f = pose_features(cameras)
    d = np.linalg.norm(f[:, None] - f[None, chosen], axis=2)
    return float(d.min(1).max())


def views_for_budget(seconds_per_view: float, budget_seconds: float, total: int, minimum: int = 8) -> int:
    """How many views the mask budget affords: at least ``minimum`` (or all there are)."""
    affordable = int(budget_seconds // max(seconds_per_view, 1e-9))
    return int(min(total, max(minimum, affordable)))

"""Shared pieces of the scene-format tests: the fixtures' folder, in-range random scenes, and the
comparisons each format's stated precision is checked with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gs_core.scene import GaussianScene

DATA = Path(__file__).parent / "data"


def in_range_scene(n: int = 500, degree: int = 3, seed: int = 0, kind: str = "3dgs", extent: float = 5.0) -> GaussianScene:
    """Splats whose values every format can hold: SH rest in [-0.95, 0.95], colours inside [0, 1],
    log-scales in [-9, 5], unit quaternions."""
    rng = np.random.default_rng(seed)
    f = np.float32
    q = rng.standard_normal((n, 4))
    return GaussianScene(
        means=rng.uniform(-extent, extent, (n, 3)).astype(f),
        quats=(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(f),
        log_scales=rng.uniform(-9, 5, (n, 3 if kind == "3dgs" else 2)).astype(f),
        opacity_logits=rng.uniform(-5, 5, n).astype(f),
        sh_dc=rng.uniform(-1.7, 1.7, (n, 3)).astype(f),
        sh_rest=rng.uniform(-0.95, 0.95, (n, (degree + 1) ** 2 - 1, 3)).astype(f),
    )


def rotation_angle_deg(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Angle of the rotation between quaternions [N, 4] (either sign), in degrees."""
    a = q1 / np.linalg.norm(q1, axis=1, keepdims=True)
    b = q2 / np.linalg.norm(q2, axis=1, keepdims=True)
    return np.degrees(2 * np.arccos(np.clip(np.abs(np.einsum("ij,ij->i", a, b)), 0, 1)))


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(a) else 0.0

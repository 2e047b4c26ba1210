"""Tiny planted scenes for the Trace3D tests, made in milliseconds: flat squares of splats with a
known owner, cameras around them, masks rendered from the ground truth."""

from __future__ import annotations

import numpy as np

from gs_core.camera import Camera
from gs_core.engine import project
from gs_core.labelmaps import render_labels
from gs_core.scene import SH_C0, GaussianScene
from gs_core.splat_transform import quats_from_matrices


def square(centre, u=(1, 0, 0), v=(0, 1, 0), half: float = 0.2, spacing: float = 0.05) -> np.ndarray:
    """Points [K, 3] on a square of side ``2 * half`` spanned by ``u``, ``v`` around ``centre``."""
    t = np.arange(-half, half + 1e-9, spacing)
    a, b = np.meshgrid(t, t, indexing="ij")
    return np.asarray(centre, float) + a.reshape(-1, 1) * np.asarray(u, float) + b.reshape(-1, 1) * np.asarray(v, float)


def make_scene(means: np.ndarray, scale, *, kind: str = "3dgs", opacity=0.95, colors=None,
               normal=(0.0, 0.0, 1.0)) -> GaussianScene:
    """Isotropic (3DGS) or flat (2DGS, lying in the plane orthogonal to ``normal``) splats."""
    means = np.asarray(means, np.float64)
    n = len(means)
    nrm = np.asarray(normal, float) / np.linalg.norm(normal)
    helper = np.array([1.0, 0, 0]) if abs(nrm[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(helper, nrm)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(nrm, e1)
    rot = np.stack([e1, e2, nrm], axis=1)  # local -> world, local z = the normal
    quats = np.repeat(quats_from_matrices(rot[None]), n, axis=0)
    s = np.broadcast_to(np.asarray(scale, float), (n,))
    log_scales = np.log(np.repeat(s[:, None], 2 if kind == "2dgs" else 3, axis=1))
    o = np.clip(np.broadcast_to(np.asarray(opacity, float), (n,)), 1e-4, 1 - 1e-4)
    if colors is None:
        colors = np.random.default_rng(n).uniform(0.1, 0.9, (n, 3))
    return GaussianScene(means=means.astype(np.float32), quats=quats.astype(np.float32),
                         log_scales=log_scales.astype(np.float32),
                         opacity_logits=np.log(o / (1 - o)).astype(np.float32),
                         sh_dc=((np.asarray(colors, float) - 0.5) / SH_C0).astype(np.float32),
                         sh_rest=np.zeros((n, 0, 3), np.float32))


def cat_scenes(*scenes: GaussianScene) -> GaussianScene:

    out = scenes[0]
    for s in scenes[1:]:
        out = out.concat(s)
    return out


def cam(eye, target=(0.0, 0.0, 0.0), name: str = "", width: int = 64, height: int = 48, up=(0.0, 0.0, 1.0),
        fov: float = 60.0) -> Camera:
    return Camera.look_at(eye, target, up, fov_x_deg=fov, width=width, height=height, name=name)


def owner_map(scene: GaussianScene, owner: np.ndarray, camera: Camera) -> np.ndarray:
    """[H, W] the owner rendered on top at each pixel (-1 background)."""
    return render_labels(project(scene.to_gaussians(), camera), owner)


def gt_masks(scene: GaussianScene, owner: np.ndarray, camera: Camera, min_pixels: int = 4):
    """Clean masks of one view, one per owner showing at least ``min_pixels`` px: (masks [M, H, W], owners)."""
    lm = owner_map(scene, owner, camera)
    ids = [int(o) for o in np.unique(lm[lm >= 0]) if (lm == o).sum() >= min_pixels]
    return np.stack([lm == o for o in ids]) if ids else np.zeros((0, *lm.shape), bool), ids

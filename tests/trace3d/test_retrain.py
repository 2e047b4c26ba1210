"""Density control's retraining mode: a Gaussian straddling a colour boundary, split in two, has
children that retraining moves to the two sides and gives the two sides' colours."""

import numpy as np
import pytest
import torch

from gs_core.camera import Camera
from gs_core.engine import project, render
from gs_core.refine import RefineConfig, SceneParameters, refine
from gs_core.scene import SH_C0, GaussianScene
from gs_core.trace3d.density import DensityConfig, split_gaussians

RED, BLUE = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.1, 0.9])


def wall(strip: bool) -> GaussianScene:
    """A wall in the plane y = 0 of small round splats, red for x < 0 and blue for x > 0. Without
    ``strip`` the splats of |x| < 0.2 are replaced by one wide grey splat straddling the boundary
    (the last row)."""
    xs, zs = np.meshgrid(np.linspace(-0.95, 0.95, 39), np.linspace(-0.5, 0.5, 21))
    means = np.stack([xs.ravel(), np.zeros(xs.size), zs.ravel()], 1)
    colors = np.where(means[:, :1] < 0, RED, BLUE)
    log_scales = np.tile(np.log([0.035, 0.005, 0.035]), (len(means), 1))
    if not strip:
        keep = np.abs(means[:, 0]) > 0.2
        means, colors, log_scales = means[keep], colors[keep], log_scales[keep]
        means = np.vstack([means, [[0.0, 0.0, 0.0]]])
        colors = np.vstack([colors, [[0.5, 0.1, 0.5]]])
        log_scales = np.vstack([log_scales, np.log([[0.12, 0.005, 0.3]])])
    n = len(means)
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    return GaussianScene(means.astype(np.float32), quats.astype(np.float32), log_scales.astype(np.float32),
                         np.full(n, 4.0, np.float32), ((colors - 0.5) / SH_C0).astype(np.float32),
                         np.zeros((n, 0, 3), np.float32))


def views() -> list[Camera]:
    return [Camera.look_at((x, -2.0, z), (0.0, 0.0, 0.0), fov_x_deg=45, width=48, height=32, name=f"v{i}")
            for i, (x, z) in enumerate([(0.0, 0.0), (0.4, 0.2), (-0.4, -0.2), (0.2, -0.3)])]


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured: after 150 steps the children sit at x = -0.027 and +0.034 "
                   "(started at -0.04, +0.04) and 0.03 behind the wall: retraining does not pull them out to "
                   "their sides in this scene (issue 14, not resolved)")
def test_split_children_move_to_their_sides_under_retraining():
    cams = views()
    truth = SceneParameters(wall(strip=True))
    with torch.no_grad():
        photos = [render(project(truth.gaussians(), c), truth.colors(c)).features.numpy() for c in cams]
    scene = wall(strip=False)
    parent = len(scene) - 1
    # children a third of the parent's std apart on either side (Trace3D samples them from the
    # parent's density); retraining has to pull them out to their sides and give them their colours
    offsets = np.array([[[-0.04, 0.0, 0.0], [0.04, 0.0, 0.0]]])
    scene = split_gaussians(scene, np.array([parent]), offsets, np.array([[0.5, 0.5]]), DensityConfig())
    a, b = len(scene) - 2, len(scene) - 1
    assert -0.05 < scene.means[a, 0] < 0 < scene.means[b, 0] < 0.05
    out, report = refine(scene, cams, lambda k: photos[k],
                         RefineConfig(steps=150, lr_means=1.6e-3, lr_means_final=1.6e-4, backend="cpu"))
    assert report.psnr_after > report.psnr_before + 3
    color = out.base_colors
    assert out.means[a, 0] < -0.06 and out.means[b, 0] > 0.06, out.means[[a, b]]
    assert color[a, 0] > color[a, 2] + 0.3, color[a]  # red side
    assert color[b, 2] > color[b, 0] + 0.3, color[b]  # blue side

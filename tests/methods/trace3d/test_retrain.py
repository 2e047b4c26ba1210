"""Density control's retraining mode: a Gaussian straddling a colour boundary, split in two, has
children that retraining moves to the two sides and gives the two sides' colours; Adam's state of the
Gaussians that survive a split / prune round is carried into the next round."""

import numpy as np
import pytest
import torch

import gs_core.methods.trace3d.retrain as retrain_module
from gs_core.camera import Camera
from gs_core.engine import project, render
from gs_core.methods.trace3d import Trace3DConfig
from gs_core.refine import NAMES, RefineConfig, SceneParameters, adam_moments, refine
from gs_core.scene import SH_C0, GaussianScene
from gs_core.methods.trace3d.density import DensityConfig, split_gaussians
from gs_core.methods.trace3d.retrain import RetrainConfig, carry_moments

from test_density import straddle  # noqa: F401 (the fixture: a splat straddling two objects)

RED, BLUE = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.1, 0.9])


def two_strips(split: bool) -> GaussianScene:
    """A red strip (x < 0) and a blue strip (x > 0) of small round splats in the plane y = 0, 0.4 wide
    together, in front of a grey backdrop of the same splats at y = 0.3. With ``split`` the strips are
    replaced by one wide purple splat straddling the boundary (the last row)."""
    xs, zs = np.meshgrid(np.linspace(-0.2, 0.2, 9), np.linspace(-0.5, 0.5, 21))
    means = np.stack([xs.ravel(), np.zeros(xs.size), zs.ravel()], 1)
    colors = np.where(means[:, :1] < 0, RED, BLUE)
    log_scales = np.tile(np.log([0.035, 0.005, 0.035]), (len(means), 1))
    if split:
        means, colors, log_scales = np.zeros((1, 3)), np.array([[0.5, 0.1, 0.5]]), np.log([[0.12, 0.005, 0.3]])
    bx, bz = np.meshgrid(np.linspace(-0.95, 0.95, 39), np.linspace(-0.6, 0.6, 25))
    backdrop = np.stack([bx.ravel(), np.full(bx.size, 0.3), bz.ravel()], 1)
    means = np.vstack([backdrop, means])
    colors = np.vstack([np.full((len(backdrop), 3), 0.3), colors])
    log_scales = np.vstack([np.tile(np.log([0.035, 0.005, 0.035]), (len(backdrop), 1)), log_scales])
    n = len(means)
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    return GaussianScene(means.astype(np.float32), quats.astype(np.float32), log_scales.astype(np.float32),
                         np.full(n, 4.0, np.float32), ((colors - 0.5) / SH_C0).astype(np.float32),
                         np.zeros((n, 0, 3), np.float32))


def views() -> list[Camera]:
    return [Camera.look_at((x, -2.0, z), (0.0, 0.0, 0.0), fov_x_deg=45, width=48, height=32, name=f"v{i}")
            for i, (x, z) in enumerate([(0.0, 0.0), (0.4, 0.2), (-0.4, -0.2), (0.2, -0.3)])]


# Measured (400 steps, on the shared machine): children at x = -0.115 / +0.118, colours (0.80, 0.10,
# 0.19) / (0.27, 0.09, 0.75), train PSNR 15.3 -> 25.1 dB. The assertions leave about half of that.
# An earlier version of this test had the strips inside a red / blue wall (a strict xfail): there the
# wall's own splats next to the gap repaired it (after 1000 steps they had moved in from |x| = 0.25 to
# 0.155 and widened from x std 0.035 to 0.078; 43.4 dB with the children, 42.9 without them) while one
# child faded (opacity 0.98 -> 0.11) and the other slid behind (y +0.055), at x = -0.032 / +0.006. The
# children's colours could not win that race: Adam moves a colour by at most lr_sh_dc * C0 = 7e-4 per
# step (0.11 in 150 steps; the assertion needs a 0.3 red-blue gap). Gradients were right (cpu = torch
# reference = finite differences) and Trace3D's split (scale / 2) did the same. Here only the children
# can paint the strips.
@pytest.mark.slow
def test_split_children_move_to_their_sides_under_retraining():
    cams = views()
    truth = SceneParameters(two_strips(split=False))
    with torch.no_grad():
        photos = [render(project(truth.gaussians(), c), truth.colors(c)).features.numpy() for c in cams]
    scene = two_strips(split=True)
    parent = len(scene) - 1
    # children a third of the parent's std apart on either side (Trace3D samples them from the
    # parent's density); retraining has to pull them out to their sides and give them their colours
    offsets = np.array([[[-0.04, 0.0, 0.0], [0.04, 0.0, 0.0]]])
    scene = split_gaussians(scene, np.array([parent]), offsets, np.array([[0.5, 0.5]]), DensityConfig())
    a, b = len(scene) - 2, len(scene) - 1
    assert -0.05 < scene.means[a, 0] < 0 < scene.means[b, 0] < 0.05
    out, report = refine(scene, cams, lambda k: photos[k],
                         RefineConfig(steps=400, lr_means=1.6e-3, lr_means_final=1.6e-4, backend="cpu"))
    assert report.psnr_after > report.psnr_before + 3
    color = out.base_colors
    # the strips' centres are at x = -0.125 and +0.1: each child ends past the middle of its side
    assert out.means[a, 0] < -0.06 and out.means[b, 0] > 0.06, out.means[[a, b]]
    assert color[a, 0] > color[a, 2] + 0.3, color[a]  # red side
    assert color[b, 2] > color[b, 0] + 0.3, color[b]  # blue side


def test_carry_moments_keeps_survivors_and_zeroes_children():
    gen = torch.Generator().manual_seed(0)
    moments = {"means": {"step": torch.tensor(7.0), "exp_avg": torch.randn(5, 3, generator=gen),
                         "exp_avg_sq": torch.rand(5, 3, generator=gen)}}
    # rows 0, 2, 4 survive (4 moved up), row 1 pruned, row 3 split into the last two rows
    source, children = np.array([0, 2, 4, 3, 3]), np.array([False, False, False, True, True])
    out = carry_moments(moments, source, children)["means"]
    assert float(out["step"]) == 7.0
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(out[k][:3], moments["means"][k][[0, 2, 4]], rtol=0, atol=0)
        assert (out[k][3:] == 0).all()


def test_retraining_carries_adam_state_of_survivors_across_rounds(straddle, monkeypatch):
    """Round 2 starts Adam from round 1's final state for every surviving Gaussian (matched through the
    split / prune's row map), zero for children, with the step count going on."""
    scene, cams, patches, inst = straddle
    g = scene.to_gaussians()
    colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
    photos = [render(project(g, c), colors).features.numpy() for c in cams]
    calls = []
    real = retrain_module.refine

    def spy(scene, cameras, images, config, *, on_step=None, moments=None, **kwargs):
        record = {"given": moments, "final": None}
        calls.append(record)

        def step(s, params, opt):
            on_step(s, params, opt)
            if s == config.steps:
                record["final"] = adam_moments(opt, params)

        return real(scene, cameras, images, config, on_step=step, moments=moments, **kwargs)

    monkeypatch.setattr(retrain_module, "refine", spy)
    steps = 3
    _, report, _ = retrain_module.retrain(scene, cams, inst, patches, lambda k: photos[k], DensityConfig(),
                                          RetrainConfig(rounds=2, steps=steps, refine=RefineConfig(backend="cpu")),
                                          Trace3DConfig(density=None), backend="cpu")
    assert len(calls) == 2 and calls[0]["given"] is None and report.density[0].split >= 1
    d, given, final = report.density[1], calls[1]["given"], calls[0]["final"]
    survivors = ~d.children
    assert survivors.sum() > 100
    for name in NAMES:
        assert int(given[name]["step"]) == steps
        for k in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(given[name][k][survivors], final[name][k][d.source_rows[survivors]],
                                       rtol=0, atol=0)
            assert (given[name][k][d.children] == 0).all()
    # the carried state is not trivially zero: round 1 moved the Gaussians around the split
    assert float(final["means"]["exp_avg_sq"].abs().sum()) > 0

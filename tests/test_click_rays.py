"""click_rays: a click's Gaussians and weights in numpy agree with the engine's torch reference run in
float64 (the same formulas; only the order of float64 operations differs), pixel for pixel."""

import numpy as np
import pytest
import torch

from gs_core import click_rays
from gs_core.camera import Camera
from gs_core.engine import project
from gs_core.engine.gaussians import Gaussians
from gs_core.engine.torch_backend import tile_weights
from gs_core.errors import UserError
from gs_core.scene import GaussianScene


def _scene(n: int, seed: int, kind: str = "3dgs") -> GaussianScene:
    rng = np.random.default_rng(seed)
    f = np.float32
    return GaussianScene(
        means=rng.uniform(-1.5, 1.5, (n, 3)).astype(f),  # some behind the near plane of close cameras
        quats=rng.standard_normal((n, 4)).astype(f),
        log_scales=rng.uniform(-4.0, -1.0, (n, 3 if kind == "3dgs" else 2)).astype(f),
        opacity_logits=rng.uniform(-3.0, 5.0, n).astype(f),
        sh_dc=rng.standard_normal((n, 3)).astype(f), sh_rest=np.zeros((n, 0, 3), f),
        normals=np.zeros((n, 3), f))


def _reference(scene: GaussianScene, cam: Camera, pixels: np.ndarray) -> np.ndarray:  # [P, N] float64
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    g = Gaussians(means=t(scene.means), quats=torch.nn.functional.normalize(t(scene.quats), dim=-1),
                  scales=torch.exp(t(scene.log_scales)), opacities=torch.sigmoid(t(scene.opacity_logits)), kind="3dgs")
    proj = project(g, cam, backend="torch")
    assert proj.means2d.dtype == torch.float64
    rows = np.zeros((len(pixels), len(scene)))
    for p, (x, y) in enumerate(pixels):  # the reference's blend of the pixel's tile, at that pixel
        tile = (y // proj.tile_size) * proj.tiles_x + x // proj.tile_size
        gids, _, w, _ = tile_weights(proj, int(tile), torch.tensor([x]), torch.tensor([y]))
        rows[p, gids.numpy()] = w[0].numpy()
    return rows


@pytest.mark.parametrize("eye", [(0.0, -4.0, 0.3), (2.5, 2.0, 1.0), (0.0, -1.2, 0.0)])
def test_weights_match_the_torch_reference_in_float64(eye):
    scene = _scene(400, seed=int(10 * abs(eye[0]) + 3))
    cam = Camera.look_at(eye, (0, 0, 0), fov_x_deg=70, width=40, height=30)
    ys, xs = np.mgrid[0:cam.height, 0:cam.width]
    pixels = np.stack([xs.ravel(), ys.ravel()], 1)
    ref = _reference(scene, cam, pixels)
    got = click_rays.pixel_weights(scene, cam, pixels)
    assert sum(len(i) for i, _ in got) > 2 * len(pixels)  # pixels see several Gaussians each
    for p, (ids, w) in enumerate(got):
        want = np.flatnonzero(ref[p] > 0)
        np.testing.assert_array_equal(ids, want)
        # float64 on both sides, the operations reordered: ~1e-15 relative; w is rounded to float32 at the
        # end (2^-24 relative), so a fixed ceiling of 1e-6 relative leaves a wide margin
        np.testing.assert_allclose(w, ref[p, want], rtol=1e-6, atol=0)


def test_pixels_outside_and_2dgs():
    scene = _scene(10, 0)
    cam = Camera.look_at((0, -4, 0), (0, 0, 0), width=20, height=10)
    with pytest.raises(UserError, match=r"pixel \(20, 3\) is outside the 20x10 view"):
        click_rays.pixel_weights(scene, cam, np.array([[1, 1], [20, 3]]))
    with pytest.raises(ValueError, match="2DGS"):
        click_rays.pixel_weights(_scene(10, 0, "2dgs"), cam, np.array([[1, 1]]))


def test_limit_hands_huge_splats_to_the_engine():
    scene = _scene(300, 5)
    cam = Camera.look_at((0, -4, 0.3), (0, 0, 0), width=40, height=30)
    assert click_rays.pixel_weights(scene, cam, np.array([[20, 15]]), limit=len(scene)) is not None
    scene.log_scales[:] = 3.0  # every splat larger than the view: all may reach any pixel
    assert click_rays.pixel_weights(scene, cam, np.array([[20, 15]]), limit=len(scene) - 1) is None

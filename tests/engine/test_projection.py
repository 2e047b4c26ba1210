"""Projection and tile binning against gsplat's own torch reference functions (they import on CPU)."""

import pytest
import torch

from gs_core.engine import project
from gs_core.engine.projection import bin_tiles, frame_pixels, group_pixels_by_tile

from engine_scenes import camera, random_gaussians

gsplat_torch = pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat not installed")


def _cam_tensors(cam):
    return (torch.tensor(cam.world_to_camera, dtype=torch.float32)[None],
            torch.tensor(cam.K, dtype=torch.float32)[None])


def test_3dgs_projection_matches_gsplat():
    g = random_gaussians(300, "3dgs", seed=3)
    cam = camera(eye=(0.2, -1.2, 0.3))
    proj = project(g, cam)
    viewmat, K = _cam_tensors(cam)
    covars, _ = gsplat_torch._quat_scale_to_covar_preci(g.quats, g.scales, compute_preci=False)
    radii, means2d, depths, conics, _ = gsplat_torch._fully_fused_projection(
        g.means, covars, viewmat, K, cam.width, cam.height)
    assert proj.visible.sum() > 50 and (~proj.visible).sum() > 10  # both cases exercised
    assert torch.equal(proj.radii, radii[0])
    vis = proj.visible
    torch.testing.assert_close(proj.means2d[vis], means2d[0][vis], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(proj.conics[vis], conics[0][vis], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(proj.depths, depths[0])


def test_2dgs_projection_matches_gsplat():
    gsplat_2dgs = pytest.importorskip("gsplat.cuda._torch_impl_2dgs")
    g = random_gaussians(300, "2dgs", seed=4)
    cam = camera(eye=(0.2, -1.2, 0.3))
    proj = project(g, cam)
    viewmat, K = _cam_tensors(cam)
    radii, means2d, depths, M, _ = gsplat_2dgs._fully_fused_projection_2dgs(
        g.means, g.quats, g.scales, viewmat, K, cam.width, cam.height)
    assert torch.equal(proj.radii, radii[0])
    vis = proj.visible
    torch.testing.assert_close(proj.means2d[vis], means2d[0][vis], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(proj.ray_transforms[vis], M[0][vis], rtol=1e-5, atol=1e-4)


def test_tiles_match_gsplat_isect():
    g = random_gaussians(200, "3dgs", seed=5)
    cam = camera()
    proj = project(g, cam)
    tiles_x, tiles_y = proj.tiles_x, proj.tiles_y
    _, isect_ids, flatten_ids = gsplat_torch._isect_tiles(
        proj.means2d[None], proj.radii[None], proj.depths[None], 16, tiles_x, tiles_y)
    offsets = gsplat_torch._isect_offset_encode(isect_ids, 1, tiles_x, tiles_y)
    assert torch.equal(proj.tile_offsets[:-1].int(), offsets.flatten())
    assert torch.equal(proj.flat_ids.long(), flatten_ids.long())


def test_every_listed_gaussian_overlaps_its_tile():
    g = random_gaussians(300, "3dgs", seed=6)
    proj = project(g, camera())
    offsets, ids = bin_tiles(proj.means2d, proj.radii, proj.depths, proj.width, proj.height)
    for t in range(len(offsets) - 1):
        tx, ty = t % proj.tiles_x, t // proj.tiles_x
        gids = ids[offsets[t]:offsets[t + 1]].long()
        depths = proj.depths[gids]
        assert torch.all(depths[1:] >= depths[:-1]), "tile list must be front to back"
        lo = proj.means2d[gids] - proj.radii[gids]
        hi = proj.means2d[gids] + proj.radii[gids]
        assert torch.all(hi[:, 0] > tx * 16) and torch.all(lo[:, 0] < (tx + 1) * 16)
        assert torch.all(hi[:, 1] > ty * 16) and torch.all(lo[:, 1] < (ty + 1) * 16)


def test_behind_camera_is_culled():
    g = random_gaussians(50, "3dgs", seed=7)
    g.means[:] = torch.tensor([0.0, -5.0, 0.0])  # behind a camera at y=-3 looking at +y
    proj = project(g, camera())
    assert not proj.visible.any()
    assert proj.num_intersections == 0


def test_pixel_grouping_is_tile_major_and_row_sorted():
    """The native kernels cull by rows: pixels must come tile by tile, sorted by row in a tile.
    The cached full-frame grouping must equal the general one."""
    proj = project(random_gaussians(50, "3dgs", seed=2), camera(width=53, height=37))
    gen = torch.Generator().manual_seed(0)
    pix = torch.stack([torch.randint(0, 53, (500,), generator=gen), torch.randint(0, 37, (500,), generator=gen)], 1)
    order, offsets = group_pixels_by_tile(pix, proj)
    for t in range(offsets.shape[0] - 1):
        rows = pix[order[offsets[t]:offsets[t + 1]]]
        assert torch.all((rows[:, 1] // 16) * proj.tiles_x + rows[:, 0] // 16 == t)
        assert torch.all(rows[1:, 1] >= rows[:-1, 1])
    grid, frame_order, frame_offsets = frame_pixels(proj)
    ref_order, ref_offsets = group_pixels_by_tile(grid, proj)
    assert torch.equal(frame_order, ref_order) and torch.equal(frame_offsets, ref_offsets)

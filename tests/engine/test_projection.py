"""Projection and tile binning: the torch reference against gsplat's own torch reference functions
(they import on CPU), and the native projection against the torch reference."""

import pytest
import torch

from gs_core.bench.engine import GARDEN, garden_scene
from gs_core.engine import Gaussians, project
from gs_core.engine.projection import NEAR_PLANE, bin_tiles, frame_pixels, group_pixels_by_tile

from engine_scenes import (UNIT_ROUNDOFF, awkward_gaussians, camera, frustum_clamped, random_gaussians,
                           float32_camera)


@pytest.fixture(scope="module")
def gsplat_torch():
    return pytest.importorskip("gsplat.cuda._torch_impl", reason="gsplat not installed")


def _cam_tensors(cam):
    return (torch.tensor(cam.world_to_camera, dtype=torch.float32)[None],
            torch.tensor(cam.K, dtype=torch.float32)[None])


def test_3dgs_projection_matches_gsplat(gsplat_torch):
    g = random_gaussians(300, "3dgs", seed=3)
    cam = camera(eye=(0.2, -1.2, 0.3))
    proj = project(g, cam, backend="torch")
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


def test_2dgs_projection_matches_gsplat(gsplat_torch):
    gsplat_2dgs = pytest.importorskip("gsplat.cuda._torch_impl_2dgs")
    g = random_gaussians(300, "2dgs", seed=4)
    cam = camera(eye=(0.2, -1.2, 0.3))
    proj = project(g, cam, backend="torch")
    viewmat, K = _cam_tensors(cam)
    radii, means2d, depths, M, _ = gsplat_2dgs._fully_fused_projection_2dgs(
        g.means, g.quats, g.scales, viewmat, K, cam.width, cam.height)
    assert torch.equal(proj.radii, radii[0])
    vis = proj.visible
    torch.testing.assert_close(proj.means2d[vis], means2d[0][vis], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(proj.ray_transforms[vis], M[0][vis], rtol=1e-5, atol=1e-4)


def test_tiles_match_gsplat_isect(gsplat_torch):
    g = random_gaussians(200, "3dgs", seed=5)
    cam = camera()
    proj = project(g, cam, backend="torch")
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


# ---- the native projection (cuda/raster_cpu.cpp) against the torch reference ---------------------

SHAPE = {"3dgs": "conics", "2dgs": "ray_transforms"}


def _float64(g: Gaussians) -> Gaussians:
    return Gaussians(g.means.double(), g.quats.double(), g.scales.double(), g.opacities.double(), g.kind)


def _rows(t, mask):  # [N, ...] -> [n, k]
    return t[mask].reshape(int(mask.sum()), -1).double()


def _row_errors(a, ref):  # -> [n]
    """|a - ref| per row relative to the largest entry of its row (a conic or ray transform is one
    object; relative to each entry, entries that cancel to near zero would dominate)."""
    return ((a - ref).abs() / ref.abs().amax(1, keepdim=True).clamp_min(1e-30)).amax(1)


COND_FACTOR = 8  # as in test_backward: a float32 evaluation's few roundings per step, adding at random


def _covariance_cancellation(g: Gaussians, cam) -> torch.Tensor:  # -> [N]
    """How much forming the 2D covariance ``J (R S^2 R^T) J^T`` from its 3D one loses to cancellation:
    entries of size ``|J|^2 max(s)^2`` sum to a 2D covariance that is much smaller when a long splat
    is seen end on (relative rounding error: this ratio times u). Float64, with the projection's
    Jacobian at the unclamped centre and its eps2d low-pass."""
    t = _float64(g).means @ torch.from_numpy(cam.world_to_camera[:3, :3]).T + torch.from_numpy(cam.world_to_camera[:3, 3])
    x, y, z = t.unbind(-1)
    z = z.abs().clamp_min(1e-9)
    jacobian_sq = (cam.fx / z) ** 2 * (1 + (x / z) ** 2) + (cam.fy / z) ** 2 * (1 + (y / z) ** 2)  # |J|_F^2
    formed = jacobian_sq * g.scales.double().amax(-1) ** 2
    conics = project(_float64(g), cam).conics
    A, B, C = conics.unbind(-1)
    det = (A * C - B * B).clamp_min(1e-300)
    cov_max = torch.maximum(C / det, A / det)  # the inverse's diagonal: [[C, -B], [-B, A]] / det
    return (formed / cov_max.clamp_min(1e-300)).nan_to_num(0.0)


def _input_sensitivity(g: Gaussians, field: str, cam, vis) -> torch.Tensor:  # -> [n] row-relative
    """First-order worst case of rounding every Gaussian input to float32: per row of ``field``,
    ``max_c sum_j |d field_c / d x_j| |x_j| u`` relative to the row's largest entry (float64 autograd;
    rows depend only on their own Gaussian, so one backward per component gives every row)."""
    leaves = [t.double().clone().requires_grad_(True) for t in (g.means, g.quats, g.scales)]
    out = getattr(project(Gaussians(*leaves, g.opacities.double(), g.kind), cam), field)
    rows = out[vis].reshape(int(vis.sum()), -1)
    total = torch.zeros_like(rows)
    for c in range(rows.shape[1]):
        grads = torch.autograd.grad(rows[:, c].sum(), leaves, retain_graph=True, allow_unused=True)
        total[:, c] = sum((gr * x).abs().reshape(len(x), -1).sum(1)[vis] for gr, x in zip(grads, leaves)
                          if gr is not None)
    return (total.detach() * UNIT_ROUNDOFF).amax(1) / rows.detach().abs().amax(1).clamp_min(1e-30)


def _float32_row_bounds(g: Gaussians, cam, field: str, vis) -> torch.Tensor:  # -> [n]
    """What float32 evaluation may err by, per visible row of ``field`` (row-relative): COND_FACTOR
    times the sum of the first two, plus the third:
    * the first-order worst case of rounding the Gaussians' inputs (:func:`_input_sensitivity`),
    * u for rounding the result itself,
    * for 3DGS conics, the cancellations of forming the 2D covariance and of ``a c - b^2``, propagated
      (input roundings keep the covariance of its exact form, so they do not show these).
    ``cam`` is the float32-rounded camera the kernels receive (:func:`float32_camera`). From float64
    only: the same bound on every CPU."""
    ref = _rows(getattr(project(_float64(g), cam), field), vis)
    cancellation = torch.zeros(len(ref), dtype=torch.float64)
    if field == "conics":  # entries a, b, c err by eps; det = a c - b^2 by (|a c| + b^2)(2 u + 2 eps)
        A, B, C = ref.unbind(-1)  # the inverse's entries: the same products up to 1/det^2
        # J (R S)(R S)^T J^T: three chained 3-term products, each within gamma_3 of |J| |R S| |R S|^T |J|^T
        # (Higham, Sec. 3.5), which is at most |J|_F^2 max(s)^2; + eps2d and the output roundings
        entries = (9 * _covariance_cancellation(g, cam)[vis] + 3) * UNIT_ROUNDOFF
        det_growth = (A * C).abs().add(B * B) / (A * C - B * B).abs()
        cancellation = det_growth * (2 * UNIT_ROUNDOFF + 2 * entries) + entries
    sensitivity = _input_sensitivity(g, field, cam, vis)
    return COND_FACTOR * (sensitivity + UNIT_ROUNDOFF) + cancellation


def _on_tile_edge(proj, px: float = 1e-3):  # -> [N] bool
    """Gaussians whose extent ``means2d +- radii`` ends within ``px`` of a tile edge: which tiles
    they touch turns on the last bit of ``means2d``."""
    ts = proj.tile_size
    ends = torch.cat([proj.means2d - proj.radii, proj.means2d + proj.radii], 1)
    return ((ends - torch.round(ends / ts) * ts).abs() < px).any(1)


def _same_tile_lists(nat, ref):
    """Every tile lists the same Gaussians in both, apart from those with other radii or on a tile
    edge; returns how many Gaussians were left out. (The order within a tile follows each one's own
    depths, which differ in the last bit: bin_tiles of the native fields checks the native order.)"""
    skip = (nat.radii != ref.radii).any(1) | _on_tile_edge(nat) | _on_tile_edge(ref)

    def kept(p):  # sorted (tile, id) keys of the intersections kept
        ids = p.flat_ids.long()
        tiles = torch.repeat_interleave(torch.arange(len(p.tile_offsets) - 1), p.tile_offsets.diff())
        return torch.sort((tiles * len(skip) + ids)[~skip[ids]]).values

    assert torch.equal(kept(nat), kept(ref))
    return int(skip.sum())


@pytest.mark.parametrize("eye", [(0.2, -1.2, 0.3), (0.3, -3.0, 0.6)], ids=["inside", "outside"])
def test_native_matches_reference(kind, native, eye):
    """Same fields to float rounding on the awkward cases: Gaussians behind the camera, on the image
    border, far outside it but wide enough to reach in (the Jacobian's frustum clamp), degenerate
    scales, unnormalised quaternions. Yardstick: the float64 reference, each row within the float32
    bound derived from it (:func:`_float32_row_bounds`); the float32 reference's matmuls round
    differently from the kernel's sums, so the two float32 results are compared only loosely."""
    cam = camera(eye=eye)
    g = awkward_gaussians(kind, cam, seed=1)
    nat, ref = project(g, cam, backend="cpu"), project(g, cam, backend="torch")
    ref64 = project(_float64(g), float32_camera(cam))
    # the awkward cases are exercised
    vis = ref.visible
    clamped = vis & frustum_clamped(g, cam)
    outside = vis & ((ref.means2d < 0) | (ref.means2d > torch.tensor([cam.width, cam.height]))).any(1)
    assert clamped.sum() >= 3 and outside.sum() >= 10 and vis.sum() > 200
    if eye[1] > -2:
        assert (ref64.depths < NEAR_PLANE).sum() > 20
    # radii and visibility: equal (no ceil on a rounding boundary in these scenes)
    assert torch.equal(nat.radii, ref.radii)
    for field in ("means2d", "depths", SHAPE[kind]):
        a, r, r64 = (_rows(getattr(p, field), vis) for p in (nat, ref, ref64))
        errors, bounds = _row_errors(a, r64), _float32_row_bounds(g, float32_camera(cam), field, vis)
        worst = int((errors / bounds).argmax())
        assert (errors <= bounds).all(), (field, float(errors[worst]), float(bounds[worst]))
    # tile lists: the reference's on every Gaussian not on a tile edge (the border ones are placed on
    # one: a few), and exactly bin_tiles of the native fields
    assert _same_tile_lists(nat, ref) <= 10
    offsets, ids = bin_tiles(nat.means2d, nat.radii, nat.depths, cam.width, cam.height)
    assert torch.equal(nat.tile_offsets, offsets) and torch.equal(nat.flat_ids, ids)
    assert nat.num_intersections > 1000


def test_native_matches_reference_on_garden(native):
    """111k Gaussians, camera 0 of the benchmark: radii differ only where a ceil lands on a rounding
    boundary (<= 0.1% of the Gaussians, by 1), and the tile lists agree on every other Gaussian."""
    g, _, cams = garden_scene(GARDEN)
    cam = cams[0]
    nat, ref = project(g, cam, backend="cpu"), project(g, cam, backend="torch")
    differ = (nat.radii != ref.radii).any(1)
    assert int(differ.sum()) <= 0.001 * len(g)
    both = nat.visible & ref.visible & differ
    assert ((nat.radii - ref.radii)[both].abs() <= 1).all()
    assert torch.equal(nat.visible & ~differ, ref.visible & ~differ)
    vis = nat.visible & ref.visible
    assert vis.sum() > 50_000
    cam32 = float32_camera(cam)
    ref64 = project(_float64(g), cam32)
    for field in ("means2d", "depths", "conics"):  # each row within its float32 bound (float64 yardstick)
        errors = _row_errors(_rows(getattr(nat, field), vis), _rows(getattr(ref64, field), vis))
        bounds = _float32_row_bounds(g, cam32, field, vis)
        worst = int((errors / bounds).argmax())
        assert (errors <= bounds).all(), (field, float(errors[worst]), float(bounds[worst]))

    assert _same_tile_lists(nat, ref) <= 0.001 * len(g)
    offsets, ids = bin_tiles(nat.means2d, nat.radii, nat.depths, cam.width, cam.height)
    assert torch.equal(nat.tile_offsets, offsets) and torch.equal(nat.flat_ids, ids)
    assert nat.num_intersections > 400_000


def test_native_projection_is_deterministic(kind, native):
    """Bitwise the same fields and gradients on 1 and 2 threads (per-Gaussian work, tiles sorted by
    (depth, id) whichever thread wrote them)."""
    cam = camera(eye=(0.2, -1.2, 0.3))
    g = awkward_gaussians(kind, cam, seed=2)
    gen = torch.Generator().manual_seed(0)

    def run():
        leaves = [t.clone().requires_grad_(True) for t in (g.means, g.quats, g.scales)]
        p = project(Gaussians(*leaves, g.opacities, kind), cam, backend="cpu")
        shape = getattr(p, SHAPE[kind])
        loss = sum((t * torch.randn(t.shape, generator=gen.manual_seed(i))).sum()
                   for i, t in enumerate((p.means2d, p.depths, shape)))
        grads = torch.autograd.grad(loss, leaves)
        return [p.means2d, p.depths, p.radii, shape, p.tile_offsets, p.flat_ids, *grads]

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run()
        torch.set_num_threads(2)
        two = run()
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_backend_choice():
    g = random_gaussians(20, "3dgs", seed=0)
    with pytest.raises(ValueError, match="unknown backend"):
        project(g, camera(), backend="vulkan")
    with pytest.raises(ValueError, match="float32"):
        project(_float64(g), camera(), backend="cpu")
    assert project(_float64(g), camera()).means2d.dtype == torch.float64  # auto: the reference

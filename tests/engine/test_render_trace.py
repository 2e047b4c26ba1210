"""The engine's contract: backends agree, render and trace are adjoint, results match a brute-force
per-pixel composite, and the render of a constant equals alpha."""

import numpy as np
import pytest
import torch

from gs_core.engine import Gaussians, project, render, trace
from gs_core.engine.gaussians import polarise_opacities

from engine_scenes import camera, random_gaussians

RTOL = 1e-4


def _close(a, b, rtol=RTOL, atol=1e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol * max(1.0, float(b.abs().max())))


def brute_force(proj, features: np.ndarray):  # [N, D] -> ([H, W, D], [H, W])
    """Every pixel composited on its own, in float64, over its tile's Gaussians (binning is checked
    against gsplat in test_projection) re-sorted by depth here."""
    m2d = proj.means2d.double().numpy()
    op = proj.opacities.double().numpy()
    H, W = proj.height, proj.width
    out = np.zeros((H, W, features.shape[1]))
    alpha_img = np.zeros((H, W))
    for y in range(H):
        for x in range(W):
            tile = (y // 16) * proj.tiles_x + x // 16
            listed = proj.flat_ids[proj.tile_offsets[tile]:proj.tile_offsets[tile + 1]].long().numpy()
            T = 1.0
            for g in listed[np.argsort(proj.depths.numpy()[listed], kind="stable")]:
                dx, dy = x + 0.5 - m2d[g, 0], y + 0.5 - m2d[g, 1]
                if proj.kind == "3dgs":
                    a, b, c = proj.conics[g].double().numpy()
                    sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                else:
                    M = proj.ray_transforms[g].double().numpy()
                    hu = -M[0] + M[2] * (x + 0.5)
                    hv = -M[1] + M[2] * (y + 0.5)
                    cr = np.cross(hu, hv)
                    if cr[2] == 0:
                        continue
                    s3 = (cr[0] / cr[2]) ** 2 + (cr[1] / cr[2]) ** 2
                    sigma = 0.5 * min(s3, 2.0 * (dx * dx + dy * dy))
                alpha = min(0.999, op[g] * np.exp(-sigma))
                if sigma < 0 or alpha < 1 / 255:
                    continue
                if T * (1 - alpha) <= 1e-4:
                    break
                out[y, x] += alpha * T * features[g]
                T *= 1 - alpha
            alpha_img[y, x] = 1 - T
    return out, alpha_img


def test_torch_matches_brute_force(kind):
    g = random_gaussians(60, kind, seed=11)
    proj = project(g, camera(width=21, height=18, eye=(0.2, -2.0, 0.3)))
    f = torch.rand(60, 2, generator=torch.Generator().manual_seed(0))
    ref, ref_alpha = brute_force(proj, f.double().numpy())
    out = render(proj, f, backend="torch")
    assert ref_alpha.max() > 0.5  # the view really sees something
    np.testing.assert_allclose(out.features.numpy(), ref, rtol=1e-3, atol=2e-4)
    np.testing.assert_allclose(out.alpha.numpy(), ref_alpha, rtol=1e-3, atol=2e-4)


def test_cpu_matches_torch_render(scene, native):
    g, cam = scene
    proj = project(g, cam)
    assert proj.visible.sum() < len(g)  # some Gaussians behind the camera / off-screen
    for d in (1, 3, 8, 9, 16, 32, 33, 130, 300):  # dense (<= 8), chunk-local (<= 32), sparse products
        f = torch.randn(len(g), d, generator=torch.Generator().manual_seed(d))
        a, b = render(proj, f, backend="torch"), render(proj, f, backend="cpu")
        _close(b.features, a.features)
        _close(b.alpha, a.alpha)
        _close(b.depth, a.depth)


def needle_gaussians(n: int, seed: int) -> Gaussians:
    """Long thin splats at random angles with opacities near the 1/255 cut: the cases where the
    native kernel's row culling (3DGS) is closest to dropping a pixel the full evaluation blends."""
    gen = torch.Generator().manual_seed(seed)
    scales = torch.full((n, 3), 0.002)
    scales[:, 0] = torch.exp(torch.randn(n, generator=gen) * 1.5 - 1.5)
    opac = 1.0 / 255.0 * (1.0 + torch.rand(n, generator=gen) * torch.tensor([0.0, 1e-6, 1e-3, 0.5, 50.0])[
        torch.randint(0, 5, (n,), generator=gen)])
    opac[: n // 20] = 1.0 / 255.0 * (1.0 - 1e-6)  # just below the cut: never blends
    return Gaussians(means=torch.randn(n, 3, generator=gen) * 0.6,
                     quats=torch.nn.functional.normalize(torch.randn(n, 4, generator=gen), dim=-1),
                     scales=scales, opacities=opac.clamp_max(0.999))


@pytest.mark.parametrize("seed", [0, 1])
def test_cpu_row_culling_drops_nothing(seed, native):
    g = needle_gaussians(400, seed)
    proj = project(g, camera(width=67, height=45))
    f = torch.rand(400, 2, generator=torch.Generator().manual_seed(seed))
    a, b = render(proj, f, backend="torch"), render(proj, f, backend="cpu")
    _close(b.features, a.features, atol=1e-6)
    _close(b.alpha, a.alpha, atol=1e-6)
    ta, tb = trace(proj, torch.ones(45, 67), backend="torch"), trace(proj, torch.ones(45, 67), backend="cpu")
    assert torch.equal(ta.hits, tb.hits)  # every blended (pixel, Gaussian) pair is found
    assert int(tb.hits.sum()) > 1000


def test_cpu_matches_torch_trace(scene, native):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(2)
    for d in (1, 4, 12, 80, 300):  # dense (<= 8) and compacted paths, channel blocks and remainders
        v = torch.randn(cam.height, cam.width, d, generator=gen)
        for power in (1, 2):
            a = trace(proj, v, power=power, backend="torch")
            b = trace(proj, v, power=power, backend="cpu")
            _close(b.weighted_sum, a.weighted_sum)
            _close(b.weight_sum, a.weight_sum)
            _close(b.alpha_sum, a.alpha_sum)
            assert torch.equal(a.hits, b.hits)


def test_cpu_matches_torch_labels(scene, native):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(3)
    for n_labels in (3, 40):  # both the dense (<= 8 per tile) and the sparse label paths
        labels = torch.randint(-1, n_labels, (cam.height, cam.width), generator=gen)
        a = trace(proj, labels, top_k=4, backend="torch")
        b = trace(proj, labels, top_k=4, backend="cpu")
        _close(b.weights, a.weights)
        _close(b.weight_sum, a.weight_sum)
        assert torch.equal(a.hits, b.hits)
        # labels agree wherever weights are not tied
        distinct = (a.weights[:, :-1] - a.weights[:, 1:]).abs().min(dim=1).values > 1e-4
        assert torch.equal(a.labels[distinct], b.labels[distinct])


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_label_histogram_equals_one_hot_trace(scene, backend, native):
    g, cam = scene
    proj = project(g, cam)
    labels = torch.randint(0, 5, (cam.height, cam.width), generator=torch.Generator().manual_seed(4))
    hist = trace(proj, labels, top_k=5, backend=backend)
    dense = trace(proj, torch.nn.functional.one_hot(labels.long(), 5).float(), backend=backend)
    rebuilt = torch.zeros(len(g), 5)
    valid = hist.labels >= 0
    rebuilt[torch.nonzero(valid)[:, 0], hist.labels[valid].long()] = hist.weights[valid]
    _close(rebuilt, dense.weighted_sum)
    _close(hist.weight_sum, dense.weight_sum)
    assert torch.all(hist.rest.abs() < 1e-4 * hist.weight_sum.clamp_min(1))


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_sparse_label_trace_is_the_dense_histogram(scene, backend, native):
    g, cam = scene
    proj = project(g, cam)
    labels = torch.randint(-1, 40, (cam.height, cam.width), generator=torch.Generator().manual_seed(6))
    dense = trace(proj, labels, top_k=4, backend=backend)
    sparse = trace(proj, labels, top_k=4, sparse=True, backend=backend)
    filled = dense.labels >= 0
    assert filled.any() and sparse.gaussians.dtype == torch.int32
    assert torch.equal(sparse.gaussians.long(), torch.nonzero(filled)[:, 0])
    assert torch.equal(sparse.labels, dense.labels[filled])
    assert torch.equal(sparse.weights, dense.weights[filled])
    for name in ("weight_sum", "alpha_sum", "hits"):
        assert torch.equal(getattr(sparse, name), getattr(dense, name)), name


def test_label_trace_is_deterministic(scene, native):
    """Bitwise the same on 1 and 2 threads and on repeats: a Gaussian's per-tile entries are summed
    in tile order, not in the order the threads produced them."""
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(7)
    threads = torch.get_num_threads()
    for n_labels in (3, 40):  # the dense (<= 8 per tile) and the sparse label paths
        labels = torch.randint(-1, n_labels, (cam.height, cam.width), generator=gen)
        try:
            torch.set_num_threads(1)
            one = trace(proj, labels, top_k=6, backend="cpu")
            torch.set_num_threads(2)
            runs = [trace(proj, labels, top_k=6, backend="cpu") for _ in range(20)]
        finally:
            torch.set_num_threads(threads)
        for again in runs:
            for name in ("labels", "weights", "weight_sum", "alpha_sum", "hits"):
                assert torch.equal(getattr(one, name), getattr(again, name)), (n_labels, name)


def test_top_k_keeps_heaviest_and_rest(scene, native):
    g, cam = scene
    proj = project(g, cam)
    labels = torch.randint(0, 30, (cam.height, cam.width), generator=torch.Generator().manual_seed(5))
    full = trace(proj, labels, top_k=30, backend="cpu")
    top2 = trace(proj, labels, top_k=2, backend="cpu")
    _close(top2.weights, full.weights[:, :2])
    _close(top2.rest, full.weights[:, 2:].sum(1))
    assert torch.all(top2.weights[:, 0] >= top2.weights[:, 1])


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_adjoint_identity(scene, backend, native):
    """<render(f), v> == <f, trace(v)>: trace is the transpose of render."""
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(6)
    f = torch.randn(len(g), 5, generator=gen, dtype=torch.float32)
    v = torch.randn(cam.height, cam.width, 5, generator=gen)
    lhs = (render(proj, f, backend=backend).features.double() * v.double()).sum()
    rhs = (f.double() * trace(proj, v, backend=backend).weighted_sum.double()).sum()
    assert abs(float(lhs - rhs)) <= 1e-4 * float(lhs.abs() + 1)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_constant_feature_renders_alpha(scene, backend, native):
    g, cam = scene
    proj = project(g, cam)
    out = render(proj, torch.ones(len(g), 1), backend=backend)
    _close(out.features[..., 0], out.alpha)
    assert out.alpha.max() > 0.9 and out.alpha.min() >= 0


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_pixel_subset_equals_full_frame(scene, backend, native):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(7)
    f = torch.rand(len(g), 3, generator=gen)
    pix = torch.stack([torch.randint(0, cam.width, (300,), generator=gen),
                       torch.randint(0, cam.height, (300,), generator=gen)], dim=1)  # with repeats
    full = render(proj, f, backend=backend)
    sub = render(proj, f, pixels=pix, backend=backend)
    _close(sub.features, full.features[pix[:, 1], pix[:, 0]])
    _close(sub.alpha, full.alpha[pix[:, 1], pix[:, 0]])
    # trace of a subset equals the full-frame trace of the subset's values scattered into an image
    vals = torch.randn(300, 2, generator=gen)
    img = torch.zeros(cam.height, cam.width, 2)
    img.index_put_((pix[:, 1], pix[:, 0]), vals, accumulate=True)
    _close(trace(proj, vals, pixels=pix, backend=backend).weighted_sum,
           trace(proj, img, backend=backend).weighted_sum)


def test_native_render_gradient_is_trace(scene, native):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(8)
    pix = torch.stack([torch.randint(0, cam.width, (256,), generator=gen),
                       torch.randint(0, cam.height, (256,), generator=gen)], dim=1)
    target = torch.randn(256, 4, generator=gen)
    grads = {}
    for backend in ("torch", "cpu"):
        f = torch.randn(len(g), 4, generator=torch.Generator().manual_seed(9)).requires_grad_(True)
        loss = ((render(proj, f, pixels=pix, backend=backend).features - target) ** 2).sum()
        loss.backward()
        grads[backend] = f.grad
    _close(grads["cpu"], grads["torch"])
    assert grads["cpu"].abs().sum() > 0


def test_features_train_with_fixed_geometry(native):
    """Adam on per-Gaussian features through the native render lowers a photometric loss."""
    g = random_gaussians(300, "3dgs", seed=12)
    proj = project(g, camera())
    target = render(proj, torch.rand(300, 3, generator=torch.Generator().manual_seed(1))).features.detach()
    f = torch.zeros(300, 3, requires_grad=True)
    opt = torch.optim.Adam([f], lr=0.05)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((render(proj, f, backend="cpu").features - target) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_opacity_polarisation(scene, native):
    g, cam = scene
    proj = project(g, cam)
    v = torch.rand(cam.height, cam.width, 2)
    direct = trace(proj.with_opacities(polarise_opacities(proj.opacities, 1.2)), v, power=2, backend="cpu")
    via_arg = trace(proj, v, power=2, opacity_lambda=1.2, backend="cpu")
    _close(via_arg.weighted_sum, direct.weighted_sum)
    o = torch.tensor([0.1, 0.5, 0.9])
    p = polarise_opacities(o, 1.2)
    assert p[0] < o[0] and abs(float(p[1]) - 0.5) < 1e-6 and p[2] > o[2]


def test_bad_inputs_raise_clear_errors(scene):
    g, cam = scene
    proj = project(g, cam)
    with pytest.raises(ValueError, match="rows"):
        render(proj, torch.ones(len(g) + 1, 3))
    with pytest.raises(ValueError, match="outside"):
        render(proj, torch.ones(len(g), 3), pixels=torch.tensor([[cam.width, 0]]))
    with pytest.raises(ValueError, match="power"):
        trace(proj, torch.ones(cam.height, cam.width), power=3)
    with pytest.raises(ValueError, match="value map"):
        trace(proj, torch.ones(cam.height + 1, cam.width))
    with pytest.raises(ValueError, match="backend"):
        render(proj, torch.ones(len(g), 3), backend="metal")


def test_missing_compiler_falls_back_to_torch(monkeypatch, scene):
    from gs_core.engine import api, cpu_backend

    g, cam = scene
    monkeypatch.setattr(cpu_backend, "_ext", None)
    monkeypatch.setattr(cpu_backend, "_error", None)

    def broken(*a, **k):
        raise OSError("no C++ compiler found")

    monkeypatch.setattr(cpu_backend, "load", broken)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        assert api._resolve("auto", torch.device("cpu")) == "torch"
    out = render(project(g, cam), torch.ones(len(g), 1))  # still renders, on torch
    assert out.alpha.max() > 0


@pytest.mark.cuda
def test_gsplat_backend_matches_torch(kind):
    from gs_core.engine import gsplat_backend

    if not gsplat_backend.available():
        pytest.skip("gsplat does not import on this machine")
    g = random_gaussians(400, kind, seed=13).to("cuda")
    proj = project(g, camera())
    f = torch.rand(len(g), 6, device="cuda", requires_grad=True)
    a = render(proj, f, backend="torch")
    b = render(proj, f, backend="gsplat")
    _close(b.features, a.features, rtol=1e-3)
    v = torch.randn_like(a.features)
    (ga,) = torch.autograd.grad((a.features * v).sum(), f)
    (gb,) = torch.autograd.grad((b.features * v).sum(), f)
    _close(gb, ga, rtol=1e-3)

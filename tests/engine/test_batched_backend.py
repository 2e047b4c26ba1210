"""The batched backend (the CUDA path's traces, and its render without gsplat) against the per-tile
torch reference and the native kernels, on the CPU; the same checks on CUDA where a GPU is present."""

import pytest
import torch

from gs_core.engine import Gaussians, api, batched_backend, project, render, trace

from engine_scenes import camera, random_gaussians

RTOL = 1e-4  # the tolerance the cpu backend is held to (test_render_trace): float32 sums in another order


def _close(a, b, rtol=RTOL, atol=1e-5):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol * max(1.0, float(b.abs().max())))


@pytest.fixture(params=[None, 3000], ids=["default-blocks", "tiny-blocks"])
def budget(request, monkeypatch):
    """The default block size, and one so small that most blocks hold a single tile."""
    if request.param is not None:
        monkeypatch.setitem(batched_backend.PAIR_BUDGET, "cpu", request.param)
    return request.param


def test_render_matches_torch(scene, budget):
    g, cam = scene
    proj = project(g, cam)
    for d in (1, 3, 33):
        f = torch.randn(len(g), d, generator=torch.Generator().manual_seed(d))
        a, b = render(proj, f, backend="torch"), render(proj, f, backend="batched")
        _close(b.features, a.features)
        _close(b.alpha, a.alpha)
        _close(b.depth, a.depth)
    assert float(a.alpha.max()) > 0.5  # the view sees something


def test_pixel_subset_with_repeats(scene):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(5)
    xy = torch.stack([torch.randint(0, cam.width, (300,), generator=gen),
                      torch.randint(0, cam.height, (300,), generator=gen)], 1)
    xy = torch.cat([xy, xy[:40]])  # repeated pixels: more than one slot per pixel in a tile
    f = torch.rand(len(g), 4, generator=gen)
    full = render(proj, f, backend="torch").features
    sub = render(proj, f, pixels=xy, backend="batched").features
    _close(sub, full[xy[:, 1], xy[:, 0]])
    v = torch.randn(xy.shape[0], 2, generator=gen)
    _close(trace(proj, v, pixels=xy, backend="batched").weighted_sum,
           trace(proj, v, pixels=xy, backend="torch").weighted_sum)


def test_trace_matches_torch_and_cpu(scene, budget, native):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(2)
    for d in (1, 12):
        v = torch.randn(cam.height, cam.width, d, generator=gen)
        for power in (1, 2):
            a = trace(proj, v, power=power, backend="torch")
            b = trace(proj, v, power=power, backend="batched")
            c = trace(proj, v, power=power, backend="cpu")
            for ref in (a, c):
                _close(b.weighted_sum, ref.weighted_sum)
                _close(b.weight_sum, ref.weight_sum)
                _close(b.alpha_sum, ref.alpha_sum)
                assert torch.equal(b.hits, ref.hits)
    assert int(b.hits.sum()) > 1000


def test_labels_match_torch_and_cpu(scene, budget, native):
    g, cam = scene
    proj = project(g, cam)
    gen = torch.Generator().manual_seed(3)
    for n_labels in (3, 40):
        labels = torch.randint(-1, n_labels, (cam.height, cam.width), generator=gen)
        a = trace(proj, labels, top_k=4, backend="torch")
        b = trace(proj, labels, top_k=4, backend="batched")
        c = trace(proj, labels, top_k=4, backend="cpu")
        for ref in (a, c):
            _close(b.weights, ref.weights)
            _close(b.weight_sum, ref.weight_sum)
            _close(b.alpha_sum, ref.alpha_sum)
            assert torch.equal(b.hits, ref.hits)
            distinct = (ref.weights[:, :-1] - ref.weights[:, 1:]).abs().min(dim=1).values > 1e-4
            assert torch.equal(b.labels[distinct], ref.labels[distinct])


def test_large_labels_pack_into_keys(scene):
    """Label ids past 2^16 and a Gaussian id past 2^16 survive the packed (gaussian, label) keys."""
    g, cam = scene
    proj = project(g, cam)
    labels = torch.randint(0, 3, (cam.height, cam.width), generator=torch.Generator().manual_seed(4))
    big = labels + 2_000_000_000
    a = trace(proj, labels, top_k=3, backend="batched")
    b = trace(proj, big, top_k=3, backend="batched")
    filled = a.labels >= 0
    assert torch.equal(b.labels[filled], a.labels[filled] + 2_000_000_000)
    assert torch.equal(b.weights, a.weights)


def test_gradients_match_torch_reference(kind):
    """Autograd through the batched ops equals autograd through the per-tile reference (float64)."""
    g = random_gaussians(120, kind, seed=7)
    cam = camera(width=37, height=29, eye=(0.2, -2.0, 0.3))
    grads = []
    for backend in ("torch", "batched"):
        params = [t.double().requires_grad_(True) for t in (g.means, g.quats, g.scales, g.opacities)]
        gg = Gaussians(*params, kind=kind)
        f = torch.rand(len(g), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1),
                       requires_grad=True)
        out = render(project(gg, cam), f, backend=backend)
        w = torch.randn(out.features.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        loss = (out.features * w).sum() + out.alpha.sum() + 0.1 * out.depth.sum()
        grads.append(torch.autograd.grad(loss, params + [f]))
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)
    assert float(grads[0][0].abs().max()) > 0  # the means really get a gradient


def test_auto_on_cuda_without_gsplat_is_batched(monkeypatch):
    from gs_core.engine import gsplat_backend

    monkeypatch.setattr(gsplat_backend, "available", lambda: False)
    assert api._resolve("auto", torch.device("cuda")) == "batched"
    monkeypatch.setattr(gsplat_backend, "available", lambda: True)
    assert api._resolve("auto", torch.device("cuda")) == "gsplat"
    assert api._resolve("batched", torch.device("cpu")) == "batched"


@pytest.mark.cuda
def test_batched_on_cuda_matches_cpu_kernels(kind, native):
    g = random_gaussians(400, kind, seed=13)
    cam = camera(eye=(0.2, -1.2, 0.3))
    pc, pg = project(g, cam), project(g.to("cuda"), cam)
    gen = torch.Generator().manual_seed(8)
    f = torch.rand(len(g), 6, generator=gen)
    _close(render(pg, f.cuda(), backend="batched").features.cpu(), render(pc, f, backend="cpu").features)
    v = torch.randn(cam.height, cam.width, 5, generator=gen)
    a, b = trace(pc, v, power=2, backend="cpu"), trace(pg, v.cuda(), power=2, backend="batched")
    _close(b.weighted_sum.cpu(), a.weighted_sum)
    labels = torch.randint(-1, 30, (cam.height, cam.width), generator=gen)
    la, lb = trace(pc, labels, top_k=4, backend="cpu"), trace(pg, labels.cuda(), top_k=4, backend="batched")
    _close(lb.weights.cpu(), la.weights)
    assert torch.equal(lb.hits.cpu(), la.hits)

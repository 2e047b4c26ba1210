"""The full backward of render: the native kernels' gradients w.r.t. means, quats, scales,
opacities and features (through the native project) against torch autograd through the torch
reference; and the native projection's own backward against the reference's autograd.

The oracle runs in float64; the native kernels in float32. Each tolerance is derived from what is
computed, never from another float32 implementation on the same CPU (whose error moves with the CPU's
kernels):

* **conditioning**: the float64 reference evaluated at inputs moved by float32 rounding
  (:func:`rounding_perturbation`, three draws) says how much the gradient amplifies one rounding of
  each input. A float32 evaluation rounds each intermediate a few times along the chain
  (project -> conic / ray transform -> alpha -> blend -> its backward); errors of that size, adding up
  at random, stay within ``COND_FACTOR`` = 8 times the one-rounding response.
* **sums**: each Gaussian's gradient is a sum over the pixels it covers, at most ``n`` (the pixels
  rendered); recursive float32 summation of ``n`` terms errs by at most ``n * u`` of the terms'
  absolute sum (Higham, gamma_n). Where the three summed conic (or ray-transform) components combine
  into one parameter's gradient through the projection's Jacobian they can cancel, so ``SUM_FACTOR`` = 4
  allows a few-fold loss there.
* **ceilings** that no float32 result of these sizes comes near but a wrong term or index exceeds
  (its error is of order 1): ``REL_NORM_MAX`` for the relative error norm, ``ELEMENT_MAX`` for the
  worst element relative to ``|ref| + 1e-3 max|ref|`` (the floor keeps near-zero elements from
  dominating; a float32 sum near the floor can in principle err by ``n * u / 1e-3``, so this one is a
  fixed ceiling, not a derived bound).
"""

import numpy as np
import pytest
import torch

from gs_core.engine import Gaussians, project, render, sh_colors
from gs_core.sh import evaluate

from engine_scenes import (UNIT_ROUNDOFF, awkward_gaussians, camera, frustum_clamped, random_gaussians,
                           rounding_perturbation, rounding_perturbed_camera)

PARAMS = ("means", "quats", "scales", "opacities")
REL_NORM_MAX = 1e-3
ELEMENT_MAX = 1e-2
COND_FACTOR = 8
SUM_FACTOR = 4
PERTURBATION_SEEDS = (11, 12, 13)


def _pixels(case: str, cam):
    gen = torch.Generator().manual_seed(8)
    if case == "subset":
        return torch.stack([torch.randint(0, cam.width, (700,), generator=gen),
                            torch.randint(0, cam.height, (700,), generator=gen)], 1)
    if case == "repeats":  # 600 pixels in the first tile: several 256-pixel chunks per tile
        return torch.stack([torch.randint(0, 16, (600,), generator=gen), torch.randint(0, 16, (600,), generator=gen)], 1)
    return None


def gradients(kind: str, backend: str, dtype, channels: int = 3, case: str = "full", lam=None, seed: int = 1,
              project_backend: str = "torch", perturb: int | None = None):
    """d/d(every parameter) of a random linear function of the rendered features and alpha; with
    ``perturb`` (a seed, float64 only) at inputs moved by float32 rounding."""
    g = random_gaussians(400, kind, seed=seed)
    move = (lambda t, i: rounding_perturbation(t, perturb + 100 * i)) if perturb is not None else (lambda t, i: t)
    leaves = {k: move(getattr(g, k), i).to(dtype).clone().requires_grad_(True) for i, k in enumerate(PARAMS)}
    feats = move(torch.rand(len(g), channels, generator=torch.Generator().manual_seed(3)), len(PARAMS))
    feats = feats.to(dtype).requires_grad_(True)
    cam = camera(eye=(0.2, -1.2, 0.3))  # inside the cloud's edge: some Gaussians behind the camera
    if perturb is not None:
        cam = rounding_perturbed_camera(cam, perturb + 1000)
    proj = project(Gaussians(**leaves, kind=kind), cam, backend=project_backend)
    out = render(proj, feats, pixels=_pixels(case, cam),
                 opacity_lambda=lam, backend=backend)
    gen = torch.Generator().manual_seed(5)
    loss = ((out.features * torch.randn(out.features.shape, generator=gen).to(dtype)).sum()
            + (out.alpha * torch.randn(out.alpha.shape, generator=gen).to(dtype)).sum()
            + 0.1 * (out.depth * torch.randn(out.depth.shape, generator=gen).to(dtype)).sum())
    loss.backward()
    grads = {k: v.grad.double() for k, v in leaves.items()}
    grads["features"] = feats.grad.double()
    return grads


def _errors(a, ref):  # (relative error norm, worst element relative to |ref| + 1e-3 max|ref|)
    floor = 1e-3 * ref.abs().max()
    return float((a - ref).norm() / ref.norm()), float(((a - ref).abs() / (ref.abs() + floor)).max())


def _pixels_rendered(case: str) -> int:
    cam = camera(eye=(0.2, -1.2, 0.3))
    pixels = _pixels(case, cam)
    return cam.width * cam.height if pixels is None else len(pixels)


def _relative_bound(ref: dict, perturbed: list[dict], name: str, n_pixels: int) -> float:
    """The float32 bound on the relative error norm of gradient ``name`` (see the module docstring)."""
    conditioning = max(_errors(p[name], ref[name])[0] for p in perturbed)
    return min(REL_NORM_MAX, COND_FACTOR * conditioning + SUM_FACTOR * n_pixels * UNIT_ROUNDOFF)


def _check(native: dict, ref: dict, perturbed: list[dict], n_pixels: int):
    for name, r in ref.items():
        assert torch.isfinite(native[name]).all(), name
        assert r.norm() > 0, f"{name}: the loss does not depend on it; the test would prove nothing"
        rel, worst = _errors(native[name], r)
        assert rel <= _relative_bound(ref, perturbed, name, n_pixels), (name, rel)
        assert worst <= ELEMENT_MAX, (name, worst)


@pytest.mark.parametrize("channels, case, lam", [(3, "full", None), (16, "full", None), (5, "subset", None),
                                                 (3, "repeats", None), (3, "full", 1.2)],
                         ids=["D3", "D16-sparse", "pixel-subset", "repeated-pixels", "polarised"])
def test_gradients_match_float64_reference(kind, native, channels, case, lam):
    ref = gradients(kind, "torch", torch.float64, channels, case, lam)
    perturbed = [gradients(kind, "torch", torch.float64, channels, case, lam, perturb=s) for s in PERTURBATION_SEEDS]
    cpu = gradients(kind, "cpu", torch.float32, channels, case, lam)
    _check(cpu, ref, perturbed, _pixels_rendered(case))


@pytest.mark.parametrize("channels, case", [(3, "full"), (16, "subset")], ids=["D3", "D16-subset"])
def test_gradients_through_native_projection(kind, native, channels, case):
    """Native render backward chained with the native projection backward (the path training takes).
    Float32 rounding of the projected Gaussians can move a pixel across render's thresholds (alpha
    1/255, the transmittance cut), which moves the gradient itself: the rounding perturbations of the
    float64 reference include that effect, so the same bound holds."""
    ref = gradients(kind, "torch", torch.float64, channels, case)
    perturbed = [gradients(kind, "torch", torch.float64, channels, case, perturb=s) for s in PERTURBATION_SEEDS]
    cpu = gradients(kind, "cpu", torch.float32, channels, case, project_backend="cpu")
    _check(cpu, ref, perturbed, _pixels_rendered(case))


def test_culled_gaussians_get_zero_gradient(native):
    g = random_gaussians(400, "3dgs", seed=1)
    cam = camera(eye=(0.2, -1.2, 0.3))
    culled = ~project(g, cam).visible
    assert culled.any()
    grads = gradients("3dgs", "cpu", torch.float32, project_backend="cpu")
    for name in PARAMS + ("features",):
        assert (grads[name][culled] == 0).all(), name


def test_backward_is_deterministic(kind, native):
    """Bitwise the same on 1 and 2 threads and on a repeat (no racy accumulation)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = gradients(kind, "cpu", torch.float32, channels=16, project_backend="cpu")
        torch.set_num_threads(2)
        two = gradients(kind, "cpu", torch.float32, channels=16, project_backend="cpu")
        again = gradients(kind, "cpu", torch.float32, channels=16, project_backend="cpu")
    finally:
        torch.set_num_threads(threads)
    for name in one:
        assert torch.equal(one[name], two[name]) and torch.equal(two[name], again[name]), name


def test_sh_colors_match_numpy_and_differentiate():
    gen = torch.Generator().manual_seed(0)
    coeffs = torch.randn(50, 16, 3, generator=gen, dtype=torch.float64) * 0.3
    means = torch.randn(50, 3, generator=gen, dtype=torch.float64)
    cam = camera()
    dirs = means.numpy() - cam.position
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    expected = np.maximum(evaluate(coeffs.numpy(), dirs) + 0.5, 0.0)
    np.testing.assert_allclose(sh_colors(coeffs, means, cam).numpy(), expected, rtol=1e-12, atol=1e-12)
    coeffs.requires_grad_(True)
    means.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c, m: sh_colors(c, m, cam), (coeffs[:5].detach().requires_grad_(),
                                                                          means[:5].detach().requires_grad_()))


SHAPE = {"3dgs": "conics", "2dgs": "ray_transforms"}


def projection_gradients(g: Gaussians, cam, backend: str, dtype, perturb: int | None = None):
    """d/d(means, quats, scales) of a random linear function of means2d, depths and conics / ray
    transforms over the visible Gaussians (what render's backward feeds in: culled ones get none);
    with ``perturb`` (a seed, float64 only) at inputs moved by float32 rounding."""
    tensors = (g.means, g.quats, g.scales)
    if perturb is not None:
        tensors = [rounding_perturbation(t, perturb + 100 * i) for i, t in enumerate(tensors)]
        cam = rounding_perturbed_camera(cam, perturb + 1000)
    leaves = [t.to(dtype).clone().requires_grad_(True) for t in tensors]
    proj = project(Gaussians(*leaves, g.opacities.to(dtype), g.kind), cam, backend=backend)
    vis = proj.visible
    gen = torch.Generator().manual_seed(4)
    loss = 0
    for t in (proj.means2d, proj.depths, getattr(proj, SHAPE[g.kind])):
        w = torch.randn(t.shape, generator=gen, dtype=torch.float64).to(dtype)
        loss = loss + (t * w)[vis].sum()
    return [x.double() for x in torch.autograd.grad(loss, leaves)], vis


def conic_cancellation(g: Gaussians, cam) -> torch.Tensor:  # -> [N] >= 1
    """How much inverting each 3DGS 2D covariance ``[[a, b], [b, c]]`` loses to cancellation: its
    determinant is computed as ``a c - b^2``, whose rounding error relative to the result is
    ``a c / (a c - b^2)`` times u (large for needle-thin splats seen side on). A perturbation of the
    inputs keeps the covariance of the exact form ``J R S^2 R^T J^T`` and so does not show this loss;
    a float32 evaluation that forms the entries first does. From the float64 reference: machine
    independent. 1 for 2DGS (no inversion)."""
    proj = project(Gaussians(g.means.double(), g.quats.double(), g.scales.double(), g.opacities.double(),
                             g.kind), cam, backend="torch")
    if g.kind != "3dgs":
        return torch.ones(len(g), dtype=torch.float64)
    A, B, C = proj.conics.unbind(-1)  # the inverse has the same ratio: A C / (A C - B^2)
    return (A * C / (A * C - B * B)).abs().clamp_min(1.0).nan_to_num(1.0)


@pytest.mark.parametrize("eye", [(0.2, -1.2, 0.3), (0.3, -3.0, 0.6)], ids=["inside", "outside"])
def test_projection_gradients_match_reference(kind, native, eye):
    """The native projection backward against torch autograd through the reference, on the awkward
    scenes (frustum clamp, border, degenerate scales, unnormalised quaternions). Oracle: float64.
    Each Gaussian's gradient is its own short chain (no sums over pixels), so each element's error is
    bounded by ``COND_FACTOR`` times (the float64 reference's response to float32-sized input rounding
    + its Gaussian's conic cancellation times u times the element's scale ``|ref| + 1e-3 max|ref|``):
    the error norm is asserted under the norm of those bounds (single elements whose terms cancel can
    exceed their own bound without the sum doing so, so elements get the fixed ceiling)."""
    cam = camera(eye=eye)
    g = awkward_gaussians(kind, cam, seed=3)
    ref, vis = projection_gradients(g, cam, "torch", torch.float64)
    perturbed = [projection_gradients(g, cam, "torch", torch.float64, perturb=s) for s in PERTURBATION_SEEDS]
    assert all(torch.equal(vis, v) for _, v in perturbed)  # rounding moves no Gaussian in or out of view
    cpu, vis_cpu = projection_gradients(g, cam, "cpu", torch.float32)
    assert torch.equal(vis, vis_cpu) and vis.sum() > 200
    cancellation = conic_cancellation(g, cam)[:, None] * UNIT_ROUNDOFF  # [N, 1]
    for i, (name, c, r) in enumerate(zip(("means", "quats", "scales"), cpu, ref)):
        assert torch.isfinite(c).all(), name
        assert r.norm() > 0
        assert (c[~vis] == 0).all(), name  # no incoming gradient: exact zeros (no 0 * inf)
        scale = r.abs() + 1e-3 * r.abs().max()
        response = torch.stack([(p[i] - r).abs() for p, _ in perturbed]).amax(0)  # [N, k]
        allowed = COND_FACTOR * (response + cancellation * scale)  # [N, k] absolute error allowed
        err = (c - r).abs()
        assert err.norm() <= min(REL_NORM_MAX * r.norm(), allowed.norm()), (name, float(err.norm() / r.norm()))
        assert (err <= ELEMENT_MAX * scale).all(), (name, float((err / scale).max()))


def test_projection_reference_passes_gradcheck(kind):
    """The reference's autograd (the oracle above) against finite differences, float64, with a
    Gaussian in the frustum clamp and unnormalised quaternions."""
    cam = camera(eye=(0.2, -1.2, 0.3))
    g = awkward_gaussians(kind, cam, seed=3)
    vis = project(g, cam, backend="torch").visible
    clamped = torch.nonzero(vis & frustum_clamped(g, cam))[:3, 0]
    assert len(clamped) == 3
    pick = torch.cat([torch.nonzero(vis)[:6, 0], clamped, torch.nonzero(vis)[-3:, 0]])  # the last: degenerate
    sub = g.subset(pick)
    sub.scales[:, :2] = sub.scales[:, :2].clamp_min(1e-3)  # finite differences need a non-degenerate splat
    if kind == "3dgs":
        sub.scales[:, 2] = sub.scales[:, 2].clamp_min(1e-3)

    def fn(means, quats, scales):
        p = project(Gaussians(means, quats, scales, sub.opacities.double(), kind), cam, backend="torch")
        return p.means2d, p.depths, getattr(p, SHAPE[kind])

    inputs = tuple(t.double().requires_grad_(True) for t in (sub.means, sub.quats, sub.scales))
    assert torch.autograd.gradcheck(fn, inputs)

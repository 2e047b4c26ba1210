"""The engine's public API: ``project``, ``render`` and ``trace`` over one camera.

For a fixed camera, alpha blending is linear in per-Gaussian features:
``F[p] = sum_g w[p, g] f[g]`` with ``w = alpha * T``. ``render`` applies that matrix ``A``
(Gaussians -> pixels) and ``trace`` applies ``A^T`` (pixels -> Gaussians). Every seed method is a
composition of the two over views (GIT is the trace of patch labels, closed-form lifting is
``trace(B) / trace(1)``, and the gradient of a feature loss is ``trace(dL/dF)``).

Backends: ``torch`` (reference, any device), ``cpu`` (native C++/OpenMP kernels in ``cuda/``),
``gsplat`` (CUDA only: gsplat's render, the traces batched), ``batched`` (the reference batched over
tiles, any device: the traces of the CUDA path). ``auto`` picks ``gsplat`` for CUDA tensors when
gsplat imports, else ``batched`` there; ``cpu`` for CPU tensors when the extension builds, else ``torch``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from . import torch_backend
from .gaussians import polarise_opacities
from ..camera import Camera
from .gaussians import Gaussians
from .projection import TILE_SIZE, Projection, frame_pixels, group_pixels_by_tile, project_reference

BACKENDS = ("auto", "torch", "cpu", "gsplat", "batched")


@dataclass
class RenderOutput:
    """What ``render`` returns: images [H, W, ...] for a full frame, rows [P, ...] for a pixel subset."""

    features: Tensor  # [H, W, D] or [P, D]
    alpha: Tensor  # [H, W] or [P]: 1 - final transmittance
    depth: Tensor  # [H, W] or [P]: sum_g w z_g (divide by alpha for the expected depth)


@dataclass
class TraceOutput:
    """Per-Gaussian sums of ``trace`` over the pixels of one view (Eq. 24 numerator/denominator)."""

    weighted_sum: Tensor  # [N, D]: sum_p w^k v_p
    weight_sum: Tensor  # [N]: sum_p w^k
    alpha_sum: Tensor  # [N]: sum_p alpha over pixels the Gaussian was blended into
    hits: Tensor  # [N] int32: number of pixels the Gaussian was blended into

    @property
    def mean_transmittance(self) -> Tensor:  # [N]
        """``sum w / sum alpha`` (power 1): how unoccluded a Gaussian is where it lands, in [0, 1]."""
        return self.weight_sum / self.alpha_sum.clamp_min(1e-12)


@dataclass
class LabelTraceOutput:
    """Per-Gaussian sparse label histogram of one view: the top-k labels and the rest."""

    labels: Tensor  # [N, k] int32, -1 = empty slot; sorted by weight, descending
    weights: Tensor  # [N, k]: sum of w^k over the pixels carrying that label
    weight_sum: Tensor  # [N]: sum of w^k over all labelled pixels (so rest = weight_sum - weights.sum)
    alpha_sum: Tensor  # [N]
    hits: Tensor  # [N] int32

    @property
    def rest(self) -> Tensor:  # [N]
        return (self.weight_sum - self.weights.sum(dim=1)).clamp_min(0)

    def to_sparse(self) -> SparseLabelTraceOutput:
        """The filled slots as entries (what ``trace(..., sparse=True)`` returns)."""
        filled = self.labels >= 0
        rows = torch.nonzero(filled)[:, 0]
        return SparseLabelTraceOutput(rows.to(torch.int32), self.labels[filled], self.weights[filled],
                                      self.weight_sum, self.alpha_sum, self.hits)


@dataclass
class SparseLabelTraceOutput:
    """The top-k label histogram of :class:`LabelTraceOutput` as entries, grouped by Gaussian
    (ascending), heaviest first within one: memory grows with the entries, not with N k."""

    gaussians: Tensor  # [E] int32
    labels: Tensor  # [E] int32
    weights: Tensor  # [E]: sum of w^k over the Gaussian's pixels carrying that label
    weight_sum: Tensor  # [N]: sum of w^k over all labelled pixels
    alpha_sum: Tensor  # [N]
    hits: Tensor  # [N] int32


# ---- backend selection ---------------------------------------------------------------------

def _resolve(backend: str, device: torch.device) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    if backend == "auto":
        if device.type == "cuda":
            from . import gsplat_backend

            return "gsplat" if gsplat_backend.available() else "batched"
        if device.type == "cpu":
            from . import cpu_backend

            return "cpu" if cpu_backend.available() else "torch"
        return "torch"
    if backend == "cpu" and device.type != "cpu":
        raise ValueError("the 'cpu' backend needs CPU tensors")
    if backend == "gsplat" and device.type != "cuda":
        raise ValueError("the 'gsplat' backend needs CUDA tensors")
    return backend


def _native_projection(gaussians: Gaussians, backend: str) -> bool:
    """``cpu``: the native projection (an error if it cannot run); ``auto``: it for float32 CPU
    tensors when the kernels load; otherwise (``torch``, ``gsplat``, float64, CUDA) the reference."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    fits = gaussians.device.type == "cpu" and all(
        t.dtype == torch.float32 for t in (gaussians.means, gaussians.quats, gaussians.scales))
    if backend == "cpu":
        from . import cpu_backend

        if not fits:
            raise ValueError("the cpu backend projects float32 CPU tensors")
        cpu_backend.load()
        return True
    if backend != "auto" or not fits:
        return False
    from . import cpu_backend

    return cpu_backend.available()


def project(gaussians: Gaussians, camera: Camera, tile_size: int = TILE_SIZE, backend: str = "auto") -> Projection:
    """Project ``gaussians`` into ``camera`` and bin them into tiles.

    Differentiable: where the Gaussians' tensors require grad, ``means2d``, ``depths``, ``conics`` /
    ``ray_transforms`` and ``opacities`` carry autograd history back to means, quats, scales and
    opacities (as gsplat's projection backward); tile lists and radii never do. ``backend`` ``auto``
    runs the native kernel for float32 CPU tensors when it loads (forward and backward in C++), ``cpu``
    insists on it; ``torch`` runs the reference (``projection.project_reference``), as do float64
    (gradient tests), CUDA tensors and machines without the kernels. Both give the same fields to
    float32 rounding (radii may differ by 1 where a ceil lands on a rounding boundary).
    """
    if _native_projection(gaussians, backend):
        from . import cpu_backend

        return cpu_backend.project(gaussians, camera, tile_size)
    return project_reference(gaussians, camera, tile_size)


def _module(name: str):
    if name == "torch":
        return torch_backend
    if name == "cpu":
        from . import cpu_backend

        return cpu_backend
    if name == "batched":
        from . import batched_backend

        return batched_backend
    from . import gsplat_backend

    return gsplat_backend


def _pixels(proj: Projection, pixels: Tensor | None):
    """Pixel rows [P, 2] (x, y) and their tile grouping; the full frame when ``pixels`` is None."""
    device = proj.means2d.device
    if pixels is None:
        return frame_pixels(proj)
    pixels = torch.as_tensor(pixels, device=device).long()
    if pixels.ndim != 2 or pixels.shape[1] != 2:
        raise ValueError(f"pixels must be [P, 2] (x, y), got {tuple(pixels.shape)}")
    if pixels.numel() and (pixels.min() < 0 or (pixels[:, 0] >= proj.width).any()
                           or (pixels[:, 1] >= proj.height).any()):
        raise ValueError(f"pixels outside the {proj.width}x{proj.height} image")
    order, offsets = group_pixels_by_tile(pixels, proj)
    return pixels, order, offsets


def _with_lambda(proj: Projection, opacity_lambda: float | None) -> Projection:
    if opacity_lambda is None or opacity_lambda == 1.0:
        return proj
    return proj.with_opacities(polarise_opacities(proj.opacities, opacity_lambda))


# ---- render ------------------------------------------------------------------------------

class _RenderFeatures(torch.autograd.Function):
    """Native render whose backward is the native trace (``dL/df = A^T dL/dF``)."""

    @staticmethod
    def forward(ctx, features, proj, pixels, order, offsets, module):
        out, alpha, depth = module.rasterize(proj, features.detach().contiguous(), pixels, order, offsets)
        ctx.saved = (proj, pixels, order, offsets, module)
        ctx.mark_non_differentiable(alpha, depth)
        return out, alpha, depth

    @staticmethod
    def backward(ctx, grad_out, _grad_alpha, _grad_depth):
        proj, pixels, order, offsets, module = ctx.saved
        grad, *_ = module.trace(proj, grad_out.contiguous(), pixels, order, offsets, 1)
        return grad, None, None, None, None, None


class _RenderGeometry(torch.autograd.Function):
    """Native render with the full backward (gsplat's split: rasterization backward in the kernels
    w.r.t. the screen-space parameters, then torch autograd through :func:`project` to the 3D ones).

    Inputs: means2d [N, 2], shape [N, 3] conics or [N, 3, 3] ray transforms, opacities [N],
    depths [N], features [N, D]. Outputs features [P, D], alpha [P], depth [P], all differentiable
    (the depth output is one more rendered channel, ``sum w z``)."""

    @staticmethod
    def forward(ctx, means2d, shape, opacities, depths, features, proj, pixels, order, offsets, module):
        geo = {"conics" if proj.kind == "3dgs" else "ray_transforms": shape}
        proj = replace(proj, means2d=means2d, opacities=opacities, depths=depths, **geo)
        out, alpha, depth, T_final, last = module.rasterize(proj, features, pixels, order, offsets, keep_state=True)
        ctx.saved = (proj, pixels, order, offsets, module)
        ctx.save_for_backward(features, T_final, last)
        return out, alpha, depth

    @staticmethod
    def backward(ctx, grad_out, grad_alpha, grad_depth):
        proj, pixels, order, offsets, module = ctx.saved
        features, T_final, last = ctx.saved_tensors
        P = pixels.shape[0]
        grad_out = torch.zeros(P, features.shape[1]) if grad_out is None else grad_out
        grad_alpha = torch.zeros(P) if grad_alpha is None else grad_alpha
        with_depth = grad_depth is not None and bool(grad_depth.any())
        if with_depth:  # depth is the channel z: one pass for all
            features = torch.cat([features, proj.depths[:, None]], dim=1)
            grad_out = torch.cat([grad_out, grad_depth[:, None]], dim=1)
        v_means2d, v_shape, v_opac, v_feat = module.rasterize_backward(
            proj, features, (T_final, last), grad_out, grad_alpha, pixels, order, offsets)
        v_depths = v_feat[:, -1] if with_depth else None
        v_feat = v_feat[:, :-1] if with_depth else v_feat
        if proj.kind == "2dgs":
            v_shape = v_shape.reshape(-1, 3, 3)
        return v_means2d, v_shape, v_opac, v_depths, v_feat, None, None, None, None, None


def render(proj: Projection, features: Tensor, *, pixels: Tensor | None = None,
           opacity_lambda: float | None = None, backend: str = "auto") -> RenderOutput:
    """Alpha-blend per-Gaussian ``features`` [N, D] into the view of ``proj``.

    ``pixels`` [P, 2] (x, y) renders only those pixels (returns rows [P, D]); otherwise the full
    frame [H, W, D]. Differentiable w.r.t. ``features`` on every backend, and w.r.t. the geometry
    (means, quats, scales, opacities of the Gaussians ``proj`` was projected from) when ``proj``
    carries autograd history: on ``cpu`` through the native backward, on ``torch`` through autograd,
    on ``gsplat`` through gsplat's. ``opacity_lambda`` polarises opacities first (Eq. 23).

    Args:
        features: [N, D] (or [N]) one feature row per Gaussian of ``proj``.
        pixels: [P, 2] int (x, y) pixels to render, or None for the full frame.
    """
    if features.ndim == 1:
        features = features[:, None]
    if features.shape[0] != proj.num_gaussians:
        raise ValueError(f"features has {features.shape[0]} rows, projection has {proj.num_gaussians} Gaussians")
    dtype = proj.means2d.dtype
    features = features.to(proj.means2d.device, dtype)
    proj = _with_lambda(proj, opacity_lambda)
    full = pixels is None
    pixels, order, offsets = _pixels(proj, pixels)
    if backend == "auto" and dtype != torch.float32:
        backend = "torch"  # the native kernels and gsplat compute in float32
    name = _resolve(backend, features.device)
    if name == "cpu" and dtype != torch.float32:
        raise ValueError(f"the cpu backend renders float32, this projection is {dtype}")
    module = _module(name)
    if getattr(module, "DIFFERENTIABLE", False):  # torch autograd or the library's own backward
        out, alpha, depth = module.rasterize(proj, features, pixels, order, offsets)
    elif torch.is_grad_enabled() and proj.requires_grad:
        shape = proj.conics if proj.kind == "3dgs" else proj.ray_transforms
        out, alpha, depth = _RenderGeometry.apply(proj.means2d, shape, proj.opacities, proj.depths, features,
                                                  proj.detach(), pixels, order, offsets, module)
    else:
        out, alpha, depth = _RenderFeatures.apply(features, proj, pixels, order, offsets, module)
    if full:
        H, W = proj.height, proj.width
        return RenderOutput(out.reshape(H, W, -1), alpha.reshape(H, W), depth.reshape(H, W))
    return RenderOutput(out, alpha, depth)


# ---- trace -------------------------------------------------------------------------------

def trace(proj: Projection, values: Tensor, *, pixels: Tensor | None = None, power: int = 1,
          opacity_lambda: float | None = None, top_k: int = 8, sparse: bool = False,
          backend: str = "auto") -> TraceOutput | LabelTraceOutput | SparseLabelTraceOutput:
    """Accumulate a per-pixel signal onto the Gaussians in proportion to ``w^power`` (reverse rasterization).

    ``values``: a float map [H, W, D] / [H, W] (or rows [P, D] with ``pixels``) gives
    :class:`TraceOutput`; an integer label map [H, W] (or [P]) gives :class:`LabelTraceOutput`, a
    per-Gaussian top-``top_k`` histogram whose memory does not grow with the number of labels
    (with ``sparse``, :class:`SparseLabelTraceOutput`: the same as entries, whose memory does not
    grow with ``N top_k`` either). Negative labels are ignored. ``power`` 2 gives the squared-weight
    row sums of the linear-inverse paper (Eq. 24); ``opacity_lambda`` polarises opacities (Eq. 23).

    Args:
        values: [H, W, D] or [H, W] float, or [H, W] int labels (negative = ignored); with ``pixels``
            rows [P, D] / [P] instead.
        pixels: [P, 2] int (x, y) pixels that ``values`` rows belong to, or None for the full frame.
    """
    if power not in (1, 2):
        raise ValueError(f"power must be 1 or 2, got {power}")
    device = proj.means2d.device
    proj = _with_lambda(proj, opacity_lambda)
    full = pixels is None
    pixels, order, offsets = _pixels(proj, pixels)
    P = pixels.shape[0]
    is_labels = not torch.is_floating_point(values)
    if full:
        expected = (proj.height, proj.width)
        if tuple(values.shape[:2]) != expected:
            raise ValueError(f"value map is {tuple(values.shape[:2])}, view is {expected} (H, W)")
    values = values.to(device).reshape(P, -1) if not is_labels else values.to(device).reshape(P)
    name = _resolve(backend, device)
    module = _module(name)
    if is_labels:
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        labels = values.to(torch.int32).contiguous()
        if sparse and name == "cpu":  # entries straight from the kernel
            return SparseLabelTraceOutput(*module.trace_labels(proj, labels, pixels, order, offsets, power,
                                                               top_k, sparse=True))
        out = LabelTraceOutput(*module.trace_labels(proj, labels, pixels, order, offsets, power, top_k))
        return out.to_sparse() if sparse else out
    acc, wsum, asum, hits = module.trace(proj, values.to(torch.float32).contiguous(), pixels, order,
                                         offsets, power)
    return TraceOutput(acc, wsum, asum, hits)

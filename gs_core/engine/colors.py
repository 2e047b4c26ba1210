"""View-dependent colours of Gaussians from their SH coefficients, in torch (differentiable).

``c(d) = max(0, sum_k coeffs[k] Y_k(d) + 0.5)`` with ``d`` the unit direction from the camera centre
to the Gaussian's mean, gsplat's ``spherical_harmonics`` followed by its ``clamp_min(c + 0.5, 0)``.
The basis is :func:`gs_core.sh.basis_terms` (one implementation for numpy and torch); autograd gives
the SH backward w.r.t. the coefficients and, through ``d``, the means.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..camera import Camera
from ..sh import basis_terms, degree_for


def sh_colors(coeffs: Tensor, means: Tensor, camera: Camera) -> Tensor:
    """coeffs [N, K, 3] (DC first, K = (degree+1)^2), means [N, 3] -> colours [N, 3] seen from ``camera``.

    Args:
        coeffs: [N, K, 3] SH coefficients, DC first.
        means: [N, 3] world-space centres.
    """
    degree = degree_for(coeffs.shape[1])
    centre = torch.as_tensor(camera.position, dtype=means.dtype, device=means.device)
    dirs = torch.nn.functional.normalize(means - centre, dim=-1)
    basis = torch.stack(basis_terms(dirs[:, 0], dirs[:, 1], dirs[:, 2], degree), dim=-1)  # [N, K]
    return torch.clamp_min((basis[:, :, None] * coeffs).sum(dim=1) + 0.5, 0.0)

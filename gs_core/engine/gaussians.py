"""Gaussians: the activated torch form of a scene, what the engine renders and traces."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Gaussians:
    """Activated splat geometry on one device. Colours/features are passed separately."""

    means: Tensor  # [N, 3]
    quats: Tensor  # [N, 4] wxyz, unit length
    scales: Tensor  # [N, 3]; 2DGS: third column is 0 (the splat is flat)
    opacities: Tensor  # [N] in (0, 1)
    kind: str = "3dgs"  # "3dgs" (EWA volumetric) or "2dgs" (ray-splat intersection)

    def __post_init__(self):
        if self.kind not in ("3dgs", "2dgs"):
            raise ValueError(f"kind must be '3dgs' or '2dgs', got {self.kind!r}")

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def device(self) -> torch.device:
        return self.means.device

    @classmethod
    def from_scene(cls, scene, device="cpu") -> "Gaussians":
        """From a :class:`gs_core.scene.GaussianScene` (file conventions) to activated tensors."""
        def t(a):
            return torch.as_tensor(a, dtype=torch.float32).to(device)

        quats = torch.nn.functional.normalize(t(scene.quats), dim=-1)
        scales = torch.exp(t(scene.log_scales))
        if scales.shape[1] == 2:
            scales = torch.cat([scales, torch.zeros_like(scales[:, :1])], dim=1)
        return cls(means=t(scene.means).contiguous(), quats=quats.contiguous(), scales=scales.contiguous(),
                   opacities=torch.sigmoid(t(scene.opacity_logits)).contiguous(), kind=scene.kind)

    def subset(self, index) -> "Gaussians":
        return Gaussians(self.means[index], self.quats[index], self.scales[index],
                         self.opacities[index], self.kind)

    def to(self, device) -> "Gaussians":
        return Gaussians(self.means.to(device), self.quats.to(device), self.scales.to(device),
                         self.opacities.to(device), self.kind)


def polarise_opacities(opacities: Tensor, lam: float) -> Tensor:  # [N] -> [N]
    """Opacity polarisation ``sigmoid(lam * logit(o))`` (linear-inverse paper, Eq. 23).

    ``lam > 1`` pushes opacities towards 0 or 1, strengthening the diagonal of ``A^T A``.

    Args:
        opacities: [N] in (0, 1).
    """
    return _Polarise.apply(opacities.clamp(1e-7, 1 - 1e-7), float(lam))


class _Polarise(torch.autograd.Function):
    """``sigmoid(lam * logit(o))`` with a backward free of cancellation: autograd's ``s * (1 - s)``
    loses ``u / (1 - s)`` of its relative precision for opacities near 1 (float32: 2e-4 at
    ``s = 0.9997``); ``s * sigmoid(-x)`` is exact to a few roundings, and ``1 - o`` is exact for
    ``o >= 0.5`` (Sterbenz)."""

    @staticmethod
    def forward(ctx, o: Tensor, lam: float) -> Tensor:  # o: [N] in (0, 1)
        x = lam * torch.logit(o)
        ctx.save_for_backward(o, x)
        ctx.lam = lam
        return torch.sigmoid(x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # grad: [N]
        o, x = ctx.saved_tensors
        ds_dx = torch.sigmoid(x) * torch.sigmoid(-x)
        return grad * ds_dx * ctx.lam / (o * (1 - o)), None

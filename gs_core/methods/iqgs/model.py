"""The IQGS model (paper Sec. "IQGS Architecture", Eq. 2-7).

Every Gaussian carries a learnable instance attribute ``I`` [N, D_obj] (geometry and colours stay
frozen). A linear projection ``P`` maps it to the feature space of width ``D``: ``F_3D = P(I)``
(Eq. 2) for the Gaussians, ``F_2D = P(Render(I))`` (Eq. 3) for pixels, rendered with the engine's
``render`` (at sampled pixels during training). ``N_q`` learnable queries ``Q'`` (Eq. 4) are enriched
by a small transformer decoder, cross-attention over the view's rendered features then
self-attention (Eq. 5), and mask logits are dot products: ``S_3D = Q F_3D^T`` (Eq. 6),
``S_2D = Q F_2D^T`` (Eq. 7).

The scene-specific part (the attributes) is kept apart from the transferable part
(:class:`IQGSHead`: ``P``, ``Q'`` and the decoder), so a head trained on one scene can be put on
another (paper Tab. 2). Like Mask2Former the decoder blocks are cross-attention, self-attention,
FFN, each residual with a LayerNorm after it; unlike it, keys carry no positional encoding (pixel
positions mean nothing in another view or scene).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ...engine import Projection, render


@dataclass
class ModelConfig:
    num_queries: int = 300  # N_q (paper default; Tab. 3 ablates 50, 150, 300)
    dim: int = 16  # D: query and projected-feature width (Tab. 3 ablates 8, 16, 32)
    attr_dim: int = 16  # D_obj: rendered per-Gaussian attribute width (Gaussian Grouping's 16)
    layers: int = 2  # decoder blocks
    heads: int = 2  # attention heads (divides 8, 16, 32)
    ffn: int = 64  # FFN hidden width
    attr_init_std: float = 0.1  # attributes start ~ N(0, std^2)
    seed: int = 0


class DecoderBlock(nn.Module):
    """Cross-attention of the queries over pixel features, self-attention among them, FFN (Eq. 5)."""

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.cross = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(3)])

    def forward(self, q: Tensor, memory: Tensor) -> Tensor:  # q [1, Nq, D], memory [1, P, D] -> [1, Nq, D]
        """One block: cross-attention, self-attention, FFN, each residual with a LayerNorm after it.

        Args:
            q: [1, Nq, D] queries.
            memory: [1, P, D] pixel features.
        """
        q = self.norms[0](q + self.cross(q, memory, memory, need_weights=False)[0])
        q = self.norms[1](q + self.self_attn(q, q, q, need_weights=False)[0])
        return self.norms[2](q + self.ffn(q))


class IQGSHead(nn.Module):
    """What transfers between scenes: the projection ``P``, the queries ``Q'`` and the decoder."""

    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        if config.dim % config.heads:
            raise ValueError(f"dim {config.dim} is not a multiple of heads {config.heads}")
        self.config = config
        self.projection = nn.Linear(config.attr_dim, config.dim)  # P (Eq. 2-3)
        self.queries = nn.Parameter(torch.randn(config.num_queries, config.dim))  # Q' (Eq. 4)
        self.blocks = nn.ModuleList([DecoderBlock(config.dim, config.heads, config.ffn) for _ in range(config.layers)])

    def enrich(self, features_2d: Tensor) -> Tensor:  # [P, D] pixel features -> [Nq, D]
        """``Q = SelfAttn(CrossAttn(Q', F_2D))`` (Eq. 5) over one view's (sampled) pixel features.

        Args:
            features_2d: [P, D] pixel features of one view.
        """
        q, memory = self.queries[None], features_2d[None]
        for block in self.blocks:
            q = block(q, memory)
        return q[0]


class IQGSModel(nn.Module):
    """Instance attributes of ``num_gaussians`` Gaussians and a head (:class:`IQGSHead`)."""

    def __init__(self, num_gaussians: int, config: ModelConfig = ModelConfig(), head: IQGSHead | None = None):
        super().__init__()
        gen = torch.Generator().manual_seed(config.seed)
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.head = head if head is not None else IQGSHead(config)
        self.config = self.head.config
        self.attributes = nn.Parameter(torch.randn(num_gaussians, self.config.attr_dim, generator=gen)
                                       * config.attr_init_std)  # I [N, D_obj]

    def features_3d(self) -> Tensor:  # -> [N, D]
        """``F_3D = P(I)`` (Eq. 2)."""
        return self.head.projection(self.attributes)

    def features_2d(self, proj: Projection, pixels: Tensor | None = None,  # pixels [P, 2] (x, y)
                    backend: str = "auto") -> tuple[Tensor, Tensor]:  # -> [P, D] (or [H*W, D]), alpha [P]
        """``F_2D = P(Render(I))`` (Eq. 3) at ``pixels`` (the whole frame, raster order, when None).

        Args:
            pixels: [P, 2] int (x, y), or None for the whole frame.
        """
        out = render(proj, self.attributes, pixels=pixels, backend=backend)
        rendered = out.features.reshape(-1, self.config.attr_dim)
        return self.head.projection(rendered), out.alpha.reshape(-1)

    def queries(self, features_2d: Tensor) -> Tensor:  # [P, D] -> [Nq, D]
        """The view's enriched queries ``Q`` (Eq. 5, :meth:`IQGSHead.enrich`).

        Args:
            features_2d: [P, D] pixel features of one view.
        """
        return self.head.enrich(features_2d)


def mask_logits(queries: Tensor, features: Tensor) -> Tensor:  # [Q, D], [P, D] -> [Q, P]
    """``S = Q F^T`` (Eq. 6 for Gaussians' features, Eq. 7 for pixels').

    Args:
        queries: [Q, D] enriched queries.
        features: [P, D] pixel features (Eq. 7) or [N, D] Gaussian features (Eq. 6).
    """
    return queries @ features.T

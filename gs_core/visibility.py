"""Whether a Gaussian is really seen in a view, from the sums of one trace.

Visibility is not ``weight > 0`` (DESIGN.md): a Gaussian hidden under a rug or behind a shelf's back
panel still receives a small ``alpha * T`` share wherever its footprint lies, and all of it lands in
the occluder's patch. Its *mean transmittance* where it lands, ``sum_p alpha T / sum_p alpha``, tells
the two apart: close to 1 for a front surface, a few tenths for the back layers of one surface, and
about ``(1 - o)^k`` (a few thousandths) behind ``k`` opaque splats. A Gaussian votes in a view only
where it is seen; Trace3D's released code uses a hit-count floor for the same purpose.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class VisibilityRule:
    """A Gaussian is seen in a view when it blends into at least ``min_hits`` pixels with a mean
    transmittance of at least ``min_transmittance`` there (see the module docstring)."""

    min_transmittance: float = 0.05
    min_hits: int = 1

    def seen(self, weight_sum: Tensor, alpha_sum: Tensor, hits: Tensor) -> Tensor:  # [N] x3 -> [N] bool
        """``weight_sum`` must be the power-1 sum ``sum_p alpha T`` over every pixel the Gaussian
        reaches (a label trace with no ignored pixels, or a dense trace).

        Args:
            weight_sum: [N] power-1 ``sum_p alpha T`` of each Gaussian.
            alpha_sum: [N] ``sum_p alpha``.
            hits: [N] int pixels each Gaussian was blended into.
        """
        mean_t = weight_sum / alpha_sum.clamp_min(1e-12)
        return (hits >= self.min_hits) & (mean_t >= self.min_transmittance)

    def of(self, out) -> Tensor:  # TraceOutput | LabelTraceOutput (power 1) -> [N] bool
        return self.seen(out.weight_sum, out.alpha_sum, out.hits)


DEFAULT_VISIBILITY = VisibilityRule()

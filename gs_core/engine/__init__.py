"""Render (Gaussians -> pixels) and trace (pixels -> Gaussians) over one camera; see :mod:`.api`."""

from .api import (BACKENDS, LabelTraceOutput, RenderOutput, SparseLabelTraceOutput, TraceOutput, project, render,
                  trace)
from .colors import sh_colors
from .gaussians import Gaussians, polarise_opacities
from .projection import Projection

__all__ = ["BACKENDS", "Gaussians", "LabelTraceOutput", "Projection", "RenderOutput", "SparseLabelTraceOutput",
           "TraceOutput", "polarise_opacities", "project", "render", "sh_colors", "trace"]

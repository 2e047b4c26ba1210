"""Rendering a synthetic world's views: RGB, depth and ground-truth instance maps at part, object
and group level, all from the clean splats (the world as it is, without training artefacts).

The GT instance at a pixel is the instance whose clean splats carry the largest summed blending
weight there (:func:`gs_core.labelmaps.labels_from_weights`), decided separately per level: the
object map is the argmax of per-object weights, not the object of the winning part. Pixels where
the clean scene's alpha is below 0.5 are background (-1) at every level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..camera import Camera
from ..engine import project, render
from ..labelmaps import labels_from_weights
from .world import SynthWorld

MIN_ALPHA = 0.5


@dataclass
class ViewRender:
    camera: Camera
    rgb: np.ndarray  # [H, W, 3] float32 in [0, 1], over a black background
    alpha: np.ndarray  # [H, W] float32
    depth: np.ndarray  # [H, W] float32 expected depth in metres, 0 = background
    part: np.ndarray  # [H, W] int64, -1 = background
    object: np.ndarray  # [H, W] int64
    group: np.ndarray  # [H, W] int64


@torch.no_grad()
def render_views(world: SynthWorld, cameras: list[Camera], *, backend: str = "auto",
                 progress: Callable[[], None] | None = None) -> list[ViewRender]:
    """One render per view of ``[rgb | one-hot part]`` over the clean splats; object and group
    weights are sums of part weights. ``progress`` is called after each view."""
    clean = world.labels.clean
    scene = world.scene.subset(clean)
    gaussians = scene.to_gaussians()
    h = world.hierarchy
    part = torch.as_tensor(world.labels.part[clean]).long()
    n_parts, n_objects, n_groups = len(h.parts), len(h.objects), len(h.groups)
    features = torch.cat([torch.as_tensor(scene.base_colors, dtype=torch.float32),
                          torch.nn.functional.one_hot(part, n_parts).float()], dim=1)
    part_to_object = torch.nn.functional.one_hot(torch.as_tensor(h.part_to_object).long(), n_objects).float()
    object_to_group = torch.nn.functional.one_hot(torch.as_tensor(h.object_to_group).long(), n_groups).float()
    views = []
    for cam in cameras:
        out = render(project(gaussians, cam), features, backend=backend)
        alpha = out.alpha
        w_part = out.features[..., 3:]
        w_object = w_part @ part_to_object
        w_group = w_object @ object_to_group
        fg = alpha >= MIN_ALPHA
        depth = torch.where(fg, out.depth / alpha.clamp_min(1e-8), torch.zeros_like(alpha))
        views.append(ViewRender(
            camera=cam, rgb=out.features[..., :3].clamp(0, 1).numpy(), alpha=alpha.numpy(), depth=depth.numpy(),
            part=labels_from_weights(w_part, torch.arange(n_parts), alpha, MIN_ALPHA),
            object=labels_from_weights(w_object, torch.arange(n_objects), alpha, MIN_ALPHA),
            group=labels_from_weights(w_group, torch.arange(n_groups), alpha, MIN_ALPHA)))
        if progress is not None:
            progress()
    return views

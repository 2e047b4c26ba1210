"""Rendering a synthetic world's views: RGB, depth and ground-truth instance maps at part, object
and group level, all from the clean splats (the world as it is, without training artefacts).

The GT instance at a pixel is the instance whose clean splats carry the largest summed blending
weight there (:func:`gs_core.labelmaps.labels_from_weights`), decided separately per level: the
object map is the argmax of per-object weights, not the object of the winning part. Pixels where
the clean scene's alpha is below 0.5 are background (-1) at every level. The city
(:mod:`gs_core.synth.city`, thousands of parts) takes the other option of :func:`iter_views`: the
part map alone by the same rule, objects and groups the part's, and each view from the splats near
its camera.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from ..camera import Camera
from ..engine import project, render
from ..engine.gaussians import Gaussians
from ..labelmaps import labels_from_channels, label_channels, labels_from_weights
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
def iter_views(world: SynthWorld, cameras: list[Camera], *, backend: str = "auto", radius: float | None = None,
               per_level: bool = True) -> Iterator[ViewRender]:
    """Each view's :class:`ViewRender` in turn, from one render of ``[rgb | label channels]`` over
    the clean splats.

    ``per_level`` (the rooms): one channel per part; object and group weights are sums of part
    weights, each level's map its own argmax. Otherwise (the city, thousands of parts): the part
    map is the heaviest part of a render of shared channels (:func:`gs_core.labelmaps.label_channels`:
    as many channels as parts overlap on screen), objects and groups the part's. ``radius`` renders
    only the splats within that distance of the camera and not behind it."""
    clean = world.labels.clean
    scene = world.scene if clean.all() else world.scene.subset(clean)
    gaussians = scene.to_gaussians()
    h = world.hierarchy
    part = torch.as_tensor(world.labels.part[clean]).long()
    n_parts, n_objects, n_groups = len(h.parts), len(h.objects), len(h.groups)
    colors = torch.as_tensor(scene.base_colors, dtype=torch.float32)
    if per_level:
        colors = torch.cat([colors, torch.nn.functional.one_hot(part, n_parts).float()], dim=1)
        part_to_object = torch.nn.functional.one_hot(torch.as_tensor(h.part_to_object).long(), n_objects).float()
        object_to_group = torch.nn.functional.one_hot(torch.as_tensor(h.object_to_group).long(), n_groups).float()
    for cam in cameras:
        g, features, labels = gaussians, colors, part
        if radius is not None:
            idx = _near(gaussians, cam, radius)
            g = Gaussians(g.means[idx], g.quats[idx], g.scales[idx], g.opacities[idx], g.kind)
            features, labels = colors[idx], part[idx]
        proj = project(g, cam)
        if not per_level:
            channel, lookup = label_channels(proj, labels)
            cols = torch.arange(lookup.shape[1])
            features = torch.cat([features, (channel[:, None] == cols[None, :]).float()], dim=1)
        out = render(proj, features, backend=backend)
        alpha = out.alpha
        fg = alpha >= MIN_ALPHA
        depth = torch.where(fg, out.depth / alpha.clamp_min(1e-8), torch.zeros_like(alpha))
        rgb = out.features[..., :3].clamp(0, 1).numpy()
        if per_level:
            w_part = out.features[..., 3:]
            w_object = w_part @ part_to_object
            w_group = w_object @ object_to_group
            yield ViewRender(
                camera=cam, rgb=rgb, alpha=alpha.numpy(), depth=depth.numpy(),
                part=labels_from_weights(w_part, torch.arange(n_parts), alpha, MIN_ALPHA),
                object=labels_from_weights(w_object, torch.arange(n_objects), alpha, MIN_ALPHA),
                group=labels_from_weights(w_group, torch.arange(n_groups), alpha, MIN_ALPHA))
        else:
            part_map = labels_from_channels(proj, out.features[..., 3:], lookup, alpha, MIN_ALPHA)
            obj = np.where(part_map >= 0, h.part_to_object[np.maximum(part_map, 0)], -1).astype(np.int64)
            group = np.where(obj >= 0, h.object_to_group[np.maximum(obj, 0)], -1).astype(np.int64)
            yield ViewRender(cam, rgb, alpha.numpy(), depth.numpy(), part_map, obj, group)


def _near(gaussians: Gaussians, cam: Camera, radius: float) -> torch.Tensor:  # -> [n] int64 rows
    """The Gaussians within ``radius`` of the camera and not more than 1 m behind it."""
    eye = torch.as_tensor(cam.camera_to_world[:3, 3], dtype=torch.float32)
    ahead = torch.as_tensor(cam.camera_to_world[:3, 2], dtype=torch.float32)
    rel = gaussians.means - eye
    return torch.nonzero(((rel * rel).sum(1) < radius**2) & ((rel @ ahead) > -1.0)).squeeze(1)


def render_views(world: SynthWorld, cameras: list[Camera], *, backend: str = "auto",
                 progress: Callable[[], None] | None = None, radius: float | None = None,
                 per_level: bool = True) -> list[ViewRender]:
    """:func:`iter_views` as a list; ``progress`` is called after each view."""
    views = []
    for view in iter_views(world, cameras, backend=backend, radius=radius, per_level=per_level):
        views.append(view)
        if progress is not None:
            progress()
    return views

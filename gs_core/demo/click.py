"""The demo's click: the pixel a user would click on the synthetic world's most prominent table-top
item, chosen from its ground truth (shared by ``gs-core demo`` and ``gs-core demo --blender``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Click:
    object: int
    name: str
    view: int  # dataset index of the training view clicked
    xy: tuple[int, int]


def choose_click(ds, gt) -> Click:
    """The centre pixel of the largest table-top item (most clean Gaussians) in the training view
    where its ground-truth region is largest: the pixel of that region farthest from its edge
    (a centroid can fall outside a non-convex or partly occluded region)."""
    from scipy.ndimage import distance_transform_edt

    from ..eval import MIN_QUERY_PIXELS
    from ..errors import UserError

    objects = gt.hierarchy.objects
    index = {name: k for k, name in enumerate(ds.names)}
    train = [index[n] for n in gt.train]
    maps = np.stack([gt.instance_map(ds.names[v]) for v in train])
    area = np.stack([np.bincount(m[m >= 0].ravel(), minlength=len(objects)) for m in maps])  # [V, O]
    own = gt.gaussians.object
    size = np.bincount(own[(own >= 0) & gt.gaussians.clean], minlength=len(objects))
    visible = [o for o in gt.hierarchy.things if area[:, o].max() >= MIN_QUERY_PIXELS]
    items = [o for o in visible if objects[o].support is not None] or visible
    if not items:
        raise UserError("demo: no object is visible in a training view; try another --seed")
    obj = max(items, key=lambda o: (size[o], area[:, o].max()))
    k = int(np.argmax(area[:, obj]))
    region = maps[k] == obj
    depth = distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    ys, xs = np.nonzero(depth >= depth.max() - 1e-6)
    cy, cx = np.argwhere(region).mean(0)
    j = int(np.argmin((ys - cy) ** 2 + (xs - cx) ** 2))
    return Click(obj, objects[obj].name, train[k], (int(xs[j]), int(ys[j])))

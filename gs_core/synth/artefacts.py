"""The artefacts real 3DGS/2DGS training leaves, added on top of the clean surface splats.

* straddlers — large, low-opacity splats across the contact of two touching objects (a mug on a
  table, a leg on the floor): the ambiguous Gaussians Trace3D's density control splits (Sec. 3.4);
* intruders — ordinary splats of one object pushed partly inside a touching one;
* floaters — free splats in mid-air, half of them just in front of training cameras where
  real floaters gather.

Each artefact's ground truth names the objects it spans (``spans``: owner first); floaters have
no object (-1). Images and ground-truth maps are rendered from the clean splats only: the
artefacts are defects of the reconstruction, not of the world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from ..camera import Camera
from .groundtruth import ARTEFACTS, GaussianLabels
from .splats import THIN, Splats


@dataclass
class ArtefactConfig:
    """Amounts, as a fraction of the number of clean splats."""

    straddlers: float = 0.01
    intruders: float = 0.005
    floaters: float = 0.002


def _normals(quats: np.ndarray) -> np.ndarray:  # [n, 4] wxyz -> [n, 3]: the rotated z axis
    w, x, y, z = quats.T
    return np.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], axis=1)


def contact_pairs(splats: Splats) -> np.ndarray:  # -> [K, 2] int64
    """Pairs of clean splats of different objects whose footprints overlap: ``|p_i - p_j|`` below
    0.6 times the sum of their largest scales. These are where objects touch."""
    clean = np.flatnonzero(splats.labels.clean)
    sigma = splats.scales[clean, :2].max(1)
    pairs = cKDTree(splats.means[clean]).query_pairs(1.2 * float(sigma.max()), output_type="ndarray")
    obj = splats.labels.object[clean]
    pairs = pairs[obj[pairs[:, 0]] != obj[pairs[:, 1]]]
    dist = np.linalg.norm(splats.means[clean[pairs[:, 0]]] - splats.means[clean[pairs[:, 1]]], axis=1)
    pairs = pairs[dist < 0.6 * (sigma[pairs[:, 0]] + sigma[pairs[:, 1]])]
    return clean[pairs]


def _pick_pairs(pairs: np.ndarray, objects: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` contact pairs, spread evenly over the touching object pairs (not over splat pairs,
    which a large contact such as a rug on the floor would dominate), each randomly oriented."""
    if count == 0 or len(pairs) == 0:
        return np.zeros((0, 2), np.int64)
    key = np.sort(objects[pairs], axis=1)
    _, which = np.unique(key, axis=0, return_inverse=True)
    which = which.reshape(-1)
    n_keys = which.max() + 1
    chosen_key = rng.integers(n_keys, size=count)
    order = np.argsort(which, kind="stable")
    starts = np.searchsorted(which[order], np.arange(n_keys))
    sizes = np.bincount(which, minlength=n_keys)
    picked = pairs[order[starts[chosen_key] + (rng.random(count) * sizes[chosen_key]).astype(np.int64)]]
    flip = rng.random(count) < 0.5
    picked[flip] = picked[flip][:, ::-1]
    return picked


def _random_quats(n: int, rng: np.random.Generator) -> np.ndarray:  # -> [n, 4]
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def _labels(s: Splats, owner_splat: np.ndarray, other_splat: np.ndarray, kind: str) -> GaussianLabels:
    lab = s.labels
    n = len(owner_splat)
    return GaussianLabels(lab.part[owner_splat], lab.object[owner_splat], lab.group[owner_splat],
                          np.full(n, ARTEFACTS.index(kind), np.int8),
                          np.stack([lab.object[owner_splat], lab.object[other_splat]], axis=1))


def straddlers(s: Splats, pairs: np.ndarray, count: int, rng: np.random.Generator) -> Splats:
    """Large, faint splats centred across contacts; owned by the object of the nearer endpoint.

    Their size is a multiple of the finer of the two surfaces' splats: training densifies a splat
    whose footprint crosses detail it cannot reproduce, so across a pencil lying on a desk the
    straddler stays at the pencil's scale, not the desk's (which would lay a faint halo centimetres
    wide around a pencil 7 mm across)."""
    pick = _pick_pairs(pairs, s.labels.object, count, rng)
    i, j = pick[:, 0], pick[:, 1]
    gap = np.linalg.norm(s.means[i] - s.means[j], axis=1, keepdims=True)
    centre = (s.means[i] + s.means[j]) / 2 + rng.normal(size=(len(i), 3)) * 0.25 * gap
    nearer_i = np.linalg.norm(centre - s.means[i], axis=1) <= np.linalg.norm(centre - s.means[j], axis=1)
    owner, other = np.where(nearer_i, i, j), np.where(nearer_i, j, i)
    sigma = rng.uniform(1.5, 3.0, len(i)) * np.minimum(s.scales[i, :2].max(1), s.scales[j, :2].max(1))
    scales = np.stack([sigma, sigma * rng.uniform(0.6, 1.0, len(i)), 0.5 * sigma], axis=1)
    return Splats(centre, _random_quats(len(i), rng), scales, rng.uniform(0.05, 0.3, len(i)),
                  (s.colors[i] + s.colors[j]) / 2, _labels(s, owner, other, "straddler"))


def intruders(s: Splats, pairs: np.ndarray, count: int, rng: np.random.Generator) -> Splats:
    """Copies of splats of one object moved onto a touching object's surface and pushed into it.

    A copy is shrunk, where it is larger, to the tangent extent of the host splat it lands on, and
    pushed in by a share of that size: training keeps a foreign splat only where the host's surface
    hides it, and a splat wider than the host's own (a desk's splat on a pencil 7 mm across) would
    stick out past the host on every side and paint over it, which photometric training removes."""
    pick = _pick_pairs(pairs, s.labels.object, count, rng)
    i, j = pick[:, 0], pick[:, 1]
    size_i = s.scales[i, :2].max(1, keepdims=True)
    shrink = np.minimum(1.0, s.scales[j, :2].max(1, keepdims=True) / np.maximum(size_i, 1e-12))
    depth = rng.uniform(0.3, 0.8, (len(i), 1)) * size_i * shrink
    scales = s.scales[i] * rng.uniform(1.0, 1.5, (len(i), 1)) * shrink
    return Splats(s.means[j] - _normals(s.quats[j]) * depth, s.quats[i], scales, rng.uniform(0.5, 0.9, len(i)),
                  s.colors[i], _labels(s, i, j, "intruder"))


def floaters(count: int, cameras: list[Camera], bounds: np.ndarray, scale: float,
             rng: np.random.Generator) -> Splats:
    """Half near training cameras (0.3-1 m ahead, inside the view), half anywhere in ``bounds``
    [2, 3] (lo, hi). ``scale`` is a typical splat size of the scene."""
    near = count // 2 if cameras else 0
    cam = rng.integers(len(cameras), size=near) if cameras else np.zeros(0, np.int64)
    c2w = np.stack([c.camera_to_world for c in cameras])[cam] if near else np.zeros((0, 4, 4))
    dist = rng.uniform(0.3, 1.0, (near, 1))
    local = np.c_[rng.uniform(-0.35, 0.35, (near, 1)) * dist, rng.uniform(-0.25, 0.25, (near, 1)) * dist, dist]
    ahead = np.einsum("nij,nj->ni", c2w[:, :3, :3], local) + c2w[:, :3, 3]
    anywhere = rng.uniform(bounds[0], bounds[1], (count - near, 3))
    sigma = rng.uniform(0.5, 2.5, (count, 1)) * scale * rng.uniform(0.5, 1.0, (count, 3))
    sigma[:, 2] = np.maximum(sigma[:, 2], THIN * sigma[:, :2].min(1))
    grey = rng.uniform(0.2, 0.8, (count, 1))
    labels = GaussianLabels(np.full(count, -1, np.int32), np.full(count, -1, np.int32), np.full(count, -1, np.int32),
                            np.full(count, ARTEFACTS.index("floater"), np.int8), np.full((count, 2), -1, np.int32))
    return Splats(np.concatenate([ahead, anywhere]), _random_quats(count, rng), sigma,
                  rng.uniform(0.1, 0.6, count), np.clip(grey + rng.normal(0, 0.08, (count, 3)), 0, 1), labels)


def add_artefacts(clean: Splats, cameras: list[Camera], bounds: np.ndarray, config: ArtefactConfig,
                  rng: np.random.Generator) -> Splats:
    """``clean`` followed by its straddlers, intruders and floaters (in that order)."""
    n = len(clean)
    pairs = contact_pairs(clean)
    scale = float(np.median(clean.scales[:, :2]))
    return Splats.cat([
        clean,
        straddlers(clean, pairs, int(round(config.straddlers * n)), rng),
        intruders(clean, pairs, int(round(config.intruders * n)), rng),
        floaters(int(round(config.floaters * n)), cameras, bounds, scale, rng),
    ])

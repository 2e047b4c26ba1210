"""A SAM-like mask simulator: per view, the stack of binary masks SAM's automatic generator would
give, made from the ground-truth instance maps, with the failure modes Trace3D (Sec. 1, 3.2) and
Proto-SaGa (Sec. 1, Fig. 1) describe, each behind a knob of :class:`MaskNoise`:

* granularity — the same object as its parts in one view, whole in another, with its support
  (object + table: its group) in a third;
* nested — the other levels emitted too, so masks overlap and nest as SAM's multi-output does;
* over_segment — a mask cut in two; under_segment — two adjacent objects merged into one mask;
* jitter — boundaries displaced by a smooth random field;
* miss_small — small objects missed; spurious — masks that match nothing;
* the hard cases' failures (:mod:`.hardcases`; off in ``MaskNoise.level(x)`` unless ``hard=True``):
  row — touching look-alikes (visible objects of one category sharing an edge) as one mask in some
  views, apart in others; holder — a container and its contents, or a stack, as one mask or apart;
  thin_miss / thin_cut — a thin long object (at most ``thin_px`` pixels from its axis, four times
  longer than wide in the view) missed, or cut into pieces.

``MaskNoise()`` (all zero) gives clean masks: exactly one mask per visible object, equal to its
ground-truth region. ``MaskNoise.level(x)`` scales a typical-SAM preset (x = 1) linearly.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from .groundtruth import Hierarchy


@dataclass(frozen=True)
class MaskNoise:
    """Knobs of the simulator (probabilities are per view and per object or mask)."""

    granularity: float = 0.0  # P(an object shows as its parts or its group instead of itself)
    nested: float = 0.0  # P(the object's other levels are emitted as well: overlapping, nested masks)
    over_segment: float = 0.0  # P(a mask is cut in two along a random line through its centre)
    under_segment: float = 0.0  # P(an object's mask is merged with an adjacent object's)
    jitter: float = 0.0  # boundary displacement, std in % of the image width
    miss_small: float = 0.0  # P(an object covering less than `small` of the image is missed)
    small: float = 0.002  # what "small" means, as a fraction of the image area
    spurious: float = 0.0  # expected number of masks per view that match no object
    min_area: int = 1  # masks below this many pixels are dropped (after all noise)
    row: float = 0.0  # P(a row of touching look-alikes shows as one mask in a view)
    holder: float = 0.0  # P(a container with its contents, a stack with what rests on it, shows as one mask)
    thin_miss: float = 0.0  # P(a thin object is missed in a view)
    thin_cut: float = 0.0  # P(a thin object that is not missed comes in 2-3 pieces)
    thin_px: float = 2.5  # "thin": no pixel of its mask farther than this from the mask's edge

    @classmethod
    def level(cls, noise: float, hard: bool = False) -> "MaskNoise":
        """A single noise level: 0 = clean, 1 = a typical SAM automatic-mask run on indoor views;
        ``hard`` adds the hard cases' failures (row, holder, thin_miss, thin_cut)."""
        if noise < 0:
            raise ValueError(f"noise level must be >= 0, got {noise}")
        extra = dict(row=min(1.0, 0.5 * noise), holder=min(1.0, 0.4 * noise), thin_miss=min(1.0, 0.3 * noise),
                     thin_cut=min(1.0, 0.4 * noise)) if hard else {}
        return cls(granularity=min(1.0, 0.35 * noise), nested=min(1.0, 0.4 * noise),
                   over_segment=min(1.0, 0.12 * noise), under_segment=min(1.0, 0.12 * noise),
                   jitter=1.0 * noise, miss_small=min(1.0, 0.6 * noise), spurious=1.5 * noise, **extra)

    def only(self, *knobs: str) -> "MaskNoise":
        """These knobs as they are, every other failure mode off (``small`` and ``min_area`` kept):
        to measure what each failure mode costs a method on its own."""
        unknown = [k for k in knobs if k not in KNOBS]
        if unknown:
            raise ValueError(f"unknown mask-noise knob(s) {', '.join(unknown)}; choose from {', '.join(KNOBS)}")
        return MaskNoise(**{k: getattr(self, k) for k in knobs}, small=self.small, min_area=self.min_area,
                         thin_px=self.thin_px)

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


KNOBS = tuple(f.name for f in fields(MaskNoise) if f.name not in ("small", "min_area", "thin_px"))  # failure modes


@dataclass
class MaskSource:
    """Where a simulated mask came from: ``kind`` in object, part, group, merged (two objects),
    split (half of the mask of ``parent``), spurious, row (touching look-alikes), holder (a container
    or a stack's base first, then what rests on it), piece (a piece of a thin object);
    ``ids`` are object/part/group ids."""

    kind: str
    ids: tuple[int, ...]
    parent: str | None = None  # for "split": the kind that was cut


@dataclass
class SimulatedMasks:
    masks: np.ndarray  # [M, H, W] bool, sorted by area, largest first
    scores: np.ndarray  # [M] float32, a predicted-IoU-like confidence
    sources: list[MaskSource]


def _adjacent(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (a, b), a < b, of labels that share a 4-neighbour edge (background -1 excluded)."""
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        d = (a != b) & (a >= 0) & (b >= 0)
        lo, hi = np.minimum(a[d], b[d]), np.maximum(a[d], b[d])
        pairs.update(zip(lo.tolist(), hi.tolist()))
    return pairs


def _jittered(mask: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """The region where the signed distance to ``mask``'s boundary is below a smooth random field
    of std ``amplitude`` pixels (0 leaves the mask unchanged)."""
    H, W = mask.shape
    coarse = rng.normal(size=(max(2, H // 8), max(2, W // 8)))
    field = ndimage.zoom(coarse, (H / coarse.shape[0], W / coarse.shape[1]), order=1)[:H, :W]
    field = field / max(float(field.std()), 1e-6)
    # Only pixels within the field's largest reach of the mask can change: the distance transforms
    # run on that box (exactly the same distances: for any pixel of the box, the nearest pixel
    # outside it clamped onto the box's edge is no farther and of the same kind).
    reach = int(np.ceil(max(amplitude * float(field.max()), 0.0))) + 1
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return signed_below(mask, field, amplitude)
    y0, y1 = max(ys.min() - reach, 0), min(ys.max() + reach + 1, H)
    x0, x1 = max(xs.min() - reach, 0), min(xs.max() + reach + 1, W)
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = signed_below(mask[y0:y1, x0:x1], field[y0:y1, x0:x1], amplitude)
    return out


def signed_below(mask: np.ndarray, field: np.ndarray, amplitude: float) -> np.ndarray:
    """Pixels whose signed distance to ``mask``'s boundary (negative inside) is below ``amplitude * field``."""
    signed = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
    return signed < amplitude * field


def _split(mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(mask)
    theta = rng.uniform(0, np.pi)
    side = (xs - xs.mean()) * np.cos(theta) + (ys - ys.mean()) * np.sin(theta) > 0
    a = np.zeros_like(mask)
    a[ys[side], xs[side]] = True
    return a, mask & ~a


def _ellipse(H: int, W: int, rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(0, H), rng.uniform(0, W)
    ry, rx = rng.uniform(0.05, 0.25) * H, rng.uniform(0.05, 0.25) * W
    t = rng.uniform(0, np.pi)
    y, x = np.mgrid[:H, :W] + 0.5
    u = ((x - cx) * np.cos(t) + (y - cy) * np.sin(t)) / rx
    v = (-(x - cx) * np.sin(t) + (y - cy) * np.cos(t)) / ry
    return u * u + v * v < 1


def _components(nodes: list[int], edges: set[tuple[int, int]]) -> list[list[int]]:
    """Connected components (sorted, each sorted) of the graph on ``nodes`` with ``edges``."""
    if not nodes:
        return []
    nodes = sorted(nodes)
    index = {n: k for k, n in enumerate(nodes)}
    pairs = np.array([(index[a], index[b]) for a, b in sorted(edges) if a in index and b in index], np.int64)
    pairs = pairs.reshape(-1, 2)
    graph = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(nodes),) * 2)
    _, comp = csgraph.connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for n, c in zip(nodes, comp):
        groups.setdefault(int(c), []).append(n)
    return sorted(groups.values())


def thin(mask: np.ndarray, thin_px: float) -> bool:
    """Whether ``mask`` is a thin long thing: no pixel farther than ``thin_px`` from its edge, and its
    area at least 8 ``r``^2 for its largest distance ``r`` (a bar 2r wide is then >= 4x longer than wide)."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return False
    crop = np.pad(mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1], 1)
    r = float(ndimage.distance_transform_edt(crop).max())
    return r <= thin_px and len(ys) >= 8 * r * r


def _pieces(mask: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """``mask`` cut across its principal axis at 1-2 random places, with a gap of 2 pixels at each cut."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], 1).astype(np.float64)
    centred = pts - pts.mean(0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    t = centred @ axis
    cuts = np.sort(rng.uniform(np.quantile(t, 0.2), np.quantile(t, 0.8), int(rng.integers(1, 3))))
    piece = np.searchsorted(cuts, t)
    keep = np.abs(t[:, None] - cuts[None, :]).min(1) > 1.0
    out = []
    for k in range(len(cuts) + 1):
        m = np.zeros_like(mask)
        sel = keep & (piece == k)
        m[ys[sel], xs[sel]] = True
        if m.any():
            out.append(m)
    return out


def _hard_failures(out: dict, object: np.ndarray, hierarchy: Hierarchy, noise: MaskNoise,
                   rng: np.random.Generator) -> None:
    """The hard cases' failures on the object-level masks of ``out`` (in place). Each draws from
    ``rng`` only when its knob is on, so the other failure modes see the stream they saw before."""
    if noise.holder > 0 or noise.row > 0:
        neighbours = _adjacent(object)
    if noise.holder > 0:
        objects = hierarchy.objects
        on: dict[int, list[int]] = {}
        for o in objects:
            if o.support is not None:
                on.setdefault(o.support, []).append(o.id)

        def above(h: int) -> list[int]:
            return [x for c in on.get(h, []) for x in (c, *above(c))]

        def depth(o: int) -> int:
            return 0 if objects[o].support is None else 1 + depth(objects[o].support)

        seen = set(np.unique(object[object >= 0]).tolist())
        # containers and stack bases, bottom first; not a group's root (that is the group level)
        holders = sorted((h for h in on if objects[h].support is not None), key=lambda h: (depth(h), h))
        for h in holders:
            if ("object", h) not in out:
                continue
            contents = [c for c in above(h) if c in seen]
            if not any((min(h, c), max(h, c)) in neighbours for c in contents) or rng.random() >= noise.holder:
                continue
            ids = (h, *sorted(contents))
            for o in ids:
                out.pop(("object", o), None)
            out[("holder", *ids)] = (MaskSource("holder", ids), np.isin(object, ids))
    if noise.row > 0:
        nodes = [k[1] for k in out if k[0] == "object" and not hierarchy.objects[k[1]].stuff]
        category = {o: hierarchy.objects[o].category for o in nodes}
        edges = {(a, b) for a, b in neighbours if a in category and b in category and category[a] == category[b]}
        for comp in _components(nodes, edges):
            if len(comp) < 2 or rng.random() >= noise.row:
                continue
            for o in comp:
                del out[("object", o)]
            out[("row", *comp)] = (MaskSource("row", tuple(comp)), np.isin(object, comp))
    if noise.thin_miss > 0 or noise.thin_cut > 0:
        for key in [k for k in out if k[0] == "object"]:
            mask = out[key][1]
            if not thin(mask, noise.thin_px):
                continue
            if rng.random() < noise.thin_miss:
                del out[key]
            elif rng.random() < noise.thin_cut:
                del out[key]
                for k, piece in enumerate(_pieces(mask, rng)):
                    out[("piece", key[1], k)] = (MaskSource("piece", (key[1],), parent="object"), piece)


def simulate_masks(part: np.ndarray, object: np.ndarray, group: np.ndarray, hierarchy: Hierarchy,
                   noise: MaskNoise, rng: np.random.Generator) -> SimulatedMasks:
    """Masks of one view from its GT maps ``part``, ``object``, ``group`` [H, W] (-1 = background)."""
    H, W = object.shape
    part_to_object = hierarchy.part_to_object
    object_area = np.bincount(object[object >= 0], minlength=len(hierarchy.objects))
    visible = np.flatnonzero(object_area)
    group_objects = {g: [o for o in visible if hierarchy.objects[o].group == g] for g in np.unique(group[group >= 0])}
    parts_shown = np.unique(part[part >= 0])
    out: dict[tuple, tuple[MaskSource, np.ndarray]] = {}  # one mask per source, in insertion order

    def emit(level: str, o: int) -> None:
        if level == "part":
            for p in parts_shown[part_to_object[parts_shown] == o]:
                out.setdefault(("part", int(p)), (MaskSource("part", (int(p),)), part == p))
        elif level == "group":
            g = hierarchy.objects[o].group
            out.setdefault(("group", g), (MaskSource("group", (g,)), group == g))
        else:
            out.setdefault(("object", int(o)), (MaskSource("object", (int(o),)), object == o))

    for o in visible:
        if object_area[o] < noise.small * H * W and rng.random() < noise.miss_small:
            continue
        levels = ["object"]
        if (part_to_object[parts_shown] == o).sum() >= 2:
            levels.append("part")
        if len(group_objects.get(hierarchy.objects[o].group, ())) >= 2:
            levels.append("group")
        level = "object"
        if len(levels) > 1 and rng.random() < noise.granularity:
            level = levels[1 + rng.integers(len(levels) - 1)]
        emit(level, o)
        if rng.random() < noise.nested:
            for other in levels:
                if other != level:
                    emit(other, o)

    _hard_failures(out, object, hierarchy, noise, rng)
    if noise.under_segment > 0:
        neighbours = _adjacent(object)
        merged: set[int] = set()
        for key in [k for k in out if k[0] == "object"]:
            o = key[1]
            if o in merged or key not in out or rng.random() >= noise.under_segment:
                continue
            partners = sorted(b if a == o else a for a, b in neighbours if o in (a, b) and not {a, b} & merged)
            if not partners:
                continue
            o2 = partners[rng.integers(len(partners))]
            del out[key]
            out.pop(("object", o2), None)
            merged.update((o, o2))
            a, b = min(o, o2), max(o, o2)
            out[("merged", a, b)] = (MaskSource("merged", (a, b)), (object == o) | (object == o2))

    items = list(out.values())
    if noise.over_segment > 0:
        cut = []
        for source, mask in items:
            if mask.sum() >= 2 * max(noise.min_area, 2) and rng.random() < noise.over_segment:
                for half in _split(mask, rng):
                    cut.append((MaskSource("split", source.ids, parent=source.kind), half))
            else:
                cut.append((source, mask))
        items = cut
    for _ in range(rng.poisson(noise.spurious) if noise.spurious > 0 else 0):
        items.append((MaskSource("spurious", ()), _ellipse(H, W, rng)))
    if noise.jitter > 0:
        amplitude = noise.jitter / 100 * W
        items = [(s, _jittered(m, amplitude, rng)) for s, m in items]

    items = [(s, m) for s, m in items if m.sum() >= noise.min_area]
    scores = np.array([rng.uniform(0.7, 0.9) if s.kind == "spurious" else rng.uniform(0.88, 1.0)
                       for s, _ in items], dtype=np.float32)
    areas = np.array([m.sum() for _, m in items], dtype=np.int64)
    order = np.argsort(-areas, kind="stable")
    masks = np.stack([items[k][1] for k in order]) if items else np.zeros((0, H, W), bool)
    return SimulatedMasks(masks, scores[order], [items[k][0] for k in order])

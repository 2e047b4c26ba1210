"""The synthetic world: a seeded layout of objects (an indoor room or a table top), its splats with
ground truth, artefacts, and train/test cameras.

``make_world(SynthConfig(layout="room", seed=3))`` is deterministic: the same config gives the
same splats bit for bit, on any machine (numpy's PCG64 streams, no threads).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..camera import Camera
from ..scene import GaussianScene
from .artefacts import ArtefactConfig, add_artefacts
from .groundtruth import GaussianLabels, GroupInfo, Hierarchy, ObjectInfo, PartInfo
from .hardcases import place_hard_cases
from .objects import ITEMS, Builder, ObjectSpec
from .splats import surface_splats

LAYOUTS = ("room", "tabletop")
ROOM_HEIGHT = 2.6
TABLETOP_DENSITY = 2.5  # table tops are filmed from closer: their surfaces are sampled this much denser


@dataclass
class SynthConfig:
    """Everything that defines a synthetic world. ``SynthConfig.sized(size)`` picks a preset."""

    layout: str = "room"  # "room" | "tabletop"
    seed: int = 0
    kind: str = "3dgs"  # "3dgs" | "2dgs"
    density: float = 1200.0  # splats per m^2 on objects
    stuff_density: float = 100.0  # splats per m^2 on floor, walls and ceiling
    width: int = 160
    height: int = 120
    fov_x_deg: float = 70.0
    n_train: int = 12
    n_test: int = 4
    n_items: int = 6  # items on the (main) table
    # hard cases on the (main) table (synth/hardcases.py): touching look-alikes, containers with contents,
    # thin long things, stacks; off, a layout draws the world it drew before they existed
    hard_cases: bool = False
    artefacts: ArtefactConfig = field(default_factory=ArtefactConfig)
    # surfaces no view sees, as trained scenes keep them from their initial points: the floor under the
    # rug (at the low opacity training leaves on them, splats.HIDDEN_OPACITY), the wall behind a
    # cabinet's back panel. They receive a little alpha*T in every view that looks at their occluder
    # (DESIGN.md, "Visibility is not weight > 0").
    hidden_surfaces: bool = True
    sh_degree: int = 3

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.kind not in ("3dgs", "2dgs"):
            raise ValueError(f"kind must be '3dgs' or '2dgs', got {self.kind!r}")
        if self.n_train < 1 or self.n_test < 0:
            raise ValueError("need at least one training view")

    @classmethod
    def sized(cls, size: str = "small", **overrides) -> "SynthConfig":
        if size not in SIZES:
            raise ValueError(f"size must be one of {tuple(SIZES)}, got {size!r}")
        return cls(**{**SIZES[size], **overrides})

    def to_json(self) -> dict:
        return asdict(self)


# density, resolution and view count per size; "small" is the default benchmark (~30k splats)
SIZES = {
    "tiny": dict(density=250.0, stuff_density=25.0, width=64, height=48, n_train=6, n_test=2, n_items=4),
    "small": dict(density=1200.0, stuff_density=100.0, width=160, height=120, n_train=12, n_test=4),
    # the scale of a real capture (a phone video's frames at VGA, 60 training views)
    "medium": dict(density=3000.0, stuff_density=250.0, width=640, height=480, n_train=60, n_test=10, n_items=8),
    # the lifting issue's scale case: about 300k splats, 200 training views
    "large": dict(density=10000.0, stuff_density=750.0, width=640, height=480, n_train=200, n_test=20, n_items=10),
}


@dataclass
class SynthWorld:
    """A generated world: the splat scene (clean splats first, then artefacts), its ground truth and cameras."""

    config: SynthConfig
    scene: GaussianScene
    labels: GaussianLabels
    hierarchy: Hierarchy
    train_cameras: list[Camera]
    test_cameras: list[Camera]

    @property
    def cameras(self) -> list[Camera]:
        return self.train_cameras + self.test_cameras


# ---- layouts -----------------------------------------------------------------------------------

@dataclass
class _Layout:
    objects: list[ObjectSpec]
    bounds: np.ndarray  # [2, 3] the space cameras and floaters live in
    target: np.ndarray  # [3] what the cameras circle
    radius: tuple[float, float]  # camera ring half-axes (x, y)
    inside: bool  # cameras inside a room (ring around the target) or orbiting a table


def _rot2(yaw: float) -> np.ndarray:  # [2, 2]
    return np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])


def _free(pos, radius: float, placed: list[tuple[np.ndarray, float]], gap: float = 0.05) -> bool:
    return all(np.hypot(*(pos - p)) > radius + r + gap for p, r in placed)


def _place_items(b: Builder, support: ObjectSpec, yaw: float, centre: np.ndarray, categories: list[str],
                 rng: np.random.Generator, placed: list | None = None) -> list[ObjectSpec]:
    """Items on ``support``'s flat top (placed at ``centre`` with ``yaw``); a box may be stacked on a book.
    ``placed``: footprints (top frame) already taken there."""
    hx, hy = support.top
    R = _rot2(yaw)
    placed, out = ([] if placed is None else placed), []
    for cat in categories:
        item = b.item(cat)
        item.support = support.name
        r = item.radius
        if hx - r - 0.03 <= 0 or hy - r - 0.03 <= 0:
            continue
        for _ in range(30):
            local = rng.uniform([-hx + r + 0.03, -hy + r + 0.03], [hx - r - 0.03, hy - r - 0.03])
            if _free(local, r, placed, gap=0.03):
                break
        else:
            continue
        placed.append((local, r))
        xy = centre[:2] + R @ local
        item_yaw = rng.uniform(0, 2 * np.pi)
        out.append(item.placed(item_yaw, [xy[0], xy[1], support.height]))
        if item.category == "book" and rng.random() < 0.7:  # a stack: objects touching objects
            top = b.item("box" if rng.random() < 0.6 else "small")
            top.support = item.name
            out.append(top.placed(item_yaw + rng.uniform(-0.4, 0.4), [xy[0], xy[1], support.height + item.height]))
    return out


def _item_categories(n: int, rng: np.random.Generator) -> list[str]:
    cats = ["small"] + [ITEMS[k] for k in rng.integers(len(ITEMS), size=max(0, n - 1))]
    return [cats[k] for k in rng.permutation(len(cats))]


def _table_set(b: Builder, rng, centre: np.ndarray, yaw: float, n_items: int, n_chairs: int,
               placed: list, hard: Builder | None = None) -> list[ObjectSpec]:
    """A table with items and chairs; with ``hard`` (a builder on its own random stream), the hard
    cases (:mod:`.hardcases`) go on the table first and the items where room is left."""
    table = b.table()
    out = [table.placed(yaw, centre)]
    placed.append((centre[:2], table.radius))
    on_top: list = []
    if hard is not None:
        out += place_hard_cases(hard, table, yaw, centre, hard.rng, on_top)
    out += _place_items(b, table, yaw, centre, _item_categories(n_items, rng), rng, on_top)
    hx, hy = table.half_extent
    sides = [(0, 1, hy), (0, -1, hy), (1, 0, hx), (-1, 0, hx)]  # long sides first
    R = _rot2(yaw)
    for k in range(n_chairs):
        sx, sy, half = sides[k]
        out_dir = R @ np.array([sx, sy], dtype=float)
        chair = b.chair()
        pos = centre[:2] + out_dir * (half + 0.28) + R @ np.array([sy, sx]) * rng.uniform(-0.2, 0.2)
        face = -out_dir  # the chair's +y must point at the table
        out.append(chair.placed(np.arctan2(face[1], face[0]) - np.pi / 2, [pos[0], pos[1], 0.0]))
        placed.append((pos, chair.radius))
    return out


def _hard_builder(b: Builder, config: SynthConfig) -> Builder | None:
    """The hard cases' builder, on its own random stream (the world's stream draws as before up to the items)."""
    if not config.hard_cases:
        return None
    return Builder(np.random.default_rng([config.seed, 26]), b.density, b.stuff_density, _names=b._names)


def _room(b: Builder, config: SynthConfig, rng: np.random.Generator) -> _Layout:
    W, D, H = rng.uniform(5.0, 6.5), rng.uniform(4.0, 5.5), ROOM_HEIGHT
    x0, y0 = -W / 2, -D / 2
    ex, ey, ez = np.array([W, 0, 0.0]), np.array([0, D, 0.0]), np.array([0, 0, H])
    objects = [b.plane("floor", [x0, y0, 0], ex, ey), b.plane("ceiling", [x0, y0, H], ey, ex)]
    # walls (origin, u, v) with u x v pointing inwards; the origin is one end of the wall
    walls = [([x0, y0, 0], ez, ex), ([x0, -y0, 0], ex, ez), ([x0, y0, 0], ey, ez), ([-x0, y0, 0], ez, ey)]
    objects += [b.plane("wall", o, u, v) for o, u, v in walls]
    placed: list[tuple[np.ndarray, float]] = []
    centre = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3), 0.0])
    yaw = rng.uniform(0, np.pi)
    rug = b.rug(rng.uniform(2.2, 2.8), rng.uniform(1.8, 2.2))
    objects.append(rug.placed(yaw, centre))
    floor = objects[0].parts[0]
    local = (floor.surface.points[:, :2] - centre[:2]) @ _rot2(yaw)  # world -> rug frame
    under = (np.abs(local) < np.array(rug.half_extent) - 0.03).all(1)
    if config.hidden_surfaces:  # kept, with the low opacity training leaves on splats no view sees
        floor.hidden = under
    else:  # no floor under the rug, as where no camera ever looked
        floor.surface = floor.surface.subset(~under)
    objects += _table_set(b, rng, centre, yaw, config.n_items, int(rng.integers(2, 5)), placed,
                          _hard_builder(b, config))

    def on_wall(spec: ObjectSpec, wall: int, back: float, z: float = 0.0) -> None:
        """Against ``wall``, facing into the room, its back ``back`` behind its origin; a floor
        object must not overlap what is already placed (it is dropped when it finds no room)."""
        origin, u, v = (np.asarray(x, dtype=float) for x in walls[wall])
        normal = np.cross(u, v)[:2] / np.linalg.norm(np.cross(u, v))
        along = (u if u[2] == 0 else v)[:2]
        length = float(np.linalg.norm(along))
        along = along / length
        for _ in range(30):
            s = rng.uniform(spec.half_extent[0] + 0.3, length - spec.half_extent[0] - 0.3)
            pos = origin[:2] + along * s + normal * back
            if z > 0 or _free(pos, spec.radius, placed):
                break
        else:
            return
        if z == 0:
            placed.append((pos, spec.radius))
        spec_yaw = np.arctan2(normal[1], normal[0]) - np.pi / 2
        objects.append(spec.placed(spec_yaw, [pos[0], pos[1], z]))
        if spec.top is not None:
            objects.extend(_place_items(b, spec, spec_yaw, np.array([pos[0], pos[1], 0.0]),
                                        [["lamp", "box", "ball", "bottle"][k] for k in rng.integers(4, size=2)], rng))

    order = rng.permutation(4)
    cabinet = b.cabinet()
    on_wall(cabinet, order[0], cabinet.half_extent[1] - 0.04)
    sofa = b.sofa()
    on_wall(sofa, order[1], sofa.half_extent[1])
    on_wall(b.picture(), order[2], 0.0, z=rng.uniform(1.2, 1.5))
    lamp = b.lamp(floor=True)
    for _ in range(30):
        corner = np.array([rng.choice([x0, -x0]), rng.choice([y0, -y0])])
        pos = corner - np.sign(corner) * 0.4
        if _free(pos, lamp.radius, placed):
            objects.append(lamp.placed(0.0, [pos[0], pos[1], 0.0]))
            placed.append((pos, lamp.radius))
            break
    bounds = np.array([[x0 + 0.1, y0 + 0.1, 0.05], [-x0 - 0.1, -y0 - 0.1, H - 0.1]])
    return _Layout(objects, bounds, np.array([centre[0], centre[1], 0.6]), (0.36 * W, 0.36 * D), inside=True)


def _tabletop(b: Builder, config: SynthConfig, rng: np.random.Generator) -> _Layout:
    objects = [b.plane("floor", [-2.5, -2.5, 0], [5.0, 0, 0], [0, 5.0, 0])]
    placed: list = []
    objects += _table_set(b, rng, np.zeros(3), rng.uniform(-0.2, 0.2), config.n_items, int(rng.integers(0, 3)),
                          placed, _hard_builder(b, config))
    table = objects[1]
    return _Layout(objects, np.array([[-1.5, -1.5, 0.05], [1.5, 1.5, 1.6]]),
                   np.array([0.0, 0.0, table.height]), (1.45, 1.45), inside=False)


# ---- cameras -----------------------------------------------------------------------------------

def _cameras(layout: _Layout, config: SynthConfig, rng: np.random.Generator) -> tuple[list[Camera], list[Camera]]:
    """Training views on a ring around the target at alternating heights; held-out views between
    them, at other heights (novel viewpoints, not interpolations of one training view)."""
    def ring(n: int, offset: float, heights: list[float], prefix: str) -> list[Camera]:
        cams = []
        for k in range(n):
            a = 2 * np.pi * (k + offset) / n + rng.uniform(-0.15, 0.15) * 2 * np.pi / n
            r = rng.uniform(0.85, 1.1)
            eye = layout.target + [layout.radius[0] * r * np.cos(a), layout.radius[1] * r * np.sin(a), 0.0]
            eye[2] = heights[k % len(heights)]
            look = layout.target + [rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), 0.0]
            if layout.inside:  # inside a room: the cameras stand on the ring and look across it
                look = layout.target - (eye - layout.target) * [0.35, 0.35, 0.0] + [0, 0, rng.uniform(-0.2, 0.3)]
            cams.append(Camera.look_at(eye, look, fov_x_deg=config.fov_x_deg, width=config.width,
                                       height=config.height, name=f"{prefix}_{k:03d}.png"))
        return cams

    if layout.inside:
        train_h, test_h = [1.35, 1.65, 1.5], [1.15, 1.85]
    else:
        t = layout.target[2]
        train_h, test_h = [t + 0.45, t + 0.8, t + 1.1], [t + 0.6, t + 0.95]
    return ring(config.n_train, 0.0, train_h, "train"), ring(config.n_test, 0.5, test_h, "test")


# ---- the world ---------------------------------------------------------------------------------

def _hierarchy(objects: list[ObjectSpec]) -> tuple[Hierarchy, list[int]]:
    """Ids in order; a thing's group is the top of its support chain (a table with what stands on
    it, a cabinet with its items); every piece of room structure is a group of its own."""
    index = {o.name: k for k, o in enumerate(objects)}
    root = []
    for o in objects:
        top = o
        while top.support is not None:
            top = objects[index[top.support]]
        root.append(index[top.name])
    group_of_root = {r: g for g, r in enumerate(dict.fromkeys(root))}
    groups = [GroupInfo(g, objects[r].name if sum(x == r for x in root) == 1 else f"{objects[r].name}_set", [])
              for r, g in group_of_root.items()]
    parts, infos, object_group = [], [], []
    for k, o in enumerate(objects):
        g = group_of_root[root[k]]
        object_group.append(g)
        groups[g].objects.append(k)
        ids = list(range(len(parts), len(parts) + len(o.parts)))
        parts += [PartInfo(pid, p.name, k) for pid, p in zip(ids, o.parts)]
        infos.append(ObjectInfo(k, o.name, o.category, g, ids, o.stuff,
                                None if o.support is None else index[o.support]))
    return Hierarchy(parts, infos, groups), object_group


def make_world(config: SynthConfig) -> SynthWorld:
    """Generate the world of ``config`` (seconds on a CPU for the "small" size)."""
    rng = np.random.default_rng(config.seed)
    scale = TABLETOP_DENSITY if config.layout == "tabletop" else 1.0
    builder = Builder(rng, scale * config.density, scale * config.stuff_density)
    layout = (_room if config.layout == "room" else _tabletop)(builder, config, rng)
    hierarchy, object_group = _hierarchy(layout.objects)
    clean = surface_splats(layout.objects, object_group, rng)
    train, test = _cameras(layout, config, rng)
    splats = add_artefacts(clean, train, layout.bounds, config.artefacts, rng)
    scene = splats.to_scene(config.kind, config.sh_degree)
    return SynthWorld(config, scene, splats.labels, hierarchy, train, test)


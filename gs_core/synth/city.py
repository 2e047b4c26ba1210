"""A synthetic city district for scale work (``gs-core synth --size xl``): a grid of city blocks with
buildings (boxes with a roof and a facade of windows, three parts each), streets and sidewalks
(stuff), and streets lined with repeated objects (trees, street lamps, benches, parked cars), filmed
by a camera path that drives along every street looking ahead and to both sides.

The ``xl`` preset has over 2M splats and 1,000 training views at 160 x 120; ``tiny`` is the same
city at a few thousand splats for tests. The dataset is written as :func:`write_dataset` writes a
room (scene.ply, COLMAP, images, masks, gt) but view by view: each view renders only the splats
near its camera and is written before the next is rendered, so memory holds the scene and one view.
Its ground-truth maps are the rendered part ids (:func:`gs_core.synth.views.iter_views` with
``per_level=False``: channels shared by parts that do not overlap on screen), objects and groups
being the part's; the room's per-level argmax of weights would need a one-hot column per part,
thousands here. No training artefacts are added (the rooms test those).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..camera import Camera
from . import shapes
from .artefacts import ArtefactConfig
from .masks import MaskNoise
from .objects import Builder, ObjectSpec, PartSpec, random_texture
from .splats import surface_splats
from .views import iter_views
from .world import SynthConfig, SynthWorld, _hierarchy


@dataclass(frozen=True)
class CityConfig:
    blocks: tuple[int, int] = (4, 4)  # city blocks along x and y
    pitch: float = 40.0  # metres from one street's centre line to the next
    street: float = 12.0  # street width (road and sidewalks)
    facade_density: float = 25.0  # splats per m^2 on buildings
    ground_density: float = 15.0  # on roads and sidewalks
    object_density: float = 60.0  # on street objects
    object_every: float = 10.0  # metres between street objects along each side of a street
    n_train: int = 1000
    n_test: int = 50
    width: int = 160
    height: int = 120
    fov_x_deg: float = 80.0
    view_radius: float = 70.0  # a view renders the splats within this distance of its camera
    seed: int = 0

    def to_synth(self) -> SynthConfig:
        """The :class:`SynthConfig` a dataset's metadata records (the room layout's fields)."""
        return SynthConfig(seed=self.seed, width=self.width, height=self.height, fov_x_deg=self.fov_x_deg,
                           n_train=self.n_train, n_test=self.n_test, sh_degree=0, hidden_surfaces=False,
                           artefacts=ArtefactConfig())


CITY_SIZES = {
    "tiny": CityConfig(blocks=(2, 1), facade_density=2.0, ground_density=1.0, object_density=12.0,
                       object_every=14.0, n_train=16, n_test=2, width=64, height=48),
    "xl": CityConfig(),
}


def _rect(b: Builder, origin, u, v, density: float):
    return shapes.rectangle(origin, u, v, density, b.rng)


def _building(b: Builder, c: CityConfig, x0: float, y0: float, sx: float, sy: float, h: float) -> ObjectSpec:
    """A box building with its lower-left corner at (x0, y0): walls, a roof, and windows 5 cm in front
    of the walls on every floor."""
    rng, d = b.rng, c.facade_density
    X, Y, Z = np.array([sx, 0, 0.0]), np.array([0, sy, 0.0]), np.array([0, 0, h])
    o = np.array([x0, y0, 0.0])
    faces = [(o, Z, Y, -X), (o + X, Y, Z, X), (o, X, Z, -Y), (o + Y, Z, X, Y)]  # -x, +x, -y, +y (u x v outwards)
    walls = shapes.concat([_rect(b, f, u, v, d) for f, u, v, _ in faces])
    roof = _rect(b, o + Z, X, Y, d)
    windows = []
    floors = int(h // 3.0)
    for f, u, v, out in faces:
        along = u if abs(u[2]) == 0 else v  # the face's horizontal edge
        width = float(np.linalg.norm(along))
        n = max(1, int(width // 2.8))
        step = along / np.linalg.norm(along)
        for k in range(floors):
            for j in range(n):
                centre = f + step * (width * (j + 0.5) / n) + np.array([0, 0, 3.0 * k + 1.6])
                corner = centre - 0.6 * step - np.array([0, 0, 0.75]) + 0.05 * out / np.linalg.norm(out)
                a, bb = 1.2 * step, np.array([0, 0, 1.5])
                if np.dot(np.cross(a, bb), out) < 0:  # the window faces out of the wall
                    a, bb = bb, a
                windows.append(_rect(b, corner, a, bb, d))
    parts = [PartSpec("walls", walls, random_texture(rng, stuff=True)),
             PartSpec("roof", roof, random_texture(rng, stuff=True, kind="noise")),
             PartSpec("windows", shapes.concat(windows), random_texture(rng, kind="plain"))]
    return ObjectSpec(b.name("building"), "building", parts, (sx / 2, sy / 2), h)


def _street_object(b: Builder, kind: str) -> ObjectSpec:
    """One street object in its own frame (base at the origin, z up)."""
    rng, d = b.rng, b.density
    if kind == "tree":
        trunk = shapes.frustum(0.18, 0.14, 2.5, d, rng, caps=(False, False))
        crown = shapes.sphere(rng.uniform(1.2, 1.8), d, rng).transformed(np.eye(3), np.array([0, 0, 3.6]))
        parts = [PartSpec("trunk", trunk, random_texture(rng, kind="grain")), PartSpec("crown", crown, random_texture(rng))]
        return ObjectSpec(b.name("tree"), "tree", parts, (1.5, 1.5), 5.2)
    if kind == "lamp":
        pole = shapes.frustum(0.08, 0.06, 4.5, d, rng, caps=(False, True))
        head = shapes.sphere(0.3, d, rng).transformed(np.eye(3), np.array([0, 0, 4.7]))
        parts = [PartSpec("pole", pole, random_texture(rng, kind="plain")), PartSpec("light", head, random_texture(rng))]
        return ObjectSpec(b.name("street_lamp"), "street_lamp", parts, (0.3, 0.3), 5.0)
    if kind == "bench":
        seat = shapes.box((1.8, 0.5, 0.08), d, rng).transformed(np.eye(3), np.array([0, 0, 0.45]))
        back = shapes.box((1.8, 0.08, 0.45), d, rng).transformed(np.eye(3), np.array([0, 0.22, 0.53]))
        legs = shapes.concat([shapes.box((0.08, 0.45, 0.45), d, rng, bottom=False).transformed(np.eye(3), np.array([x, 0, 0]))
                              for x in (-0.8, 0.8)])
        wood = random_texture(rng, kind="grain")
        parts = [PartSpec("seat", shapes.concat([seat, back]), wood), PartSpec("legs", legs, random_texture(rng))]
        return ObjectSpec(b.name("bench"), "bench", parts, (0.9, 0.3), 1.0)
    body = shapes.box((4.2, 1.8, 0.8), d, rng, bottom=False).transformed(np.eye(3), np.array([0, 0, 0.3]))
    cabin = shapes.box((2.2, 1.6, 0.6), d, rng, bottom=False).transformed(np.eye(3), np.array([-0.2, 0, 1.1]))
    wheels = shapes.concat([shapes.frustum(0.32, 0.32, 0.2, d, rng).transformed(
        np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]), np.array([x, y, 0.32])) for x in (-1.3, 1.3) for y in (-0.9, 1.1)])
    parts = [PartSpec("body", body, random_texture(rng, kind="plain")), PartSpec("cabin", cabin, random_texture(rng)),
             PartSpec("wheels", wheels, random_texture(rng, kind="plain"))]
    return ObjectSpec(b.name("car"), "car", parts, (2.1, 0.9), 1.7)


def _layout(c: CityConfig, b: Builder) -> tuple[list[ObjectSpec], list[np.ndarray]]:
    """The city's objects and the street centre lines the cameras drive ([2, 2] start, end each)."""
    rng = b.rng
    nx, ny = c.blocks
    P, s = c.pitch, c.street / 2
    objects: list[ObjectSpec] = []
    X, Y = nx * P, ny * P
    lines = [np.array([[-s, y], [X + s, y]]) for y in np.arange(ny + 1) * P]
    lines += [np.array([[x, -s], [x, Y + s]]) for x in np.arange(nx + 1) * P]
    ground = Builder(rng, c.object_density, c.ground_density)
    for i in range(nx + 1):  # roads: the y-streets whole, the x-streets between them
        objects.append(ground.plane("road", [i * P - s, -s, 0], [2 * s, 0, 0], [0, Y + 2 * s, 0]))
    for j in range(ny + 1):
        for i in range(nx):
            objects.append(ground.plane("road", [i * P + s, j * P - s, 0], [P - 2 * s, 0, 0], [0, 2 * s, 0]))
    for i in range(nx):
        for j in range(ny):
            x0, y0, w = i * P + s, j * P + s, P - 2 * s
            objects.append(ground.plane("sidewalk", [x0, y0, 0.01], [w, 0, 0], [0, w, 0]))
            half = (w - 4.0) / 2  # a 2 x 2 grid of buildings with 4 m of sidewalk around and between them
            for a in range(2):
                for bb in range(2):
                    sx, sy = half * rng.uniform(0.7, 0.95), half * rng.uniform(0.7, 0.95)
                    bx, by = x0 + 1.5 + a * (half + 1.0), y0 + 1.5 + bb * (half + 1.0)
                    objects.append(_building(b, c, bx, by, sx, sy, float(rng.uniform(8.0, 24.0))))
    kinds = ("tree", "lamp", "bench", "car")
    for line in lines:  # street objects on both sides, at the sidewalk's edge; cars on the road
        start, end = line
        direction = (end - start) / np.linalg.norm(end - start)
        normal = np.array([-direction[1], direction[0]])
        yaw = float(np.arctan2(direction[1], direction[0]))
        for t in np.arange(c.object_every / 2, np.linalg.norm(end - start), c.object_every):
            for side in (-1, 1):
                kind = kinds[int(rng.integers(len(kinds)))]
                offset = (s - 2.5 if kind == "car" else s + 0.8) * side
                pos = start + direction * (t + rng.uniform(-1, 1)) + normal * offset
                objects.append(_street_object(b, kind).placed(yaw, [pos[0], pos[1], 0.0]))
    return objects, lines


def _cameras(c: CityConfig, lines: list[np.ndarray], rng: np.random.Generator) -> tuple[list[Camera], list[Camera]]:
    """Views spaced evenly along the street lines, 1.7 m up in alternating lanes, looking ahead, left
    and right in turn (a car-mounted rig); test views halfway between training views, 3 m up."""
    lengths = np.array([np.linalg.norm(e - s) for s, e in lines])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])

    def at(u: float, name: str, k: int, height: float) -> Camera:
        i = min(int(np.searchsorted(cum, u, side="right")) - 1, len(lines) - 1)
        start, end = lines[i]
        direction = (end - start) / lengths[i]
        normal = np.array([-direction[1], direction[0]])
        pos = start + direction * (u - cum[i]) + normal * (1.5 if k % 2 else -1.5)
        yaw = [0.0, 1.0, -1.0][k % 3] * np.deg2rad(65) + rng.uniform(-0.1, 0.1)
        look_dir = np.array([np.cos(yaw) * direction[0] - np.sin(yaw) * direction[1],
                             np.sin(yaw) * direction[0] + np.cos(yaw) * direction[1]])
        eye = np.array([pos[0], pos[1], height])
        look = np.array([pos[0] + 12 * look_dir[0], pos[1] + 12 * look_dir[1], height + 2.0])
        return Camera.look_at(eye, look, fov_x_deg=c.fov_x_deg, width=c.width, height=c.height, name=name)

    total = cum[-1]
    train = [at(total * (k + 0.5) / c.n_train, f"train_{k:04d}.png", k, 1.7) for k in range(c.n_train)]
    test = [at(total * (k + 0.25) / max(c.n_test, 1), f"test_{k:04d}.png", k, 3.0) for k in range(c.n_test)]
    return train, test


def make_city(c: CityConfig) -> SynthWorld:
    """The city's splats, ground truth and cameras (seconds per million splats)."""
    rng = np.random.default_rng(c.seed)
    b = Builder(rng, c.object_density, c.ground_density)
    objects, lines = _layout(c, b)
    hierarchy, object_group = _hierarchy(objects)
    splats = surface_splats(objects, object_group, rng)
    del objects
    train, test = _cameras(c, lines, rng)
    return SynthWorld(c.to_synth(), splats.to_scene("3dgs", 0), splats.labels, hierarchy, train, test)


def build_city(root: str | os.PathLike, config: CityConfig, noise: MaskNoise, *, backend: str = "auto",
               progress: Callable[[], None] | None = None) -> SynthWorld:
    """Generate the city of ``config`` and write it to ``root`` view by view (``progress`` after each)."""
    from .writer import write_header, write_meta, write_view

    world = make_city(config)
    root = Path(root)
    write_header(root, world)
    sources = {}
    views = iter_views(world, world.cameras, backend=backend, radius=config.view_radius, per_level=False)
    for k, view in enumerate(views):
        sources.update(write_view(root, world, k, view, noise))
        del view
        if progress is not None:
            progress()
    write_meta(root, world, noise, sources, extra={"city": asdict(config)})
    return world


__all__ = ["CITY_SIZES", "CityConfig", "build_city", "make_city"]

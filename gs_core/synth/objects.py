"""Object builders: furniture and table-top items made of named parts, each part a textured surface.

Every builder works in the object's own frame (base centred at the origin, z up) and returns an
:class:`ObjectSpec`; the layouts in :mod:`.world` place them. Thin parts (legs, stems, handles,
bottle necks) and small items are deliberate: they are what masks miss and splats blur. Faces that rest on a support
(the bottom of a book, a cabinet, a mug) get no splats: training never sees them.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

from . import shapes
from .shapes import Surface

TEXTURES = ("plain", "noise", "stripes", "checker", "grain")


@dataclass
class Texture:
    """A solid (3-D) procedural texture: colour = base * (1 + amplitude * pattern(point))."""

    base: np.ndarray  # [3] rgb in [0, 1]
    kind: str  # one of TEXTURES
    frequency: float  # cycles per metre
    amplitude: float
    direction: np.ndarray  # [3] unit, for stripes and grain
    phases: np.ndarray  # [3]

    def colors(self, points: np.ndarray) -> np.ndarray:  # [n, 3] -> [n, 3]
        f = 2 * np.pi * self.frequency
        along = points @ self.direction
        if self.kind == "plain":
            pattern = np.zeros(len(points))
        elif self.kind == "stripes":
            pattern = np.sign(np.sin(f * along + self.phases[0]))
        elif self.kind == "checker":
            s = np.sin(f * points + self.phases)
            pattern = np.sign(s[:, 0] * s[:, 1] * s[:, 2])
        elif self.kind == "grain":
            pattern = np.sin(f * along + 3 * np.sin(0.3 * f * points @ np.roll(self.direction, 1) + self.phases[1]))
        else:  # noise: a few incommensurate waves
            pattern = np.sin(f * points + self.phases).sum(1) / 3 + np.sin(1.7 * f * points[:, ::-1]).sum(1) / 3
        return np.clip(self.base * (1 + self.amplitude * pattern[:, None]), 0, 1)


def random_texture(rng: np.random.Generator, *, stuff: bool = False, kind: str | None = None) -> Texture:
    h = rng.random()
    s = rng.uniform(0.05, 0.25) if stuff else rng.uniform(0.35, 0.85)
    v = rng.uniform(0.6, 0.85) if stuff else rng.uniform(0.4, 0.9)
    direction = rng.normal(size=3)
    return Texture(base=np.array(colorsys.hsv_to_rgb(h, s, v)),
                   kind=kind if kind is not None else TEXTURES[rng.integers(len(TEXTURES))],
                   frequency=rng.uniform(1.5, 4.0) if stuff else rng.uniform(8.0, 30.0),
                   amplitude=rng.uniform(0.1, 0.3), direction=direction / np.linalg.norm(direction),
                   phases=rng.uniform(0, 2 * np.pi, 3))


@dataclass
class PartSpec:
    name: str
    surface: Surface
    texture: Texture
    hidden: np.ndarray | None = None  # [n] bool: samples no view sees (the floor under the rug)


@dataclass
class ObjectSpec:
    """One object in its own frame. ``half_extent`` is its footprint (x, y half sizes) for layout."""

    name: str
    category: str
    parts: list[PartSpec]
    half_extent: tuple[float, float]
    height: float
    stuff: bool = False
    top: tuple[float, float] | None = None  # half sizes of a flat top that can carry items
    support: str | None = None  # the object it rests on (set by the layout)

    def placed(self, yaw: float, position) -> "ObjectSpec":
        R = shapes.yaw_matrix(yaw)
        t = np.asarray(position, dtype=np.float64)
        parts = [PartSpec(p.name, p.surface.transformed(R, t), p.texture) for p in self.parts]
        return ObjectSpec(self.name, self.category, parts, self.half_extent, self.height, self.stuff,
                          self.top, self.support)

    @property
    def radius(self) -> float:
        return float(np.hypot(*self.half_extent))


@dataclass
class Builder:
    """Samples surfaces at two densities: objects (``density``) and room structure (``stuff_density``)."""

    rng: np.random.Generator
    density: float  # splats per m^2 on objects
    stuff_density: float  # splats per m^2 on floor, walls, ceiling
    _names: dict[str, int] = field(default_factory=dict)

    def name(self, category: str) -> str:
        k = self._names.get(category, 0)
        self._names[category] = k + 1
        return f"{category}_{k}"

    def part(self, name: str, surface: Surface, texture: Texture | None = None, offset=(0.0, 0.0, 0.0),
             rotation: np.ndarray | None = None) -> PartSpec:
        R = np.eye(3) if rotation is None else rotation
        return PartSpec(name, surface.transformed(R, np.asarray(offset, dtype=np.float64)),
                        texture if texture is not None else random_texture(self.rng))

    # ---- room structure ------------------------------------------------------------------
    def plane(self, category: str, origin, u, v) -> ObjectSpec:
        surface = shapes.rectangle(origin, u, v, self.stuff_density, self.rng)
        texture = random_texture(self.rng, stuff=True, kind="grain" if category == "floor" else None)
        return ObjectSpec(self.name(category), category, [PartSpec("surface", surface, texture)],
                          (0.0, 0.0), 0.0, stuff=True)

    # ---- furniture ---------------------------------------------------------------------------
    def table(self) -> ObjectSpec:
        r, d = self.rng, self.density
        w, dp, h, t = r.uniform(1.2, 1.6), r.uniform(0.75, 0.95), r.uniform(0.72, 0.78), 0.04
        wood = random_texture(r, kind="grain")
        parts = [self.part("top", shapes.box((w, dp, t), d, r), wood, (0, 0, h - t))]
        leg = 0.05
        for i, (sx, sy) in enumerate([(-1, -1), (1, -1), (1, 1), (-1, 1)]):
            pos = (sx * (w / 2 - 0.07), sy * (dp / 2 - 0.07), 0.0)
            parts.append(self.part(f"leg_{i}", shapes.box((leg, leg, h - t), d, r, bottom=False), wood, pos))
        return ObjectSpec(self.name("table"), "table", parts, (w / 2, dp / 2), h, top=(w / 2, dp / 2))

    def chair(self) -> ObjectSpec:
        """Seat, back (rising from the seat's -y edge) and four thin round legs; faces +y."""
        r, d = self.rng, self.density
        s, h, t = r.uniform(0.4, 0.48), r.uniform(0.43, 0.47), 0.04
        seat_tex, leg_tex = random_texture(r), random_texture(r)
        parts = [self.part("seat", shapes.box((s, s, t), d, r), seat_tex, (0, 0, h - t)),
                 self.part("back", shapes.box((s, 0.03, r.uniform(0.35, 0.5)), d, r), random_texture(r),
                           (0, -s / 2 + 0.015, h))]
        for i, (sx, sy) in enumerate([(-1, -1), (1, -1), (1, 1), (-1, 1)]):
            leg = shapes.frustum(0.016, 0.016, h - t, d, r, caps=(False, False))
            parts.append(self.part(f"leg_{i}", leg, leg_tex, (sx * (s / 2 - 0.03), sy * (s / 2 - 0.03), 0)))
        return ObjectSpec(self.name("chair"), "chair", parts, (s / 2, s / 2), h + 0.5)

    def lamp(self, floor: bool = False) -> ObjectSpec:
        """Base + thin stem + open shade (a floor lamp when ``floor``)."""
        r, d = self.rng, self.density
        k = 2.2 if floor else 1.0
        base_r, stem_h = 0.07 * k, (1.35 if floor else r.uniform(0.25, 0.32))
        shade_h, shade_rb, shade_rt = 0.16 * k, 0.13 * k, 0.08 * k
        metal = random_texture(r, kind="plain")
        parts = [self.part("base", shapes.frustum(base_r, base_r * 0.9, 0.03, d, r, caps=(False, True)), metal),
                 self.part("stem", shapes.frustum(0.01 * k, 0.01 * k, stem_h, d, r, caps=(False, False)),
                           metal, (0, 0, 0.03)),
                 self.part("shade", shapes.frustum(shade_rb, shade_rt, shade_h, d, r, caps=(False, False)),
                           random_texture(r), (0, 0, 0.03 + stem_h - 0.4 * shade_h))]
        return ObjectSpec(self.name("floor_lamp" if floor else "lamp"), "floor_lamp" if floor else "lamp",
                          parts, (shade_rb, shade_rb), 0.03 + stem_h + 0.6 * shade_h)

    def cabinet(self) -> ObjectSpec:
        """Body, two door panels on its +y face and a thin handle on each door."""
        r, d = self.rng, self.density
        w, dp, h = r.uniform(0.8, 1.0), r.uniform(0.38, 0.45), r.uniform(0.8, 1.0)
        parts = [self.part("body", shapes.box((w, dp, h), d, r, bottom=False), random_texture(r))]
        door_tex, handle_tex = random_texture(r), random_texture(r, kind="plain")
        for i, sx in enumerate((-1, 1)):
            x = sx * w / 4
            parts.append(self.part(f"door_{i}", shapes.box((w / 2 - 0.03, 0.012, h - 0.08), d, r), door_tex,
                                   (x, dp / 2 + 0.006, 0.04)))
            handle = shapes.frustum(0.008, 0.008, 0.12, d, r)
            parts.append(self.part(f"handle_{i}", handle, handle_tex, (x - sx * (w / 4 - 0.07), dp / 2 + 0.03,
                                                                    h / 2 - 0.06)))
        return ObjectSpec(self.name("cabinet"), "cabinet", parts, (w / 2, dp / 2 + 0.04), h, top=(w / 2, dp / 2))

    def sofa(self) -> ObjectSpec:
        """Base, back and two arms (touching parts); faces +y."""
        r, d = self.rng, self.density
        w, dp = r.uniform(1.6, 2.0), r.uniform(0.8, 0.9)
        cloth = random_texture(r, kind="noise")
        parts = [self.part("base", shapes.box((w, dp, 0.42), d, r, bottom=False), cloth),
                 self.part("back", shapes.box((w, 0.2, 0.4), d, r, bottom=False), cloth, (0, -dp / 2 + 0.1, 0.42))]
        for i, sx in enumerate((-1, 1)):
            parts.append(self.part(f"arm_{i}", shapes.box((0.18, dp - 0.2, 0.22), d, r, bottom=False),
                                   random_texture(r), (sx * (w / 2 - 0.09), 0.1, 0.42)))
        return ObjectSpec(self.name("sofa"), "sofa", parts, (w / 2, dp / 2), 0.82)

    def rug(self, w: float, dp: float) -> ObjectSpec:
        r = self.rng
        surface = shapes.box((w, dp, 0.012), self.density * 0.5, r, bottom=False)
        return ObjectSpec(self.name("rug"), "rug", [self.part("surface", surface, random_texture(r))],
                          (w / 2, dp / 2), 0.012)

    def picture(self) -> ObjectSpec:
        """A frame with a canvas, hung on a wall: its back (-y) face touches the wall."""
        r, d = self.rng, self.density
        w, h = r.uniform(0.5, 0.8), r.uniform(0.35, 0.55)
        parts = [self.part("frame", shapes.box((w, 0.03, h), d, r), random_texture(r), (0, 0.015, 0)),
                 self.part("canvas", shapes.box((w - 0.08, 0.006, h - 0.08), d, r, bottom=False),
                           random_texture(r, kind="noise"), (0, 0.033, 0.04))]
        return ObjectSpec(self.name("picture"), "picture", parts, (w / 2, 0.04), h)

    # ---- table-top items ---------------------------------------------------------------------
    def mug(self) -> ObjectSpec:
        r, d = self.rng, self.density
        rad, h = r.uniform(0.035, 0.045), r.uniform(0.08, 0.11)
        tex = random_texture(r)
        handle = shapes.torus_arc(0.032, 0.007, 1.2 * np.pi, d, r)
        return ObjectSpec(self.name("mug"), "mug", [
            self.part("body", shapes.frustum(rad, rad, h, d, r, caps=(False, True)), tex),
            self.part("handle", handle, tex, (rad + 0.005, 0, h / 2)),
        ], (rad + 0.04, rad), h)

    def bottle(self) -> ObjectSpec:
        r, d = self.rng, self.density
        rad, h = r.uniform(0.03, 0.04), r.uniform(0.14, 0.2)
        return ObjectSpec(self.name("bottle"), "bottle", [
            self.part("body", shapes.frustum(rad, rad, h, d, r, caps=(False, False)), random_texture(r)),
            self.part("neck", shapes.frustum(rad, 0.013, 0.07, d, r, caps=(False, False)), random_texture(r),
                      (0, 0, h)),
            self.part("cap", shapes.frustum(0.015, 0.015, 0.025, d, r, caps=(False, True)),
                      random_texture(r, kind="plain"), (0, 0, h + 0.07)),
        ], (rad, rad), h + 0.095)

    def book(self) -> ObjectSpec:
        r = self.rng
        w, dp, h = r.uniform(0.15, 0.24), r.uniform(0.2, 0.3), r.uniform(0.03, 0.05)
        book = shapes.box((w, dp, h), self.density, r, bottom=False)
        return ObjectSpec(self.name("book"), "book", [self.part("book", book)],
                          (w / 2, dp / 2), h, top=(w / 2, dp / 2))

    def box(self) -> ObjectSpec:
        r = self.rng
        size = r.uniform(0.08, 0.16, 3)
        return ObjectSpec(self.name("box"), "box", [self.part("box", shapes.box(size, self.density, r, bottom=False))],
                          (size[0] / 2, size[1] / 2), float(size[2]))

    def ball(self) -> ObjectSpec:
        r = self.rng
        rad = r.uniform(0.045, 0.08)
        return ObjectSpec(self.name("ball"), "ball", [self.part("ball", shapes.sphere(rad, self.density, r))],
                          (rad, rad), 2 * rad)

    def small(self) -> ObjectSpec:
        """A small thing (die, marble, thimble): what automatic mask generators drop first."""
        r, d = self.rng, self.density
        shape = r.integers(3)
        if shape == 0:
            s = r.uniform(0.025, 0.035)
            surface, ext, h = shapes.box((s, s, s), d, r, bottom=False), (s / 2, s / 2), s
        elif shape == 1:
            rad = r.uniform(0.015, 0.025)
            surface, ext, h = shapes.sphere(rad, d, r), (rad, rad), 2 * rad
        else:
            rad, h = r.uniform(0.015, 0.022), r.uniform(0.03, 0.045)
            surface, ext = shapes.frustum(rad, rad * 0.8, h, d, r, caps=(False, True)), (rad, rad)
        return ObjectSpec(self.name("small"), "small", [self.part("small", surface)], ext, h)

    def item(self, category: str) -> ObjectSpec:
        return {"mug": self.mug, "bottle": self.bottle, "book": self.book, "box": self.box, "ball": self.ball,
                "lamp": self.lamp, "small": self.small}[category]()


ITEMS = ("mug", "bottle", "book", "box", "ball", "lamp", "small", "small")  # drawn for table tops

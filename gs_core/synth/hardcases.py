"""Hard cases for segmentation, as sets of objects that stand on a support's flat top:

* rows of touching look-alikes: books standing side by side in a desk shelf, tins, jars;
* containers with contents: fruit in a bowl, pens in a cup;
* thin long objects lying on the surface: pens, pencils, a cable (a few mm across, 10-20 cm long);
* stacks: books on books, plates on plates.

Each builder returns a :class:`HardSet`: its objects in the set's own frame (base centred at the
origin, z up), each with its ``support`` named (the set's base rests on whatever the layout puts it
on). Look-alikes share one texture kind and nearly one colour. :func:`place_hard_cases` puts every
set on a support's top, as :func:`gs_core.synth.world._place_items` does for single items.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from . import shapes
from .objects import Builder, ObjectSpec, Texture, random_texture
from .shapes import Surface

CONTAINERS = ("bowl", "cup")
THIN = ("pen", "pencil", "cable")


@dataclass
class HardSet:
    """Objects of one hard case, in the set's frame; ``objects[k].support`` is None for what rests
    on the set's support (the layout sets it), else the name of another object of the set."""

    name: str
    objects: list[ObjectSpec]
    half_extent: tuple[float, float]

    @property
    def radius(self) -> float:
        return float(np.hypot(*self.half_extent))


def _inside(surface: Surface) -> Surface:
    """The same samples seen from the other side (the inner wall of a bowl or a cup)."""
    return Surface(surface.points, -surface.normals, surface.tangents, surface.spacing)


def _lookalikes(rng: np.random.Generator, n: int, kind: str | None = None) -> list[Texture]:
    """``n`` textures of one kind and nearly one colour: what tells look-alikes apart is the gap between them."""
    ref = random_texture(rng, kind=kind)
    h, s, v = colorsys.rgb_to_hsv(*ref.base)
    out = []
    for _ in range(n):
        base = np.array(colorsys.hsv_to_rgb((h + rng.normal(0, 0.02)) % 1.0, np.clip(s + rng.normal(0, 0.05), 0, 1),
                                            np.clip(v + rng.normal(0, 0.05), 0, 1)))
        out.append(Texture(base, ref.kind, ref.frequency, ref.amplitude, ref.direction, rng.uniform(0, 2 * np.pi, 3)))
    return out


def _at(spec: ObjectSpec, position, yaw: float = 0.0, support: str | None = None) -> ObjectSpec:
    out = spec.placed(yaw, position)
    out.support = support
    return out


LYING = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # +z (a frustum's axis) to +x


# ---- rows of touching look-alikes --------------------------------------------------------------

def shelf_of_books(b: Builder) -> HardSet:
    """A desk shelf (base, sides, back) with 4-6 books standing side by side, touching each other."""
    r, d = b.rng, b.density
    n = int(r.integers(4, 7))
    thick = r.uniform(0.025, 0.04, n)
    dp, h = r.uniform(0.16, 0.2), r.uniform(0.2, 0.24)
    inner = float(thick.sum()) + r.uniform(0.0, 0.04)
    w, board, depth, height = inner + 0.04, 0.02, dp + 0.03, h + 0.05
    wood = random_texture(r, kind="grain")
    parts = [b.part("base", shapes.box((w, depth, board), d, r, bottom=False), wood),
             b.part("back", shapes.box((w, 0.012, height), d, r, bottom=False), wood, (0, -depth / 2 + 0.006, 0))]
    for i, sx in enumerate((-1, 1)):
        parts.append(b.part(f"side_{i}", shapes.box((board, depth, height), d, r, bottom=False), wood,
                            (sx * (w / 2 - board / 2), 0, 0)))
    shelf = ObjectSpec(b.name("shelf"), "shelf", parts, (w / 2, depth / 2), height)
    out = [shelf]
    x = -w / 2 + board
    for t, tex in zip(thick, _lookalikes(r, n, kind=r.choice(["plain", "stripes", "noise"]))):
        book = ObjectSpec(b.name("book"), "book", [b.part("book", shapes.box((t, dp, h), d, r, bottom=False), tex)],
                          (t / 2, dp / 2), h)
        out.append(_at(book, (x + t / 2, 0.012, board), support=shelf.name))
        x += t
    return HardSet("shelf_of_books", out, (w / 2, depth / 2))


def canister_row(b: Builder, category: str = "tin") -> HardSet:
    """3-5 look-alike tins or jars in a row, each touching the next."""
    r, d = b.rng, b.density
    n = int(r.integers(3, 6))
    rad, h = (r.uniform(0.03, 0.04), r.uniform(0.08, 0.12)) if category == "tin" else \
        (r.uniform(0.035, 0.045), r.uniform(0.1, 0.14))
    lid_tex = random_texture(r, kind="plain")
    out = []
    for k, tex in enumerate(_lookalikes(r, n)):
        if category == "tin":
            parts = [b.part("body", shapes.frustum(rad, rad, h, d, r, caps=(False, True)), tex)]
        else:  # a jar: body, shoulder and a lid
            parts = [b.part("body", shapes.frustum(rad, rad, 0.75 * h, d, r, caps=(False, False)), tex),
                     b.part("shoulder", shapes.frustum(rad, 0.8 * rad, 0.15 * h, d, r, caps=(False, False)), tex,
                            (0, 0, 0.75 * h)),
                     b.part("lid", shapes.frustum(0.82 * rad, 0.82 * rad, 0.1 * h, d, r, caps=(False, True)), lid_tex,
                            (0, 0, 0.9 * h))]
        spec = ObjectSpec(b.name(category), category, parts, (rad, rad), h)
        out.append(_at(spec, ((2 * k - (n - 1)) * rad, 0.0, 0.0)))
    return HardSet(f"{category}_row", out, (n * rad, rad))


# ---- containers with contents ------------------------------------------------------------------

def fruit_bowl(b: Builder) -> HardSet:
    """An open bowl (outer wall, inner wall, inner floor) with three look-alike apples touching each other."""
    r, d = b.rng, b.density
    rb, rt, h = r.uniform(0.06, 0.065), r.uniform(0.105, 0.115), r.uniform(0.065, 0.075)
    tex = random_texture(r)
    outer = shapes.frustum(rb, rt, h, d, r, caps=(False, False))
    inner = _inside(shapes.frustum(rb - 0.004, rt - 0.004, h - 0.006, d, r, caps=(False, False)))
    floor = shapes.disc(rb - 0.004, d, r).transformed(np.eye(3), np.array([0.0, 0.0, 0.006]))
    bowl = ObjectSpec(b.name("bowl"), "bowl", [b.part("bowl", shapes.concat([outer, inner, floor]), tex)], (rt, rt), h)
    out = [bowl]
    ra = r.uniform(0.033, 0.037)
    spin = r.uniform(0, 2 * np.pi)
    for k, atex in enumerate(_lookalikes(r, 3, kind="noise")):
        a = spin + 2 * np.pi * k / 3
        c = 2 * ra / np.sqrt(3)  # centres on a triangle of side 2 ra: each apple touches the other two
        apple = ObjectSpec(b.name("apple"), "apple", [b.part("apple", shapes.sphere(ra, d, r), atex)], (ra, ra), 2 * ra)
        out.append(_at(apple, (c * np.cos(a), c * np.sin(a), 0.006), support=bowl.name))
    return HardSet("fruit_bowl", out, (rt, rt))


def pen_cup(b: Builder) -> HardSet:
    """An open cup with 2-4 pens standing in it, leaning on its rim, their upper halves out."""
    r, d = b.rng, b.density
    rad, h = r.uniform(0.035, 0.04), r.uniform(0.09, 0.1)
    tex = random_texture(r)
    outer = shapes.frustum(rad, rad, h, d, r, caps=(False, False))
    inner = _inside(shapes.frustum(rad - 0.003, rad - 0.003, h - 0.004, d, r, caps=(False, False)))
    floor = shapes.disc(rad - 0.003, d, r).transformed(np.eye(3), np.array([0.0, 0.0, 0.004]))
    cup = ObjectSpec(b.name("cup"), "cup", [b.part("cup", shapes.concat([outer, inner, floor]), tex)], (rad, rad), h)
    out = [cup]
    for k in range(int(r.integers(2, 5))):
        a = r.uniform(0, 2 * np.pi)
        tilt = r.uniform(0.1, 0.25)
        pen = _pen(b, "pen", standing=True)
        # lean outwards: rotate about the horizontal axis perpendicular to the direction a
        axis = np.array([-np.sin(a), np.cos(a), 0.0])
        K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        R = np.eye(3) + np.sin(tilt) * K + (1 - np.cos(tilt)) * K @ K
        foot = np.array([0.4 * rad * np.cos(a + np.pi), 0.4 * rad * np.sin(a + np.pi), 0.004])
        parts = [type(p)(p.name, p.surface.transformed(R, foot), p.texture) for p in pen.parts]
        out.append(ObjectSpec(pen.name, pen.category, parts, pen.half_extent, pen.height, support=cup.name))
    return HardSet("pen_cup", out, (rad, rad))


# ---- thin, long objects lying down -------------------------------------------------------------

def _pen(b: Builder, category: str, standing: bool = False) -> ObjectSpec:
    """A pen or pencil: a body 4-4.5 mm in radius (pencil 3.5 mm), 13-17 cm long, and a conical tip;
    along +z when ``standing``, else lying along +x with its side on z = 0."""
    r, d = b.rng, b.density
    rad = r.uniform(0.004, 0.0045) if category == "pen" else 0.0035
    length = r.uniform(0.13, 0.17)
    body = shapes.frustum(rad, rad, length, d, r, caps=(True, False))
    tip = shapes.frustum(rad, 0.0008, 0.015, d, r, caps=(False, False)).transformed(np.eye(3), np.array([0, 0, length]))
    parts = [("body", body, random_texture(r, kind="plain")), ("tip", tip, random_texture(r, kind="plain"))]
    total = length + 0.015
    if standing:
        return ObjectSpec(b.name(category), category, [b.part(n, s, t) for n, s, t in parts], (rad, rad), total)
    R, t = LYING, np.array([-total / 2, 0.0, rad])
    return ObjectSpec(b.name(category), category, [b.part(n, s, tex, t, R) for n, s, tex in parts],
                      (total / 2, rad), 2 * rad)


def cable(b: Builder) -> HardSet:
    """A cable 2.5-3 mm in radius lying in a loose arc, 15-20 cm along it."""
    r, d = b.rng, b.density
    minor, angle = r.uniform(0.0025, 0.003), r.uniform(0.8, 1.2) * np.pi
    major = r.uniform(0.15, 0.2) / angle
    arc = shapes.torus_arc(major, minor, angle, d, r)  # in the x-z plane: lay it into x-y
    flat = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    spec = ObjectSpec(b.name("cable"), "cable", [b.part("cable", arc, random_texture(r, kind="plain"),
                                                         (-major * (1 + np.cos(angle / 2)) / 2, 0, minor), flat)],
                      (major, major), 2 * minor)
    return HardSet("cable", [spec], (major, major))


def thin_things(b: Builder) -> list[HardSet]:
    """A pen and a pencil lying on the surface, and a cable."""
    out = []
    for category in THIN[:2]:
        pen = _pen(b, category)
        out.append(HardSet(category, [pen], pen.half_extent))
    return out + [cable(b)]


# ---- stacks ------------------------------------------------------------------------------------

def book_stack(b: Builder) -> HardSet:
    """2-4 books lying on each other, each turned a little."""
    r = b.rng
    out, z, ext = [], 0.0, (0.0, 0.0)
    for k in range(int(r.integers(2, 5))):
        book = b.book()
        out.append(_at(book, (0, 0, z), r.uniform(-0.25, 0.25), support=out[-1].name if out else None))
        z += book.height
        ext = (max(ext[0], book.radius), max(ext[1], book.radius))
    return HardSet("book_stack", out, ext)


def plate_stack(b: Builder) -> HardSet:
    """3-5 look-alike plates stacked: thin discs with a rim, each resting on the one below."""
    r, d = b.rng, b.density
    rad, t = r.uniform(0.1, 0.12), r.uniform(0.012, 0.016)
    out, z = [], 0.0
    for tex in _lookalikes(r, int(r.integers(3, 6)), kind="plain"):
        plate = ObjectSpec(b.name("plate"), "plate", [b.part(
            "plate", shapes.frustum(0.75 * rad, rad, t, d, r, caps=(False, True)), tex)], (rad, rad), t)
        out.append(_at(plate, (0, 0, z), support=out[-1].name if out else None))
        z += t
    return HardSet("plate_stack", out, (rad, rad))


def hard_sets(b: Builder) -> list[HardSet]:
    """One of each hard case, largest first (what a crowded top has room for is placed first)."""
    sets = [shelf_of_books(b), book_stack(b), plate_stack(b), canister_row(b, str(b.rng.choice(["tin", "jar"]))),
            fruit_bowl(b), pen_cup(b), *thin_things(b)]
    return sorted(sets, key=lambda s: -s.radius)


def place_hard_cases(b: Builder, support: ObjectSpec, yaw: float, centre: np.ndarray, rng: np.random.Generator,
                     placed: list[tuple[np.ndarray, float]]) -> list[ObjectSpec]:
    """Every hard set on ``support``'s flat top (placed at ``centre`` with ``yaw``), where it finds room
    (``placed``: footprints already on that top, in its frame; extended here); a set with no room left is dropped."""
    hx, hy = support.top
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, -s], [s, c]])
    out = []
    for hard in hard_sets(b):
        rad = hard.radius
        if hx - rad - 0.01 <= 0 or hy - rad - 0.01 <= 0:
            continue
        lo, hi = np.array([-hx + rad + 0.01, -hy + rad + 0.01]), np.array([hx - rad - 0.01, hy - rad - 0.01])

        def free(xy: np.ndarray) -> np.ndarray:  # [k, 2] -> [k] bool
            return np.all([np.hypot(*(xy - p).T) > rad + q + 0.01 for p, q in placed], axis=0) \
                if placed else np.ones(len(xy), bool)

        for _ in range(300):
            local = rng.uniform(lo, hi)
            if free(local[None])[0]:
                break
        else:  # a crowded top: every free spot on a 1 cm grid, one of them at random
            axes = np.meshgrid(np.arange(lo[0], hi[0], 0.01), np.arange(lo[1], hi[1], 0.01))
            grid = np.stack(axes, -1).reshape(-1, 2)
            spots = grid[free(grid)]
            if not len(spots):
                continue
            local = spots[rng.integers(len(spots))]
        placed.append((local, rad))
        xy = centre[:2] + R @ local
        set_yaw = yaw + rng.uniform(0, 2 * np.pi)
        for spec in hard.objects:
            top = spec.placed(set_yaw, [xy[0], xy[1], support.height])
            top.support = spec.support if spec.support is not None else support.name
            out.append(top)
    return out

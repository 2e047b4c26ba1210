"""Segmenting a splat file that came without its photos (issue 12 item 6): virtual cameras around
and inside the scene, rendered with the engine (SH evaluated per view), written as a dataset the
pipeline reads like a capture.

Placement, from the splats alone:

* the scene's frame: centre and extent from opacity-weighted percentiles of the means (floaters do
  not stretch it). "Up" is the principal axis whose spread stands apart from the other two (a room or
  a table top is wide and flat: its least-spread axis; a plant, a vase, a person is tall: its
  most-spread axis); its sign follows the capture's convention: -y when the axis is nearer y than z
  (COLMAP / OpenCV worlds, y down, as gs_core reads PLY), +z otherwise (z-up worlds); or given;
* a room or not: a scene whose walls and ceiling close the views from its middle (taking its
  least-spread axis as up: a long room's most distinct axis is its length) is seen from inside;
  anything else (an object, a table top) from around (:func:`is_enclosed`, :func:`estimate_frame`);
* candidates "around": rings looking at the centre from outside, from just above the horizon to
  steeply above, at the distance where the scene's bounding sphere fits the field of view (without a
  ground plane much wider than what stands on it: a table top is framed, not the floor around it);
  for a room, "inward" (rings inside it, high up, looking at its middle, as from its corners) and
  "inside" (from points near the middle looking outward and down);
* an around camera is kept when it sees many splats; an inside or inward camera when, besides, the
  splats cover its image (``min_coverage``) and it is not pressed against a surface (median depth over
  the scene radius): "many" is at least ``min_seen`` of the best candidate's count, by the engine's
  visibility rule (a camera outside the walls sees only their backs and is dropped); then a covering
  subset (:func:`gs_core.viewselect.covering_views`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .camera import Camera

AXES = {"x": (1.0, 0, 0), "y": (0, 1.0, 0), "z": (0, 0, 1.0), "-x": (-1.0, 0, 0), "-y": (0, -1.0, 0),
        "-z": (0, 0, -1.0)}


@dataclass
class VirtualViewConfig:
    views: int = 24  # chosen among the accepted candidates
    width: int = 640
    height: int = 480
    fov_x_deg: float = 70.0
    up: str = "auto"  # auto | x | y | z | -x | -y | -z
    ring_azimuths: int = 16
    min_coverage: float = 0.6  # inside views: share of the image the splats must cover (alpha > 0.5)
    min_depth: float = 0.15  # inside views: median depth must exceed this share of the scene radius
    min_seen: float = 0.3  # every view must see this share of the best candidate's number of splats
    elevations: tuple = (10.0, 30.0, 55.0)  # around views: degrees above the horizon
    probe_width: int = 160  # candidates are judged at this width (the height in the views' aspect)
    backend: str = "auto"


@dataclass
class SceneFrame:
    centre: np.ndarray  # [3]
    radius: float  # half the diagonal of the 2-98% box
    up: np.ndarray  # [3] unit
    half_extent: np.ndarray  # [3] along the principal axes
    axes: np.ndarray  # [3, 3] rows: principal axes, last = up
    focus: np.ndarray  # [3] what views from around look at: the centre of what stands on the ground
    focus_radius: float  # its bounding radius (the scene's, when there is no ground plane)


def scene_frame(scene, up: str = "auto", *, flat: bool = False) -> SceneFrame:
    """Centre, extent and up direction of the splats (opacity-weighted, 2-98 percentiles); ``flat``:
    up is the least-spread axis (a room's floor to ceiling), whatever the other two."""
    means = np.asarray(scene.means, np.float64)
    w = 1.0 / (1.0 + np.exp(-np.asarray(scene.opacity_logits, np.float64)))
    keep = w > 0.1
    pts, w = (means[keep], w[keep]) if keep.sum() >= 10 else (means, np.ones(len(means)))
    lo = np.array([_weighted_percentile(pts[:, i], w, 2) for i in range(3)])
    hi = np.array([_weighted_percentile(pts[:, i], w, 98) for i in range(3)])
    inside = np.all((pts >= lo) & (pts <= hi), axis=1)
    core = pts[inside]
    centre = 0.5 * (lo + hi)
    _, sv, vt = np.linalg.svd(core - core.mean(0), full_matrices=False)  # rows: axes by decreasing spread
    if up == "auto":
        u = _signed(vt[2]) if flat else _up_axis(sv, vt)
    else:
        if up not in AXES:
            raise ValueError(f"up must be auto or one of {sorted(AXES)}, got {up!r}")
        u = np.asarray(AXES[up])
    first = vt[0] if abs(vt[0] @ u) < 0.9 else vt[1]
    a = first - (first @ u) * u
    a /= np.linalg.norm(a)
    axes = np.stack([a, np.cross(u, a), u])
    proj = (core - centre) @ axes.T
    half = 0.5 * (np.percentile(proj, 98, axis=0) - np.percentile(proj, 2, axis=0))
    radius = float(np.linalg.norm(hi - lo) / 2)
    focus, focus_radius, grounded = _focus(proj, centre, axes, radius)
    if not grounded:  # seen whole: also the splats the per-axis percentiles cut (a lamp's shade), but 2%
        focus_radius = max(focus_radius, _weighted_percentile(np.linalg.norm(pts - focus, axis=1), w, 98))
    return SceneFrame(centre, radius, u, half, axes, focus, focus_radius)


def _focus(proj: np.ndarray, centre: np.ndarray, axes: np.ndarray,
           radius: float) -> tuple[np.ndarray, float, bool]:
    """Centre and radius of what stands on the ground, and whether there is a ground: a ground plane
    (the splats in the lowest 10% of the height that span at least 70% of the scene's width both ways,
    while what stands on it spans at most 70% of the ground's width and half of it in height: a floor
    around a table, a lawn; not the base of a bottle or a lamp) is left out of the framing, so a table
    top is seen, not the floor it stands on. ``proj`` [N, 3] are the core splats in the frame's axes
    (last = up) relative to ``centre``."""
    h = proj[:, 2]
    bottom, top = np.percentile(h, 2), np.percentile(h, 98)
    ground = h < bottom + 0.1 * (top - bottom)
    width = np.percentile(proj[:, :2], 98, axis=0) - np.percentile(proj[:, :2], 2, axis=0)
    rest = proj[~ground]
    if ground.sum() < 10 or len(rest) < 10:
        return centre, radius, False
    ground_width = np.percentile(proj[ground, :2], 98, axis=0) - np.percentile(proj[ground, :2], 2, axis=0)
    lo, hi = np.percentile(rest, 2, axis=0), np.percentile(rest, 98, axis=0)
    if not (np.all(ground_width >= 0.7 * width) and np.all(hi[:2] - lo[:2] <= 0.7 * ground_width)
            and np.all(ground_width >= 2.0 * (hi[2] - lo[2]))):
        return centre, radius, False  # no ground; or the base of a bottle, a lamp: not wide beside its height
    return centre + 0.5 * (lo + hi) @ axes, float(np.linalg.norm(hi - lo) / 2), True


def _up_axis(spread: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """The principal axis (rows of ``axes``, by decreasing ``spread``) that stands apart: the least
    spread one when the two largest are closer to each other (in ratio) than the two smallest (wide and
    flat), else the most spread one (tall); signed by the capture's convention (-y, or +z)."""
    s = np.maximum(np.asarray(spread, np.float64), 1e-12)
    return _signed(axes[2] if s[0] / s[1] <= s[1] / s[2] else axes[0])


def _signed(u: np.ndarray) -> np.ndarray:
    """``u`` or ``-u``: towards -y when nearer y than z (COLMAP / OpenCV worlds, y down), else +z."""
    towards = np.array([0.0, -1.0, 0.0]) if abs(u[1]) > abs(u[2]) else np.array([0.0, 0.0, 1.0])
    return u if u @ towards >= 0 else -u


def _weighted_percentile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, q / 100 * cw[-1])])


def candidate_cameras(frame: SceneFrame, config: VirtualViewConfig) -> list[Camera]:
    """Rings around the scene looking at its centre; for rooms, rings inside it looking at its middle and
    views from its middle looking out and down."""
    a, b, u = frame.axes
    cams = []

    def add(eye, target, tag):
        cams.append(Camera.look_at(eye, target, up=tuple(u), fov_x_deg=config.fov_x_deg, width=config.width,
                                   height=config.height, name=f"virtual_{tag}_{len(cams):03d}.png"))

    horiz = float(np.hypot(frame.half_extent[0], frame.half_extent[1]))
    dist = fit_distance(frame.focus_radius, config)
    for r, elevation in enumerate(config.elevations):  # around: the bounding sphere fills the view
        for k in range(config.ring_azimuths):
            t = 2 * np.pi * (k + 0.5 * (r % 2)) / config.ring_azimuths
            e = np.radians(elevation)
            d = np.cos(e) * (np.cos(t) * a + np.sin(t) * b) + np.sin(e) * u
            add(frame.focus + dist * d, frame.focus, "around")
    for dist_share, elevation in ((0.5, 25.0), (0.5, 50.0), (0.9, 25.0), (0.9, 50.0)):  # inward: from high in a
        for k in range(config.ring_azimuths):  # room's corners and walls towards its middle
            t = 2 * np.pi * (k + 0.5 * (dist_share > 0.5)) / config.ring_azimuths
            e = np.radians(elevation)
            d = np.cos(e) * (np.cos(t) * a + np.sin(t) * b) + np.sin(e) * u
            add(frame.centre + dist_share * frame.radius * d, frame.centre, "inward")
    for offset in ((0, 0), (0.3, 0), (-0.3, 0), (0, 0.3), (0, -0.3)):  # inside: looking out and down
        eye = inside_eye(frame) + offset[0] * frame.half_extent[0] * a + offset[1] * frame.half_extent[1] * b
        for k in range(8):
            t = 2 * np.pi * (k + 0.5 * (offset != (0, 0))) / 8
            for pitch in (15.0, 35.0):
                p = np.radians(pitch)
                d = np.cos(p) * (np.cos(t) * a + np.sin(t) * b) - np.sin(p) * u
                add(eye, eye + max(horiz, 1e-3) * d, "inside")
    return cams


def fit_distance(radius: float, config: VirtualViewConfig) -> float:
    """How far from the centre a camera sees a sphere of ``radius`` whole: the sphere's tangent cone
    inside the narrower half field of view, with a 5% margin."""
    half_x = np.radians(config.fov_x_deg) / 2
    half_y = np.arctan(np.tan(half_x) * config.height / config.width)
    return 1.05 * radius / np.sin(min(half_x, half_y))


def share_in_view(scene, camera: Camera) -> float:
    """The opacity-weighted share of the splats whose centres project into ``camera``'s image, in front."""
    means = np.asarray(scene.means, np.float64)
    w = 1.0 / (1.0 + np.exp(-np.asarray(scene.opacity_logits, np.float64)))
    p = means @ camera.world_to_camera[:3, :3].T + camera.world_to_camera[:3, 3]
    z = p[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        x = camera.fx * p[:, 0] / z + camera.cx
        y = camera.fy * p[:, 1] / z + camera.cy
    inside = (z > 0) & (x >= 0) & (x < camera.width) & (y >= 0) & (y < camera.height)
    return float(w[inside].sum() / max(w.sum(), 1e-12))


@torch.no_grad()
def render_rgb(scene, gaussians, camera: Camera, backend: str = "auto"):
    """``(rgb [H, W, 3], alpha [H, W], depth [H, W])`` of ``camera``, colours from the splats' SH
    evaluated along each splat's viewing direction (sh.evaluate)."""
    from . import sh
    from .engine import project, render

    dirs = np.asarray(scene.means, np.float64) - camera.position
    dirs /= np.maximum(np.linalg.norm(dirs, axis=1, keepdims=True), 1e-12)
    coeffs = np.concatenate([scene.sh_dc[:, None], scene.sh_rest], axis=1)  # [N, K, 3]
    colors = np.clip(sh.evaluate(coeffs, dirs) + 0.5, 0.0, 1.0).astype(np.float32)
    out = render(project(gaussians, camera), torch.from_numpy(colors), backend=backend)
    alpha = out.alpha.numpy()
    depth = np.where(alpha > 1e-6, out.depth.numpy() / np.maximum(alpha, 1e-6), 0.0)
    return out.features.numpy().clip(0, 1), alpha, depth


def inside_eye(frame: SceneFrame) -> np.ndarray:  # [3]
    """Where the inside views stand: a little above the middle of the scene."""
    return frame.centre + 0.25 * frame.half_extent[2] * frame.up


def is_enclosed(scene, gaussians, frame: SceneFrame, config: VirtualViewConfig) -> tuple[bool, list[float]]:
    """Whether the scene surrounds its middle, as a room does: from the inside eye, the splats cover
    the view straight up and the views to four sides (``min_coverage`` each, alpha > 0.5), each at a
    median depth of at least ``min_depth`` of the scene radius (not leaves at arm's length inside a
    plant). An object or a table top leaves the sky above open. Returns the decision and the covers
    (up, then the four sides)."""
    a, b, u = frame.axes
    eye = inside_eye(frame)
    covers, deep = [], []
    for d in (u, a, b, -a, -b):
        cam = Camera.look_at(eye, eye + d, up=tuple(b if d is u else u), fov_x_deg=90.0, width=64, height=64)
        _, alpha, depth = render_rgb(scene, gaussians, cam, config.backend)
        covered = alpha > 0.5
        covers.append(round(float(covered.mean()), 3))
        deep.append(bool(covered.any()) and float(np.median(depth[covered])) >= config.min_depth * frame.radius)
    return bool(min(covers) >= config.min_coverage and all(deep)), covers


def estimate_frame(scene, gaussians, config: VirtualViewConfig) -> tuple[SceneFrame, bool, list[float]]:
    """The scene's frame and whether it is a room: with ``up="auto"``, a scene that encloses its middle
    when its least-spread axis is taken as up is a room standing on that axis (a long room's most
    distinct axis is its length); otherwise up is the axis that stands apart (:func:`scene_frame`)."""
    if config.up == "auto":
        flat = scene_frame(scene, flat=True)
        enclosed, covers = is_enclosed(scene, gaussians, flat, config)
        if enclosed:
            return flat, True, covers
    frame = scene_frame(scene, config.up)
    enclosed, covers = is_enclosed(scene, gaussians, frame, config)
    return frame, enclosed, covers


def choose_virtual_views(scene, config: VirtualViewConfig = VirtualViewConfig(),
                         progress: Callable[[str, int, int], None] | None = None) -> tuple[list[Camera], dict]:
    """The accepted, covering virtual cameras of ``scene`` and what was measured on the way."""
    from .viewselect import covering_views

    say = progress or (lambda stage, done, total: None)
    gaussians = scene.to_gaussians()
    probe = VirtualViewConfig(**{**config.__dict__, "width": config.probe_width,  # acceptance at low resolution
                                 "height": max(1, round(config.probe_width * config.height / config.width))})
    frame, enclosed, covers = estimate_frame(scene, gaussians, probe)
    cands = candidate_cameras(frame, config)
    from .engine import project, trace
    from .visibility import DEFAULT_VISIBILITY

    family = ("inside", "inward") if enclosed else ("around",)  # a room from inside; an object, a table top around
    cands = [c for c in cands if c.name.split("_")[1] in family]
    ok, seen_counts = [], []
    for k, cam in enumerate(cands):
        say("virtual views", k, len(cands))
        small = cam.scaled(probe.width / cam.width)
        _, alpha, depth = render_rgb(scene, gaussians, small, config.backend)
        covered = alpha > 0.5
        if "around" in cam.name:  # from outside, the bounding sphere in the frame: anything seen
            good = bool(covered.any())
        else:  # from inside: surrounded by the scene, not pressed against it
            good = (covered.mean() >= config.min_coverage
                    and np.median(depth[covered]) >= config.min_depth * frame.radius)
        ok.append(good)
        seen = 0
        if good:
            out = trace(project(gaussians, small), torch.ones(small.height, small.width, 1), backend=config.backend)
            seen = int(DEFAULT_VISIBILITY.of(out).sum())
        seen_counts.append(seen)
    say("virtual views", len(cands), len(cands))
    best = max(seen_counts) if seen_counts else 0
    kept = [c for c, g, n in zip(cands, ok, seen_counts) if g and n >= config.min_seen * best]
    stats = {"candidates": len(cands), "enclosed": enclosed, "enclosure_cover": covers,
             "around": sum("around" in c.name for c in kept), "inward": sum("inward" in c.name for c in kept),
             "inside": sum("inside" in c.name for c in kept)}
    if not kept:
        raise ValueError("no virtual camera sees the scene well; pass up= explicitly or lower min_coverage")
    chosen = [kept[i] for i in covering_views(kept, min(config.views, len(kept)))]
    stats.update(accepted=len(kept), chosen=len(chosen), radius=frame.radius, up=frame.up.tolist())
    return chosen, stats


def write_virtual_dataset(scene, root: str | Path, config: VirtualViewConfig = VirtualViewConfig(),
                          progress: Callable[[str, int, int], None] | None = None) -> tuple[Path, dict]:
    """Render the chosen virtual views of ``scene`` into ``root`` (``images/``, ``sparse/0``)."""
    from PIL import Image

    from .io.atomic import atomic_write
    from .io.colmap import write_colmap_text

    root = Path(root)
    cams, stats = choose_virtual_views(scene, config, progress)
    (root / "images").mkdir(parents=True, exist_ok=True)
    gaussians = scene.to_gaussians()
    for k, cam in enumerate(cams):
        if progress:
            progress("rendering virtual views", k, len(cams))
        rgb, _, _ = render_rgb(scene, gaussians, cam, config.backend)
        with atomic_write(root / "images" / cam.name) as fh:
            Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(fh, format="PNG")
    write_colmap_text(root / "sparse" / "0", cams, [c.name for c in cams])
    return root, stats


def dataset_for_splats(scene_path: Path, out: Path, config: VirtualViewConfig = VirtualViewConfig(),
                       progress=None, log=print) -> Path:
    """``prepare --scene PLY`` without a dataset: the virtual views of the splats as a dataset in
    ``out/virtual`` (made once per scene file and config; a rerun reuses it)."""
    import json

    from .errors import UserError
    from .io.atomic import write_text
    from .io.ply import PlyError
    from .pipeline.workdir import file_fingerprint, fingerprint
    from .scene import GaussianScene

    if not Path(scene_path).is_file():
        raise UserError(f"--scene {scene_path}: no such file")
    root = Path(out) / "virtual"
    key = fingerprint(file_fingerprint(Path(scene_path)), repr(config))
    stamp = root / "virtual.json"
    try:
        made = json.loads(stamp.read_text())
        if isinstance(made, dict) and made.get("key") == key:
            return root
    except (OSError, ValueError, RecursionError):
        pass  # none, or damaged: render the views again
    try:
        scene = GaussianScene.load(scene_path)
    except PlyError as exc:
        raise UserError(str(exc)) from None
    try:
        _, stats = write_virtual_dataset(scene, root, config, progress)
    except ValueError as exc:
        raise UserError(f"--scene {scene_path}: {exc}") from None
    log(f"no photos: {stats['chosen']} virtual views ({stats['around']} around, {stats['inside']} inside accepted of "
        f"{stats['candidates']} candidates) rendered into {root}")
    write_text(stamp, json.dumps({"key": key, **stats}))
    return root

"""Segmenting a splat file that came without its photos (issue 12 item 6): virtual cameras around
and inside the scene, rendered with the engine (SH evaluated per view), written as a dataset the
pipeline reads like a capture.

Placement, from the splats alone:

* the scene's frame: centre and extent from opacity-weighted percentiles of the means (floaters do
  not stretch it); "up" is the principal axis of least spread (floors and table tops are wide and
  flat), or given;
* candidates "around" (three rings looking at the centre from outside the bounds, for an object
  or a table top) and "inside" (from points near the centre looking outward and down, for a room);
* a candidate is kept when it sees the scene (alpha coverage), is not pressed against a surface
  (median depth over the scene radius) and sees many splats (at least ``min_seen`` of the best
  candidate's count, by the engine's visibility rule): a camera outside a room sees only the
  backs of walls and is dropped; then a covering subset (:func:`gs_core.viewselect.covering_views`).
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
    min_coverage: float = 0.6  # share of the image the splats must cover (alpha > 0.5)
    min_depth: float = 0.15  # median depth must exceed this share of the scene radius
    min_seen: float = 0.3  # and the view must see this share of the best candidate's number of splats
    backend: str = "auto"


@dataclass
class SceneFrame:
    centre: np.ndarray  # [3]
    radius: float  # half the diagonal of the 2-98% box
    up: np.ndarray  # [3] unit
    half_extent: np.ndarray  # [3] along the principal axes
    axes: np.ndarray  # [3, 3] rows: principal axes, last = up


def scene_frame(scene, up: str = "auto") -> SceneFrame:
    """Centre, extent and up direction of the splats (opacity-weighted, 2-98 percentiles)."""
    means = np.asarray(scene.means, np.float64)
    w = 1.0 / (1.0 + np.exp(-np.asarray(scene.opacity_logits, np.float64)))
    keep = w > 0.1
    pts, w = (means[keep], w[keep]) if keep.sum() >= 10 else (means, np.ones(len(means)))
    lo = np.array([_weighted_percentile(pts[:, i], w, 2) for i in range(3)])
    hi = np.array([_weighted_percentile(pts[:, i], w, 98) for i in range(3)])
    inside = np.all((pts >= lo) & (pts <= hi), axis=1)
    core = pts[inside]
    centre = 0.5 * (lo + hi)
    _, _, vt = np.linalg.svd(core - core.mean(0), full_matrices=False)  # rows: axes by decreasing spread
    if up == "auto":
        u = vt[2]
        u = u if u @ np.array([0.0, 0.0, 1.0]) >= 0 else -u  # COLMAP worlds have no fixed up: prefer +z
    else:
        if up not in AXES:
            raise ValueError(f"up must be auto or one of {sorted(AXES)}, got {up!r}")
        u = np.asarray(AXES[up])
    a = vt[0] - (vt[0] @ u) * u
    a /= np.linalg.norm(a)
    axes = np.stack([a, np.cross(u, a), u])
    proj = (core - centre) @ axes.T
    half = 0.5 * (np.percentile(proj, 98, axis=0) - np.percentile(proj, 2, axis=0))
    return SceneFrame(centre, float(np.linalg.norm(hi - lo) / 2), u, half, axes)


def _weighted_percentile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cw = np.cumsum(w[order])
    return float(x[order][np.searchsorted(cw, q / 100 * cw[-1])])


def candidate_cameras(frame: SceneFrame, config: VirtualViewConfig) -> list[Camera]:
    """Rings around the scene looking at its centre, and views from inside looking out and down."""
    a, b, u = frame.axes
    cams = []

    def add(eye, target, tag):
        cams.append(Camera.look_at(eye, target, up=tuple(u), fov_x_deg=config.fov_x_deg, width=config.width,
                                   height=config.height, name=f"virtual_{tag}_{len(cams):03d}.png"))

    horiz = float(np.hypot(frame.half_extent[0], frame.half_extent[1]))
    for dist, elevation in ((0.5, 25.0), (0.5, 50.0), (0.9, 25.0), (0.9, 50.0)):  # around, near and far
        for k in range(config.ring_azimuths):
            t = 2 * np.pi * (k + 0.5 * (dist > 0.5)) / config.ring_azimuths
            e = np.radians(elevation)
            d = np.cos(e) * (np.cos(t) * a + np.sin(t) * b) + np.sin(e) * u
            add(frame.centre + dist * frame.radius * d, frame.centre, "around")
    height = 0.25 * frame.half_extent[2]  # inside: a little above the middle, looking out and down
    for offset in ((0, 0), (0.3, 0), (-0.3, 0), (0, 0.3), (0, -0.3)):
        eye = frame.centre + height * u + offset[0] * frame.half_extent[0] * a + offset[1] * frame.half_extent[1] * b
        for k in range(8):
            t = 2 * np.pi * (k + 0.5 * (offset != (0, 0))) / 8
            for pitch in (15.0, 35.0):
                p = np.radians(pitch)
                d = np.cos(p) * (np.cos(t) * a + np.sin(t) * b) - np.sin(p) * u
                add(eye, eye + max(horiz, 1e-3) * d, "inside")
    return cams


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


def choose_virtual_views(scene, config: VirtualViewConfig = VirtualViewConfig(),
                         progress: Callable[[str, int, int], None] | None = None) -> tuple[list[Camera], dict]:
    """The accepted, covering virtual cameras of ``scene`` and what was measured on the way."""
    from .viewselect import covering_views

    say = progress or (lambda stage, done, total: None)
    frame = scene_frame(scene, config.up)
    cands = candidate_cameras(frame, config)
    gaussians = scene.to_gaussians()
    probe = VirtualViewConfig(**{**config.__dict__, "width": 160, "height": 120})  # acceptance at low resolution
    from .engine import project, trace
    from .visibility import DEFAULT_VISIBILITY

    ok, seen_counts = [], []
    for k, cam in enumerate(cands):
        say("virtual views", k, len(cands))
        small = cam.scaled(probe.width / cam.width)
        _, alpha, depth = render_rgb(scene, gaussians, small, config.backend)
        covered = alpha > 0.5
        good = covered.mean() >= config.min_coverage and np.median(depth[covered]) >= config.min_depth * frame.radius
        ok.append(good)
        seen = 0
        if good:
            out = trace(project(gaussians, small), torch.ones(small.height, small.width, 1), backend=config.backend)
            seen = int(DEFAULT_VISIBILITY.of(out).sum())
        seen_counts.append(seen)
    say("virtual views", len(cands), len(cands))
    best = max(seen_counts) if seen_counts else 0
    kept = [c for c, g, n in zip(cands, ok, seen_counts) if g and n >= config.min_seen * best]
    stats = {"candidates": len(cands), "around": sum("around" in c.name for c in kept),
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

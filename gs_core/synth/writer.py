"""Writing a synthetic world as a standard dataset folder, readable by any 3DGS tool and by
:class:`gs_core.dataset.Dataset` like real data::

    root/
      scene.ply               INRIA 3DGS/2DGS splats (clean splats, then artefacts)
      sparse/0/               COLMAP text model: PINHOLE cameras, poses, a sample of surface points
      images/<name>.png       rendered views (train_*, test_*)
      masks/<stem>.npz        simulated SAM stacks (M x H x W bool + scores), training views only
      gt/                     ground truth, see :mod:`gs_core.synth.groundtruth`
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from ..io.colmap import write_colmap_text
from ..io.masks import save_mask_stack
from .groundtruth import ARTEFACTS, FORMAT, LEVELS, write_label_png
from .masks import MaskNoise, simulate_masks
from .views import ViewRender, render_views
from .world import SynthConfig, SynthWorld, make_world

COLMAP_POINTS = 10_000  # surface points written to points3D.txt


def mask_rng(seed: int, view: int) -> np.random.Generator:
    """The simulator's random stream for training view ``view`` of world ``seed``."""
    return np.random.default_rng([seed, 7, view])


def write_dataset(root: str | os.PathLike, world: SynthWorld, views: list[ViewRender], noise: MaskNoise) -> Path:
    """Write ``world`` with its rendered ``views`` (train then test, as ``world.cameras``) to ``root``."""
    root = Path(root)
    if len(views) != len(world.cameras):
        raise ValueError(f"{len(views)} views for {len(world.cameras)} cameras")
    write_header(root, world)
    sources = {}
    for k, view in enumerate(views):
        sources.update(write_view(root, world, k, view, noise))
    write_meta(root, world, noise, sources)
    return root


def write_header(root: Path, world: SynthWorld) -> None:
    """The folders, scene.ply and the COLMAP model: what comes before the views."""
    # gt/scene.json is written last (write_meta): gone until then, so a dataset rewritten in place and
    # interrupted is never taken for a finished one (dataset_written)
    (root / "gt" / "scene.json").unlink(missing_ok=True)
    for sub in ("images", "masks", "gt", *(f"gt/{level}" for level in (*LEVELS, "depth"))):
        (root / sub).mkdir(parents=True, exist_ok=True)
    world.scene.save(root / "scene.ply")
    clean = np.flatnonzero(world.labels.clean)
    sample = np.random.default_rng(world.config.seed).permutation(clean)[:COLMAP_POINTS]
    write_colmap_text(root / "sparse" / "0", world.cameras, [c.name for c in world.cameras],
                      points=(world.scene.means[sample], world.scene.base_colors[sample] * 255))


def write_view(root: Path, world: SynthWorld, k: int, view: ViewRender, noise: MaskNoise) -> dict:
    """View ``k``'s image, GT maps and (training views) simulated masks; -> its mask sources by stem."""
    name = view.camera.name
    stem = Path(name).stem
    Image.fromarray(np.round(view.rgb * 255).astype(np.uint8)).save(root / "images" / name)
    for level in LEVELS:
        write_label_png(root / "gt" / level / f"{stem}.png", getattr(view, level))
    Image.fromarray(np.round(view.depth * 1000).clip(0, 65535).astype(np.uint16)).save(
        root / "gt" / "depth" / f"{stem}.png")
    if k >= len(world.train_cameras):
        return {}
    sim = simulate_masks(view.part, view.object, view.group, world.hierarchy, noise, mask_rng(world.config.seed, k))
    save_mask_stack(root / "masks" / f"{stem}.npz", sim.masks, sim.scores)
    return {stem: [[s.kind, list(s.ids), s.parent] for s in sim.sources]}


def write_meta(root: Path, world: SynthWorld, noise: MaskNoise, sources: dict, extra: dict | None = None) -> None:
    """gt/gaussians.npz and gt/scene.json: what comes after the views."""
    counts = np.bincount(world.labels.artefact, minlength=len(ARTEFACTS))
    meta = {
        "format": FORMAT,
        "config": world.config.to_json(),
        "noise": noise.to_json(),
        "split": {"train": [c.name for c in world.train_cameras], "test": [c.name for c in world.test_cameras]},
        "hierarchy": world.hierarchy.to_json(),
        "artefacts": {kind: int(n) for kind, n in zip(ARTEFACTS, counts)},
        "mask_sources": sources,
        **(extra or {}),
    }
    world.labels.save(root / "gt" / "gaussians.npz")
    (root / "gt" / "scene.json").write_text(json.dumps(meta, indent=1))


def dataset_written(root: str | os.PathLike, config: SynthConfig, noise: MaskNoise) -> bool:
    """Whether ``root`` holds a dataset that :func:`write_dataset` finished for a world of ``config`` with
    mask noise ``noise``: its ``gt/scene.json`` (written last) records this format, this config and this
    noise. What lets a benchmark reuse a dataset instead of generating it again; the generator's code is
    not compared (after changing :mod:`gs_core.synth`, write the datasets again)."""
    path = Path(root) / "gt" / "scene.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    same = json.loads(json.dumps({"config": config.to_json(), "noise": noise.to_json()}))  # tuples as lists
    return (isinstance(meta, dict) and meta.get("format") == FORMAT and meta.get("config") == same["config"]
            and meta.get("noise") == same["noise"])


class SceneViews:
    """A synthetic world of ``config`` and its rendered views, made on first use (:meth:`made`): the datasets
    of one scene at several mask-noise levels share them, and a scene whose datasets are all reused
    (:func:`write_or_reuse`) never makes them."""

    def __init__(self, config: SynthConfig, backend: str = "auto"):
        self.config, self.backend = config, backend
        self.world: SynthWorld | None = None
        self.views: list[ViewRender] | None = None
        self.seconds = 0.0  # generating and rendering, once made

    def made(self) -> tuple[SynthWorld, list[ViewRender]]:
        if self.world is None:
            t0 = time.perf_counter()
            self.world = make_world(self.config)
            self.views = render_views(self.world, self.world.cameras, backend=self.backend)
            self.seconds = time.perf_counter() - t0
        return self.world, self.views


def write_or_reuse(root: str | os.PathLike, scene: SceneViews, noise: MaskNoise, reuse: bool = False) -> bool:
    """Write ``scene``'s dataset with mask noise ``noise`` to ``root``, or with ``reuse`` keep the one there
    when it was written for the same world and noise (:func:`dataset_written`); -> whether it was kept."""
    if reuse and dataset_written(root, scene.config, noise):
        return True
    world, views = scene.made()
    write_dataset(root, world, views, noise)
    return False


def build_dataset(root: str | os.PathLike, config: SynthConfig, noise: MaskNoise, *, backend: str = "auto",
                  progress: Callable[[], None] | None = None) -> SynthWorld:
    """Generate, render and write one dataset; ``progress`` is called after each rendered view."""
    world = make_world(config)
    views = render_views(world, world.cameras, backend=backend, progress=progress)
    write_dataset(root, world, views, noise)
    return world

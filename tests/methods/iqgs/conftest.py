"""Fixtures for the IQGS tests: one view of a tiny synthetic table top; the planted scene (GT object
maps of the tiny table top, about 7k splats, 6 views of 64x48), made once per session."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from gs_core.engine import Projection, project
from gs_core.labelmaps import render_labels
from gs_core.scene import GaussianScene


@dataclass
class PlantedScene:
    scene: GaussianScene
    objects: np.ndarray  # [N] GT object per Gaussian
    projections: list[Projection]
    maps: list[np.ndarray]  # [H, W] GT object ids per view


def _planted(kind: str) -> PlantedScene:
    from gs_core.synth import SynthConfig, make_world

    world = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=0, kind=kind))
    clean = world.labels.clean
    scene = world.scene.subset(clean)
    g = scene.to_gaussians()
    objects = world.labels.object[clean].astype(np.int64)
    projections = [project(g, cam) for cam in world.train_cameras]
    return PlantedScene(scene, objects, projections, [render_labels(p, objects) for p in projections])


@pytest.fixture(scope="session")
def planted_3dgs() -> PlantedScene:
    return _planted("3dgs")


@pytest.fixture(scope="session")
def planted_2dgs() -> PlantedScene:
    return _planted("2dgs")


@pytest.fixture(scope="session")
def tiny_view(planted_3dgs) -> tuple[Projection, int]:
    return planted_3dgs.projections[0], len(planted_3dgs.scene)

"""Fixtures for the lifting tests: a tiny synthetic table top (about 7k splats, 6 views of 64x48),
made once per session in about a second."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from gs_core.engine import Gaussians, Projection, project
from gs_core.labelmaps import render_labels


@dataclass
class LiftScene:
    gaussians: Gaussians
    objects: np.ndarray  # [N] int64 ground-truth object per Gaussian, -1 = none
    projections: list[Projection]
    object_maps: list[np.ndarray]  # [H, W] int64 per view, rendered from ``objects``


@pytest.fixture(scope="session")
def tabletop() -> LiftScene:
    from gs_core.synth import SynthConfig, make_world

    world = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=0))
    clean = world.labels.clean
    gaussians = world.scene.subset(clean).to_gaussians()
    objects = world.labels.object[clean].astype(np.int64)
    projections = [project(gaussians, cam) for cam in world.train_cameras]
    maps = [render_labels(p, objects) for p in projections]
    return LiftScene(gaussians, objects, projections, maps)

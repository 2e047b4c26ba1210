"""Fixtures for the engine tests (scene factories live in engine_scenes.py)."""

import pytest

from engine_scenes import camera, random_gaussians


@pytest.fixture(params=["3dgs", "2dgs"])
def kind(request) -> str:
    return request.param


@pytest.fixture
def scene(kind):
    """(gaussians, camera): 400 Gaussians, camera inside the cloud's edge so some are behind it."""
    return random_gaussians(400, kind, seed=1), camera(eye=(0.2, -1.2, 0.3))


@pytest.fixture(scope="session")
def native():
    """The native CPU extension, built once per session (skips visibly if it cannot build)."""
    from gs_core.engine import cpu_backend

    if not cpu_backend.available():
        pytest.skip("native CPU extension unavailable (no compiler?)")
    return cpu_backend


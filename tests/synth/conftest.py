"""Small synthetic worlds for the synth tests: milliseconds to generate, well under a second to render."""

import pytest

from gs_core.synth import SynthConfig, make_world, render_views


@pytest.fixture(scope="session")
def tiny_config() -> SynthConfig:
    return SynthConfig.sized("tiny", layout="tabletop", seed=3)


@pytest.fixture(scope="session")
def tiny_world(tiny_config):
    return make_world(tiny_config)


@pytest.fixture(scope="session")
def tiny_views(tiny_world):
    return render_views(tiny_world, tiny_world.cameras)

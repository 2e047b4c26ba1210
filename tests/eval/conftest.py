"""Tiny synthetic datasets (one world, clean and noisy masks) for the evaluation tests."""

import pytest

from gs_core.synth import MaskNoise, SynthConfig, make_world, render_views, write_dataset


@pytest.fixture(scope="session")
def bench_world():
    world = make_world(SynthConfig.sized("tiny", layout="tabletop", seed=1))
    return world, render_views(world, world.cameras)


@pytest.fixture(scope="session")
def clean_root(bench_world, tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bench") / "clean", *bench_world, MaskNoise())


@pytest.fixture(scope="session")
def noisy_root(bench_world, tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bench") / "noisy", *bench_world, MaskNoise.level(1.0))

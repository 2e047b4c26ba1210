"""Shared pytest setup: markers that skip visibly when their requirement is missing."""

import gs_core  # noqa: F401  (before torch: OpenMP threads sleep instead of spinning, see gs_core/__init__)
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


@pytest.fixture(scope="session")
def tiny_work(tmp_path_factory):
    """A tiny synthetic dataset and its prepared work folder (git-consistent: the work scene keeps the
    dataset's rows); returns (dataset, work). About 3 s, made once per session."""
    from gs_core.pipeline.prepare import PrepareOptions, prepare
    from gs_core.synth import MaskNoise, SynthConfig, build_dataset

    root = tmp_path_factory.mktemp("tiny_work")
    dataset = root / "dataset"
    build_dataset(dataset, SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    prepare(PrepareOptions(dataset, root / "work", method="git-consistent"))
    return dataset, root / "work"

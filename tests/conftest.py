"""Shared pytest setup: markers that skip visibly when their requirement is missing."""

import gs_core  # noqa: F401  (before torch: OpenMP threads sleep instead of spinning, see gs_core/__init__)
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip_cuda = pytest.mark.skip(reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)

"""Tiny, randomly initialised models of the real architectures, saved as checkpoint files the way
users have them. Each fixture skips visibly when its library (and torchvision) is not installed."""

from __future__ import annotations

import pytest
from tiny_models import TINY_SAM


@pytest.fixture(scope="session")
def tiny_sam_checkpoint(tmp_path_factory):
    pytest.importorskip("torchvision")
    pytest.importorskip("segment_anything")
    import torch

    from gs_core.models.sam import SamSpec, build_sam

    torch.manual_seed(0)
    sam = build_sam(SamSpec(**TINY_SAM))
    path = tmp_path_factory.mktemp("sam") / "sam_tiny.pth"
    torch.save(sam.state_dict(), path)
    return path

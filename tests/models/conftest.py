"""Checkpoint files of tiny random models (:mod:`tiny_models`); skip visibly without their libraries."""

from __future__ import annotations

import pytest
from tiny_models import make_tiny_clip, make_tiny_sam


@pytest.fixture(scope="session")
def tiny_sam_checkpoint(tmp_path_factory):
    pytest.importorskip("torchvision")
    pytest.importorskip("segment_anything")
    return make_tiny_sam(tmp_path_factory.mktemp("sam") / "sam_tiny.pth")


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    pytest.importorskip("torchvision")
    pytest.importorskip("open_clip")
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))

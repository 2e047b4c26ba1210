"""Foundation models behind small interfaces: SAM / SAM 2 masks (:mod:`.sam`, :mod:`.sam2`), CLIP
embeddings (:mod:`.clip`).

Nothing here is imported by ``import gs_core``: each module imports its library
(``segment_anything``, ``sam2``, ``open_clip``, which need ``torchvision``) inside its functions,
and a missing one is a one-line :class:`~gs_core.errors.UserError` naming the extra to install.

The interfaces the pipeline uses (any callable with these shapes works, e.g. the synthetic
stand-ins of :mod:`gs_core.synth.standins`):

* mask generator: ``generate(image [H, W, 3] float in [0, 1]) -> (masks [M, H, W] bool, scores [M])``
* point predictor: ``predict(image, points [P, 2] (x, y), labels [P] 1/0) -> (mask [H, W] bool, score)``
* embedder: ``embed_masks(image, masks [M, H, W]) -> [M, D]`` and ``embed_text(list[str]) -> [T, D]``,
  rows L2-normalised.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class MaskGenerator(Protocol):
    name: str

    def generate(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class PointPredictor(Protocol):
    def predict(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]: ...


class Embedder(Protocol):
    name: str

    def embed_masks(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray: ...

    def embed_text(self, texts: list[str]) -> np.ndarray: ...


def require(module: str, extra: str):
    """Import ``module`` or raise a one-line UserError naming the pip extra that brings it."""
    import importlib

    from ..errors import UserError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{module} is not installed ({exc}); pip install 'gs-core[{extra}]' "
                        "(needs torchvision matching your torch)") from None

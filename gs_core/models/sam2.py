"""SAM 2 / 2.1 (the ``sam2`` package) behind the same interface as :mod:`.sam`: automatic masks and
the point predictor. Its tiny Hiera model (39M parameters) is several times faster on a CPU than
SAM's vit_b.

The model size is read from the checkpoint's tensor shapes (Hiera width and block count), SAM 2 vs
2.1 from the keys 2.1 added (``no_obj_embed_spatial``); the package's own config files build it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import require
from .sam import SamMaskConfig, postprocess, read_checkpoint, to_uint8

WHERE_CHECKPOINTS_COME_FROM = ("SAM 2.1 checkpoints (sam2.1_hiera_tiny.pt ... sam2.1_hiera_large.pt) are downloaded "
                               "from the 'Model Checkpoints' section of github.com/facebookresearch/sam2")
# Hiera trunk width and number of blocks -> size name and config stem (sam2 package: configs/sam2[.1]/)
SIZES = {(96, 12): ("tiny", "t"), (96, 16): ("small", "s"), (112, 24): ("base_plus", "b+"), (144, 48): ("large", "l")}


def model_from_state_dict(state: Mapping, source: str = "checkpoint") -> tuple[str, str]:
    """``(name, config file)``, e.g. ``("sam2.1_hiera_tiny", "configs/sam2.1/sam2.1_hiera_t.yaml")``."""
    try:
        width = state["image_encoder.trunk.patch_embed.proj.weight"].shape[0]
    except KeyError:
        raise UserError(f"{source}: not a SAM 2 checkpoint (no image_encoder.trunk); {WHERE_CHECKPOINTS_COME_FROM}") \
            from None
    depth = 1 + max(int(k.split(".")[3]) for k in state if k.startswith("image_encoder.trunk.blocks."))
    if (width, depth) not in SIZES:
        raise UserError(f"{source}: a Hiera trunk {width} wide with {depth} blocks is none of SAM 2's sizes")
    size, stem = SIZES[(width, depth)]
    version = "sam2.1" if "no_obj_embed_spatial" in state else "sam2"
    return f"{version}_hiera_{size}", f"configs/{version}/{version}_hiera_{stem}.yaml"


def load_sam2(checkpoint: str | os.PathLike, model_type: str | None = None, device: str = "cpu", state=None):
    """SAM 2 from the user's checkpoint; returns ``(model, name)``."""
    require("torchvision", "sam")
    require("sam2", "sam")
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from sam2.build_sam import build_sam2

    if not Path(checkpoint).is_file():
        raise UserError(f"--sam-checkpoint {checkpoint}: no such file; {WHERE_CHECKPOINTS_COME_FROM}")
    state = read_checkpoint(checkpoint) if state is None else state
    name, config = model_from_state_dict(state, f"--sam-checkpoint {checkpoint}")
    if model_type not in (None, "auto") and model_type != name:
        raise UserError(f"--sam-checkpoint {checkpoint}: holds {name}, not --sam-model {model_type}")
    if not GlobalHydra.instance().is_initialized():  # sam2's __init__ does this; be safe if it did not
        initialize_config_module("sam2", version_base="1.2")
    model = build_sam2(config, None, device=device)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(f"--sam-checkpoint {checkpoint}: does not fit {name} ({what})")
    return model.eval(), name


class Sam2MaskGenerator:
    """SAM 2's automatic generator with Trace3D's settings, post-processed like :class:`.sam.SamMaskGenerator`."""

    def __init__(self, model, config: SamMaskConfig | None = None, points_per_side: int = 32, name: str = "sam2"):
        require("sam2", "sam")
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        self.config = config or SamMaskConfig(points_per_side=points_per_side)
        self.name, self.model = name, model
        c = self.config
        self._amg = SAM2AutomaticMaskGenerator(
            model, points_per_side=c.points_per_side, points_per_batch=c.points_per_batch,
            pred_iou_thresh=c.pred_iou_thresh, stability_score_thresh=c.stability_score_thresh,
            box_nms_thresh=c.box_nms_thresh, output_mode="binary_mask")

    def generate(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            records = self._amg.generate(to_uint8(image))
        return postprocess(image.shape[0], image.shape[1], [r["segmentation"] for r in records],
                           [r["predicted_iou"] for r in records], self.config)


class Sam2PointPredictor:
    """``predict(image, points, labels, key=None)`` -> ``(mask, score)``, as :class:`.sam.SamPointPredictor`."""

    def __init__(self, model):
        require("sam2", "sam")
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        self._predictor = SAM2ImagePredictor(model)
        self._key = None

    def predict(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, key=None) -> tuple[np.ndarray, float]:
        import torch

        if key is None:
            key = (image.shape, np.asarray(image).ravel()[:: max(1, image.size // 4099)].tobytes())
        with torch.inference_mode():
            if key != self._key:
                self._predictor.set_image(to_uint8(image))
                self._key = key
            points = np.asarray(points, np.float32).reshape(-1, 2) + 0.5
            masks, iou, _ = self._predictor.predict(point_coords=points, point_labels=np.asarray(labels, np.int32),
                                                    multimask_output=len(points) == 1)
        best = int(np.argmax(iou))
        return np.asarray(masks[best]) > 0, float(iou[best])

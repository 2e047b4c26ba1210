"""Segment Anything (``segment-anything``): the user's checkpoint, automatic masks with Trace3D's
settings, and the point-prompt predictor of self-prompting.

The checkpoint's architecture is read from its tensor shapes (:func:`spec_from_state_dict`), so
``--sam-model`` is only a check: ``vit_h`` / ``vit_l`` / ``vit_b`` are named when the shapes match
the released models, anything else is built from the shapes it has (``custom``: e.g. a small
fine-tuned encoder). Loading is ``torch.load(weights_only=True)``: a checkpoint cannot run code.

Automatic masks (:class:`SamMaskGenerator`): SAM's own generator with Trace3D's settings
(stability 0.9), then masks below a minimum area dropped and near-duplicates absorbed
(:func:`absorb_masks`), written as the SAM-style stack of DESIGN.md (largest first).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import require

SAM_MODELS = ("vit_h", "vit_l", "vit_b")
WHERE_CHECKPOINTS_COME_FROM = ("SAM checkpoints (sam_vit_h_4b8939.pth, sam_vit_l_0b3195.pth, sam_vit_b_01ec64.pth) "
                               "are downloaded from the 'Model Checkpoints' section of "
                               "github.com/facebookresearch/segment-anything")
# the released image encoders: embed dim, depth, heads, global-attention blocks (segment_anything.build_sam)
RELEASED = {
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
}


@dataclass(frozen=True)
class SamSpec:
    """A SAM image encoder's architecture, as read from a checkpoint's tensor shapes."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14

    @property
    def name(self) -> str:
        """``vit_h`` / ``vit_l`` / ``vit_b`` for the released architectures, else ``custom``."""
        for name, (dim, depth, heads, glob) in RELEASED.items():
            if (self.embed_dim, self.depth, self.num_heads, self.global_attn_indexes) == (dim, depth, heads, glob) \
                    and (self.image_size, self.patch_size, self.window_size) == (1024, 16, 14):
                return name
        return "custom"

    @classmethod
    def released(cls, name: str) -> "SamSpec":
        dim, depth, heads, glob = RELEASED[name]
        return cls(dim, depth, heads, glob)


def spec_from_state_dict(state: Mapping, source: str = "checkpoint") -> SamSpec:
    """The encoder architecture of a SAM state dict, from tensor shapes only (works on meta tensors).

    ``pos_embed`` [1, S, S, D] gives the width and the token grid, the patch embedding [D, 3, p, p]
    the patch size, the blocks' count the depth, and each block's relative-position table
    [2 w - 1, D / heads] its attention window (the token grid for global blocks) and head count.
    """
    try:
        pos = tuple(state["image_encoder.pos_embed"].shape)
        patch = tuple(state["image_encoder.patch_embed.proj.weight"].shape)
    except KeyError:
        raise UserError(f"{source}: not a SAM (segment-anything) checkpoint: no image_encoder.pos_embed; "
                        f"{WHERE_CHECKPOINTS_COME_FROM}") from None
    if len(pos) != 4 or pos[1] != pos[2] or len(patch) != 4:
        raise UserError(f"{source}: unexpected SAM position embedding shape {pos}")
    grid, dim, p = pos[1], pos[3], patch[2]
    depth = 1 + max((int(k.split(".")[2]) for k in state if k.startswith("image_encoder.blocks.")), default=-1)
    if depth == 0:
        raise UserError(f"{source}: SAM checkpoint without encoder blocks")
    windows, head_dim = [], None
    for b in range(depth):
        rel = state.get(f"image_encoder.blocks.{b}.attn.rel_pos_h")
        if rel is None:
            raise UserError(f"{source}: SAM block {b} has no relative position table (rel_pos_h)")
        windows.append((rel.shape[0] + 1) // 2)
        head_dim = rel.shape[1]
    glob = tuple(b for b, w in enumerate(windows) if w == grid)
    local = {w for w in windows if w != grid}
    window = local.pop() if len(local) == 1 else (14 if not local else -1)
    if window < 0 or dim % head_dim:
        raise UserError(f"{source}: SAM encoder blocks with mixed window sizes {sorted(set(windows))}")
    return SamSpec(dim, depth, dim // head_dim, glob, grid * p, p, window)


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The state dict in a SAM checkpoint file (``{"model": ...}`` wrappers unwrapped), on the CPU."""
    import pickle
    import zipfile

    torch = require("torch", "sam")
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--sam-checkpoint {path}: no such file; {WHERE_CHECKPOINTS_COME_FROM}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--sam-checkpoint {path}: not a readable PyTorch checkpoint ({first}); "
                        f"{WHERE_CHECKPOINTS_COME_FROM}") from None
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping):
        raise UserError(f"--sam-checkpoint {path}: holds a {type(state).__name__}, not a state dict")
    return dict(state)


def build_sam(spec: SamSpec):
    """An untrained SAM of ``spec`` from segment_anything's own classes (``build_sam._build_sam``
    with the image size, patch and window made explicit)."""
    from functools import partial

    torch = require("torch", "sam")
    require("segment_anything", "sam")
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    prompt_dim = 256
    grid = spec.image_size // spec.patch_size
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=spec.depth, embed_dim=spec.embed_dim, img_size=spec.image_size, mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=spec.num_heads,
            patch_size=spec.patch_size, qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=spec.global_attn_indexes, window_size=spec.window_size, out_chans=prompt_dim),
        prompt_encoder=PromptEncoder(embed_dim=prompt_dim, image_embedding_size=(grid, grid),
                                     input_image_size=(spec.image_size, spec.image_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(num_multimask_outputs=3, transformer=TwoWayTransformer(
            depth=2, embedding_dim=prompt_dim, mlp_dim=2048, num_heads=8), transformer_dim=prompt_dim,
            iou_head_depth=3, iou_head_hidden_dim=256),
        pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])
    return sam.eval()


def is_sam2(state: Mapping) -> bool:
    """A SAM 2 state dict (Hiera trunk) rather than SAM's ViT encoder."""
    return any(k.startswith("image_encoder.trunk.") for k in state)


def load_sam(checkpoint: str | os.PathLike, model_type: str | None = None, device: str = "cpu", state=None):
    """SAM from the user's checkpoint; ``model_type`` (vit_h/vit_l/vit_b), when given, must match
    the file. Returns ``(model, spec)``. ``state``: the file's state dict when already read."""
    state = read_checkpoint(checkpoint) if state is None else state
    spec = spec_from_state_dict(state, f"--sam-checkpoint {checkpoint}")
    if model_type not in (None, "auto") and model_type != spec.name:
        raise UserError(f"--sam-checkpoint {checkpoint}: holds a {spec.name} model ({spec.embed_dim}-wide, "
                        f"{spec.depth} blocks), not --sam-model {model_type}")
    sam = build_sam(spec)
    missing, unexpected = sam.load_state_dict(state, strict=False)
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(f"--sam-checkpoint {checkpoint}: does not fit SAM {spec.name} ({what})")
    return sam.to(device), spec


# ---- automatic masks ----------------------------------------------------------------------------

@dataclass(frozen=True)
class SamMaskConfig:
    """SAM's automatic generator as Trace3D runs it (stability 0.9 instead of SAM's 0.95)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.9  # Trace3D
    box_nms_thresh: float = 0.7
    absorb_cover: float = 0.9  # a mask is absorbed when a later one covers more than this share of it
    min_area: int | None = None  # None: Trace3D's 96 px at 1 MP, scaled to the image (patches.scaled_min_area)


def absorb_masks(masks: np.ndarray, cover: float = 0.9) -> np.ndarray:  # masks [M, H, W] -> [K] kept
    """Indices of the masks kept, in order, when mask ``i`` is absorbed by a later kept mask ``j``
    covering more than ``cover`` of it (``|i & j| > cover |i|``). With the stack largest first, a
    later mask is smaller, so this drops a mask that a tighter one nearly equals (SAM's near-duplicate
    outputs, which would otherwise leave sliver patches along their boundaries)."""
    m = masks.reshape(len(masks), -1)
    area = m.sum(1).astype(np.float64)
    keep: list[int] = []
    for i in range(len(m) - 1, -1, -1):  # from the last: "later kept" masks are known when i is decided
        if keep:
            inter = (m[keep] & m[i]).sum(1)
            if (inter > cover * area[i]).any():
                continue
        keep.append(i)
    return np.array(sorted(keep), dtype=np.int64)


def to_uint8(image: np.ndarray) -> np.ndarray:  # [H, W, 3] float in [0, 1] or uint8 -> uint8
    if image.dtype == np.uint8:
        return image
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


class SamMaskGenerator:
    """``generate(image)`` -> ``(masks [M, H, W] bool largest first, scores [M])`` (predicted IoU)."""

    def __init__(self, model, config: SamMaskConfig = SamMaskConfig(), name: str = "sam"):
        require("segment_anything", "sam")
        from segment_anything import SamAutomaticMaskGenerator

        self.config, self.name, self.model = config, name, model
        self._amg = SamAutomaticMaskGenerator(
            model, points_per_side=config.points_per_side, points_per_batch=config.points_per_batch,
            pred_iou_thresh=config.pred_iou_thresh, stability_score_thresh=config.stability_score_thresh,
            box_nms_thresh=config.box_nms_thresh, output_mode="binary_mask")

    def generate(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        records = self._amg.generate(to_uint8(image))
        return postprocess(image.shape[0], image.shape[1], [r["segmentation"] for r in records],
                           [r["predicted_iou"] for r in records], self.config)


def postprocess(height: int, width: int, masks: list, scores: list, config: SamMaskConfig):
    """Raw generator output -> the stack: min area, largest first, near-duplicates absorbed."""
    from ..patches import scaled_min_area

    if not masks:
        return np.zeros((0, height, width), bool), np.zeros(0, np.float32)
    stack = np.stack([np.asarray(m, bool) for m in masks])
    score = np.asarray(scores, np.float32)
    min_area = config.min_area if config.min_area is not None else scaled_min_area(height, width)
    area = stack.reshape(len(stack), -1).sum(1)
    order = [k for k in np.argsort(-area, kind="stable") if area[k] > min_area]
    stack, score = stack[order], score[order]
    keep = absorb_masks(stack, config.absorb_cover)
    return stack[keep], score[keep]


class SamPointPredictor:
    """``predict(image, points [P, 2] (x, y), labels [P])`` -> ``(mask [H, W] bool, predicted IoU)``.

    One click is ambiguous (part, object, group): SAM's three outputs are asked for and the one of
    highest predicted IoU kept; with several prompts a single output is asked for, as SAM advises.
    The image embedding is cached for the last image."""

    def __init__(self, model):
        require("segment_anything", "sam")
        from segment_anything import SamPredictor

        self._predictor = SamPredictor(model)
        self._image_id = None

    def predict(self, image: np.ndarray, points: np.ndarray, labels: np.ndarray, key=None) -> tuple[np.ndarray, float]:
        """``key`` names the image (e.g. its view index) so its embedding is reused; without it the
        image's shape and a sample of its pixels are the key."""
        if key is None:
            key = (image.shape, np.asarray(image).ravel()[:: max(1, image.size // 4099)].tobytes())
        if key != self._image_id:
            self._predictor.set_image(to_uint8(image))
            self._image_id = key
        points = np.asarray(points, np.float32).reshape(-1, 2) + 0.5  # pixel centres
        masks, iou, _ = self._predictor.predict(point_coords=points, point_labels=np.asarray(labels, np.int32),
                                                multimask_output=len(points) == 1)
        best = int(np.argmax(iou))
        return masks[best].astype(bool), float(iou[best])


# ---- time estimate -------------------------------------------------------------------------------

def count_flops(spec: SamSpec, points_per_side: int = 32, points_per_batch: int = 64) -> tuple[float, float]:
    """(encoder FLOPs per image, decoder FLOPs per image for ``points_per_side``^2 prompts), counted by
    torch's FlopCounterMode on a meta-device model: nothing is allocated or computed."""
    torch = require("torch", "sam")
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        sam = build_sam(spec)
        image = torch.zeros(1, 3, spec.image_size, spec.image_size)
        with FlopCounterMode(display=False) as enc:
            emb = sam.image_encoder(image)
        batch = min(points_per_batch, points_per_side ** 2)
        with FlopCounterMode(display=False) as dec:
            grid = spec.image_size // spec.patch_size  # the prompt encoder itself is negligible (and uses
            sparse = torch.zeros(batch, 2, 256)  # boolean indexing, which meta tensors cannot run)
            dense = torch.zeros(batch, 256, grid, grid)
            sam.mask_decoder(image_embeddings=emb, image_pe=sam.prompt_encoder.get_dense_pe(),
                             sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True)
    batches = points_per_side ** 2 / batch
    return float(enc.get_total_flops()), float(dec.get_total_flops()) * batches


_RATE: float | None = None


def machine_flops_per_second() -> float:
    """This machine's float32 matmul rate (GFLOP-sized products for ~0.3 s), measured once."""
    global _RATE
    if _RATE is None:
        torch = require("torch", "sam")
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        a @ b
        n, t0 = 0, time.perf_counter()
        while n == 0 or time.perf_counter() - t0 < 0.3:  # at least one product: a preempted first check
            a @ b                                         # must not leave a rate of 0
            n += 1
        _RATE = 2 * 1024 ** 3 * n / (time.perf_counter() - t0)
    return _RATE


def postprocess_seconds_per_prompt(spec: SamSpec, height: int, width: int, keep_share: float = 0.3,
                                   probe_prompts: int = 8) -> float:
    """Measured seconds per prompt of what SAM's generator does outside the network: its three
    low-resolution masks upsampled to the encoder's size and then the image's, stability scores,
    and for the ``keep_share`` that pass the filters, boxes and run-length encoding. FLOPs miss this
    memory-bound work, which dominates small encoders (docs/benchmarks.md, "Choices made by
    measurement")."""
    torch = require("torch", "sam")
    import torch.nn.functional as F

    require("segment_anything", "sam")
    from segment_anything.utils.amg import batched_mask_to_box, calculate_stability_score, mask_to_rle_pytorch

    low = 4 * spec.image_size // spec.patch_size
    scale = spec.image_size / max(height, width)
    ih, iw = int(height * scale + 0.5), int(width * scale + 0.5)
    masks = torch.randn(probe_prompts, 3, low, low)
    t0 = time.perf_counter()
    up = F.interpolate(masks, (spec.image_size, spec.image_size), mode="bilinear", align_corners=False)
    up = F.interpolate(up[..., :ih, :iw], (height, width), mode="bilinear", align_corners=False).flatten(0, 1)
    calculate_stability_score(up, 0.0, 1.0)
    kept = up[: max(1, int(keep_share * len(up)))] > 0
    batched_mask_to_box(kept)
    mask_to_rle_pytorch(kept)
    return (time.perf_counter() - t0) / probe_prompts


@dataclass
class TimeEstimate:
    seconds_per_view: float
    encoder_gflops: float
    decoder_gflops: float
    machine_gflops_per_s: float
    postprocess_seconds: float  # per view, measured (see postprocess_seconds_per_prompt)

    def total(self, views: int) -> float:
        return self.seconds_per_view * views


def estimate_time(spec: SamSpec, config: SamMaskConfig = SamMaskConfig(), efficiency: float = 0.5,
                  image_size: tuple[int, int] = (1080, 1920)) -> TimeEstimate:
    """Seconds per view of automatic masks on this CPU: the networks' FLOPs (counted) over the measured
    matmul rate at ``efficiency`` of it, plus the measured per-prompt post-processing at the views'
    ``image_size`` (height, width)."""
    enc, dec = count_flops(spec, config.points_per_side, config.points_per_batch)
    rate = machine_flops_per_second()
    post = postprocess_seconds_per_prompt(spec, *image_size) * config.points_per_side ** 2
    return TimeEstimate((enc + dec) / (rate * efficiency) + post, enc / 1e9, dec / 1e9, rate / 1e9, post)


def with_points(config: SamMaskConfig, points_per_side: int) -> SamMaskConfig:
    return replace(config, points_per_side=points_per_side)

"""CLIP embeddings (``open_clip_torch``): per-mask image embeddings and text embeddings.

Model: an open_clip architecture name (``ViT-B-32``...) or a model-config JSON file (a custom or
smaller architecture, registered with ``open_clip.add_model_config``). Weights: an explicit file
(``--clip-checkpoint``), else a pretrained tag from the user's open_clip / Hugging Face cache
(``--clip-pretrained``); nothing is downloaded when the cache lacks it and the network is down, and
that is a one-line error saying where weights come from.

A mask's embedding is CLIP's image embedding of the mask's bounding-box crop, padded to a square,
with the pixels outside the mask set to CLIP's mean colour (0 after normalisation) so the
background does not speak for the object -- LangSplat's and the Feature Solver's recipe.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import require

WHERE_WEIGHTS_COME_FROM = ("CLIP weights are an open_clip pretrained tag (open_clip.list_pretrained(), fetched once "
                           "into ~/.cache/huggingface) or a checkpoint file given with --clip-checkpoint")
DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"


@dataclass(frozen=True)
class ClipOptions:
    """``--clip-model``, ``--clip-pretrained``, ``--clip-checkpoint`` (a file wins over a tag)."""

    model: str = DEFAULT_MODEL
    pretrained: str | None = DEFAULT_PRETRAINED
    checkpoint: Path | None = None
    device: str = "cpu"
    batch: int = 32  # mask crops per forward pass

    def to_json(self) -> dict:
        return {"model": self.model, "pretrained": self.pretrained,
                "checkpoint": None if self.checkpoint is None else str(Path(self.checkpoint).resolve())}


def _model_name(model: str) -> str:
    """An architecture name; a ``.json`` model config is registered with open_clip first."""
    open_clip = require("open_clip", "clip")
    if model.endswith(".json"):
        path = Path(model)
        if not path.is_file():
            raise UserError(f"--clip-model {model}: no such model-config file")
        open_clip.add_model_config(path)
        return path.stem
    if model not in open_clip.list_models():
        some = ", ".join(m for m in open_clip.list_models() if m.startswith("ViT-B"))
        raise UserError(f"--clip-model {model}: not an open_clip architecture (e.g. {some}) nor a config .json")
    return model


def load_clip(options: ClipOptions):
    """``(model, tokenizer, name)`` of ``options``, in eval mode on ``options.device``."""
    require("torchvision", "clip")
    open_clip = require("open_clip", "clip")
    name = _model_name(options.model)
    if options.checkpoint is not None:
        path = Path(options.checkpoint)
        if not path.is_file():
            raise UserError(f"--clip-checkpoint {path}: no such file; {WHERE_WEIGHTS_COME_FROM}")
        pretrained, what = str(path), f"--clip-checkpoint {path}"
    elif options.pretrained:
        known = {tag for arch, tag in open_clip.list_pretrained() if arch == name}
        if known and options.pretrained not in known:
            raise UserError(f"--clip-pretrained {options.pretrained}: not a tag of {name} "
                            f"(tags: {', '.join(sorted(known))})")
        what = f"--clip-model {name} --clip-pretrained {options.pretrained}"
        pretrained = _cached_weights(name, options.pretrained)
        if pretrained is None:
            if not _reachable():
                raise UserError(f"{what}: weights not in the local cache and the network is unreachable; "
                                f"{WHERE_WEIGHTS_COME_FROM}")
            pretrained = options.pretrained  # open_clip downloads it into the cache
    else:
        raise UserError(f"--clip-model {name}: give --clip-checkpoint FILE or --clip-pretrained TAG "
                        "(random weights make meaningless text queries)")
    extra = _tensors_only(open_clip, pretrained)
    try:
        model = open_clip.create_model(name, pretrained=pretrained, device=options.device, require_pretrained=True,
                                       **extra)
    except Exception as exc:  # torch, safetensors, struct and hub errors alike: the file is the problem
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        if "weights only load failed" in first.lower():
            from ..io.safe_load import PICKLE_REFUSED

            first = PICKLE_REFUSED
        raise UserError(f"{what}: cannot load the weights ({first}); {WHERE_WEIGHTS_COME_FROM}") from None
    return model.eval(), open_clip.get_tokenizer(name), name


def _tensors_only(open_clip, pretrained: str) -> dict:
    """Weights are loaded as tensors only (``weights_only=True``), never by running a pickle: through
    open_clip's own option where it has one, else by reading a local file that way first."""
    import inspect

    if "weights_only" in inspect.signature(open_clip.create_model).parameters:
        return {"weights_only": True}
    if Path(pretrained).is_file() and not pretrained.endswith(".safetensors"):
        from ..io.safe_load import load_torch

        load_torch(pretrained)  # an older open_clip: a pickle is refused here, before it loads the file
    return {}


def _cached_weights(name: str, tag: str) -> str | None:
    """The file of pretrained ``tag`` in the user's Hugging Face cache, if it is there."""
    open_clip = require("open_clip", "clip")
    hub = open_clip.get_pretrained_cfg(name, tag).get("hf_hub", "")
    if not hub:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    repo, filename = os.path.split(hub)
    for candidate in ("open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo, candidate)
        if isinstance(found, str):
            return found
    return None


def _reachable(host: str = "huggingface.co") -> bool:
    import socket

    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


class ClipEmbedder:
    """``embed_masks(image, masks)`` -> [M, D] and ``embed_text(texts)`` -> [T, D], rows unit length."""

    def __init__(self, model, tokenizer, name: str = "clip", batch: int = 32):
        torch = require("torch", "clip")
        open_clip = require("open_clip", "clip")
        self.model, self.tokenizer, self.name, self.batch = model, tokenizer, name, batch
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.size = int(size if np.isscalar(size) else size[0])
        self.mean = torch.tensor(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=torch.float32)
        self.std = torch.tensor(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=torch.float32)
        self.device = next(model.parameters()).device

    @classmethod
    def load(cls, options: ClipOptions) -> "ClipEmbedder":
        model, tokenizer, name = load_clip(options)
        return cls(model, tokenizer, name, options.batch)

    @property
    def dim(self) -> int:
        return int(self.embed_text(["object"]).shape[1])

    def crops(self, image: np.ndarray, masks: np.ndarray):  # -> [M, 3, S, S] normalised
        """Each mask's bounding box, outside pixels at CLIP's mean, padded square, resized to S."""
        torch = require("torch", "clip")
        import torch.nn.functional as F

        img = (torch.as_tensor(np.asarray(image, np.float32)) - self.mean) / self.std  # [H, W, 3]
        out = []
        for m in masks:
            ys, xs = np.nonzero(m)
            if len(ys) == 0:
                out.append(torch.zeros(3, self.size, self.size))
                continue
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            crop = img[y0:y1, x0:x1] * torch.as_tensor(m[y0:y1, x0:x1, None], dtype=torch.float32)
            h, w = crop.shape[:2]
            side = max(h, w)
            square = torch.zeros(side, side, 3)
            square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = crop
            out.append(F.interpolate(square.permute(2, 0, 1)[None], size=(self.size, self.size), mode="bilinear",
                                     align_corners=False, antialias=side > self.size)[0])
        return torch.stack(out) if out else torch.zeros(0, 3, self.size, self.size)

    def embed_masks(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:  # -> [M, D] float32
        torch = require("torch", "clip")
        feats = []
        with torch.no_grad():
            for s in range(0, len(masks), self.batch):
                x = self.crops(image, masks[s:s + self.batch]).to(self.device)
                feats.append(self.model.encode_image(x, normalize=True).float().cpu())
        if not feats:
            return np.zeros((0, self.dim), np.float32)
        return torch.cat(feats).numpy()

    def embed_text(self, texts: list[str]) -> np.ndarray:  # -> [T, D] float32
        torch = require("torch", "clip")
        with torch.no_grad():
            tokens = self.tokenizer(list(texts)).to(self.device)
            return self.model.encode_text(tokens, normalize=True).float().cpu().numpy()


def save_model_config(path: str | os.PathLike, embed_dim: int, vision: dict, text: dict) -> Path:
    """Write an open_clip model-config JSON (``--clip-model FILE.json``) for a custom architecture."""
    import json

    path = Path(path)
    path.write_text(json.dumps({"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text}))
    return path


def add_arguments(parser) -> None:
    """``--clip-model`` and its weights (``gs-core prepare``)."""
    parser.add_argument("--clip-model", help="open_clip architecture (e.g. ViT-B-32) or a model-config .json: adds "
                        "CLIP features for gs-core query --text")
    parser.add_argument("--clip-pretrained", default=DEFAULT_PRETRAINED,
                        help="open_clip pretrained tag, read from the local cache (default %(default)s)")
    parser.add_argument("--clip-checkpoint", type=Path, help="CLIP weights file (instead of a pretrained tag)")


def options_from_args(args) -> ClipOptions | None:
    if getattr(args, "clip_model", None) is None:
        if getattr(args, "clip_checkpoint", None) is not None:
            raise UserError("--clip-checkpoint needs --clip-model (the architecture the weights are for)")
        return None
    return ClipOptions(args.clip_model, args.clip_pretrained, args.clip_checkpoint, args.device)

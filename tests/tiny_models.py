"""Tiny, randomly initialised models of the real architectures, saved as checkpoint files the way
users have them (used by tests/models and tests/pipeline). Callers importorskip their libraries."""

from __future__ import annotations

from pathlib import Path

# a SAM whose image encoder is the real ImageEncoderViT, 32 wide and 2 blocks deep, at 128 px (the
# released vit_b is 90M parameters at 1024 px)
TINY_SAM = dict(embed_dim=32, depth=2, num_heads=2, global_attn_indexes=(1,), image_size=128, patch_size=16,
                window_size=4)
# an open_clip CLIP (real VisionTransformer and text Transformer) 64 wide, 2 layers, 32 px, 32-d embeddings
TINY_CLIP = dict(embed_dim=32, vision={"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
                 text={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2})


def make_tiny_sam(path: Path) -> Path:
    import torch

    from gs_core.models.sam import SamSpec, build_sam

    torch.manual_seed(0)
    torch.save(build_sam(SamSpec(**TINY_SAM)).state_dict(), path)
    return path


def make_tiny_clip(folder: Path) -> tuple[Path, Path]:
    """(model-config JSON, weights file) of a tiny CLIP."""
    import open_clip
    import torch

    from gs_core.models.clip import save_model_config

    config = save_model_config(folder / "tiny-clip.json", TINY_CLIP["embed_dim"], TINY_CLIP["vision"],
                               TINY_CLIP["text"])
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    weights = folder / "tiny-clip.pt"
    torch.save(open_clip.create_model("tiny-clip", pretrained=None).state_dict(), weights)
    return config, weights

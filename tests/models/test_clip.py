"""open_clip loading (model-config file + weights file, pretrained tags from the cache) and the real
image and text towers on a tiny random CLIP."""

from __future__ import annotations

import numpy as np
import pytest

from gs_core.errors import UserError


def test_tiny_clip_embeds_masks_and_text(tiny_clip):
    from gs_core.models.clip import ClipEmbedder, ClipOptions

    config, weights = tiny_clip
    emb = ClipEmbedder.load(ClipOptions(str(config), None, weights))
    assert emb.size == 32 and emb.dim == 32
    rng = np.random.default_rng(0)
    image = rng.random((48, 64, 3)).astype(np.float32)
    masks = np.zeros((3, 48, 64), bool)
    masks[0, 5:20, 5:30] = True
    masks[1, 25:45, 30:60] = True  # masks[2] empty: a zero crop, still a row
    f = emb.embed_masks(image, masks)
    assert f.shape == (3, 32) and np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)
    assert not np.allclose(f[0], f[1])
    # the background is masked out: changing pixels outside mask 0 does not change its embedding
    other = image.copy()
    other[~masks[0]] = 0.0
    np.testing.assert_allclose(emb.embed_masks(other, masks[:1]), f[:1], atol=1e-5)
    t = emb.embed_text(["red chair", "object"])
    assert t.shape == (2, 32) and not np.allclose(t[0], t[1])


def test_weights_are_the_files(tiny_clip, tmp_path):
    import torch

    from gs_core.models.clip import ClipOptions, load_clip

    config, weights = tiny_clip
    model, _, name = load_clip(ClipOptions(str(config), None, weights))
    saved = torch.load(weights, weights_only=True)
    assert name == "tiny-clip" and all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_clip_errors_are_one_line(tiny_clip, tmp_path, monkeypatch):
    from gs_core.models import clip
    from gs_core.models.clip import ClipOptions, load_clip

    config, weights = tiny_clip

    def fails(options, *needles):
        with pytest.raises(UserError) as exc:
            load_clip(options)
        msg = str(exc.value)
        assert "\n" not in msg, msg
        for n in needles:
            assert n in msg, msg

    fails(ClipOptions("ViT-Nope-1", None, weights), "--clip-model ViT-Nope-1", "not an open_clip architecture")
    fails(ClipOptions(str(tmp_path / "none.json"), None, weights), "no such model-config file")
    fails(ClipOptions(str(config), None, tmp_path / "none.pt"), "--clip-checkpoint", "no such file", "open_clip")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    fails(ClipOptions(str(config), None, junk), "--clip-checkpoint", "cannot load the weights")
    fails(ClipOptions(str(config), None, None), "give --clip-checkpoint FILE or --clip-pretrained TAG")
    fails(ClipOptions("ViT-B-32", "not-a-tag", None), "not a tag of ViT-B-32")
    # a known tag that is not in the cache, with the network down: no download attempt, one line
    monkeypatch.setattr(clip, "_cached_weights", lambda name, tag: None)
    monkeypatch.setattr(clip, "_reachable", lambda host="huggingface.co": False)
    fails(ClipOptions("ViT-B-32", "laion2b_s34b_b79k", None), "not in the local cache", "--clip-checkpoint")


def test_a_cached_tag_loads_from_the_cache(tiny_clip, monkeypatch):
    """A pretrained tag resolves to the file in the Hugging Face cache (here: the tiny weights)."""
    from gs_core.models import clip
    from gs_core.models.clip import ClipOptions, load_clip

    config, weights = tiny_clip
    monkeypatch.setattr(clip, "_cached_weights", lambda name, tag: str(weights))
    monkeypatch.setattr(clip.require("open_clip", "clip"), "list_pretrained", lambda: [("tiny-clip", "mine")])
    model, _, name = load_clip(ClipOptions(str(config), "mine", None))
    assert name == "tiny-clip"

"""Open-vocabulary text queries: CLIP embeddings of each view's masks, painted per pixel, lifted onto
the Gaussians in closed form, and scored against a text by relevancy (issue 12 item 4).

* per mask: the embedder's image embedding of the mask's crop (:mod:`gs_core.models.clip`);
* per pixel: the mean embedding of the masks covering it (a pixel on a chair's leg carries the leg
  and the chair), computed per instance patch (pixels covered by the same masks, Trace3D Sec. 3.2)
  so painting costs one gather; uncovered pixels carry zeros;
* per Gaussian: ``x_g = sum_v sum_p w^k b_p / sum_v sum_p w^k`` (linear-inverse paper Eq. 7/24, with
  opacity polarisation Eq. 23), :func:`gs_core.lifting.lift_features`, streamed over views. One more
  channel, 1 on covered pixels, lifts each Gaussian's covered share, so uncovered pixels only scale
  a feature, never turn it;
* query: LERF's relevancy (as LangSplat computes it), ``min_k softmax(tau [f.q, f.n_k])_0`` against the
  canonical negatives "object", "things", "stuff", "texture" with ``tau = 10``, thresholded at the
  valley below the highest significant mode of the scores (:func:`gs_core.lifting.auto_threshold`
  with ``side="top"``: unrelated objects make several bumps below, so "the first valley above the
  largest peak" stops inside them; measured on the benchmark's text stand-in).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

CANONICAL_NEGATIVES = ("object", "things", "stuff", "texture")
TEMPERATURE = 10.0  # LERF / LangSplat softmax scale on cosine similarities
MIN_RELEVANCY = 0.5  # the automatic threshold never goes below: a selected Gaussian beats every canonical negative
FEATURES_FILE, META_FILE = "clip_features.npy", "clip.json"


def paint(masks: np.ndarray, embeddings: np.ndarray) -> np.ndarray:  # [M, H, W], [M, D] -> [H, W, D + 1]
    """Per pixel the mean embedding of the masks covering it, then a coverage channel (1 covered,
    0 not). Computed per patch of identical mask membership."""
    from .patches import make_patches

    M, H, W = masks.shape
    D = embeddings.shape[1]
    out = np.zeros((H, W, D + 1), np.float32)
    if M == 0:
        return out
    p = make_patches(np.asarray(masks, bool), min_area=0)
    member = p.membership.astype(np.float32)  # [p, M']
    emb = np.asarray(embeddings, np.float32)[p.kept_masks]  # [M', D]
    feats = member @ emb / np.maximum(member.sum(1, keepdims=True), 1)  # [p, D]
    table = np.concatenate([feats, np.ones((len(feats), 1), np.float32)], axis=1)
    covered = p.patch_map >= 0
    out[covered] = table[p.patch_map[covered]]
    return out


@dataclass
class LanguageField:
    """Per-Gaussian lifted embeddings and what made them (loaded from / saved to a work folder)."""

    features: np.ndarray  # [N, D] float32 (float16 on disk): unit rows where seen, 0 where not
    coverage: np.ndarray  # [N] float32: share of the Gaussian's lifted weight from covered pixels
    meta: dict = field(default_factory=dict)  # model, pretrained, checkpoint, dim, views

    @property
    def seen(self) -> np.ndarray:  # [N] bool
        return self.coverage > 0

    def save(self, work: str | os.PathLike) -> None:
        from .io.atomic import atomic_write, write_text

        work = Path(work)
        with atomic_write(work / FEATURES_FILE, "wb") as fh:
            np.save(fh, np.concatenate([self.features, self.coverage[:, None]], axis=1).astype(np.float16))
        write_text(work / META_FILE, json.dumps(self.meta, indent=1))

    @classmethod
    def load(cls, work: str | os.PathLike) -> "LanguageField":
        work = Path(work)
        path = work / FEATURES_FILE
        if not path.is_file():
            raise UserError(f"{work}: no CLIP features ({FEATURES_FILE}); run gs-core prepare with --clip-model")
        from .io.safe_load import load_json, load_npy

        hint = "run gs-core prepare --force with --clip-model"
        both = load_npy(path, hint)
        if both.ndim != 2 or both.shape[1] < 2 or not np.issubdtype(both.dtype, np.floating):
            raise UserError(f"{path}: expected a float array [N, D + 1], got {both.dtype} {both.shape}; {hint}")
        meta = load_json(work / META_FILE, dict, hint)
        both = both.astype(np.float32)
        return cls(both[:, :-1], both[:, -1], meta)


def lift_embeddings(scene, cameras, stacks: Sequence[np.ndarray], embed_view: Callable[[int, np.ndarray], np.ndarray],
                    *, backend: str = "auto", progress: Callable[[str, int, int], None] | None = None,
                    config=None, name: str = "?") -> LanguageField:
    """Embed every view's masks (``embed_view(k, masks [M, H, W]) -> [M, D]``, e.g.
    ``lambda k, m: clip.embed_masks(images(k), m)``), paint them and lift them onto ``scene``'s
    Gaussians (Eq. 7/24)."""
    from .engine import project
    from .lifting import FeatureLiftConfig, lift_features

    say = progress or (lambda stage, done, total: None)
    config = config or FeatureLiftConfig(backend=backend)
    gaussians = scene.to_gaussians()

    def views():
        for k, (cam, masks) in enumerate(zip(cameras, stacks)):
            say("CLIP features", k, len(cameras))
            if len(masks) == 0:
                continue
            emb = embed_view(k, masks)
            yield project(gaussians, cam), torch.from_numpy(paint(masks, emb))
        say("CLIP features", len(cameras), len(cameras))

    with torch.no_grad():
        lifted = lift_features(views(), config).features.numpy()  # [N, D + 1]
    coverage = lifted[:, -1].clip(0, 1)
    feats = lifted[:, :-1]
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    feats = np.where(norm > 0, feats / np.maximum(norm, 1e-12), 0).astype(np.float32)
    return LanguageField(feats, coverage.astype(np.float32), {"embedder": name, "dim": int(feats.shape[1]),
                                                              "views": len(cameras)})


def relevancy(features: np.ndarray, query: np.ndarray, negatives: np.ndarray,  # [N, D], [D], [K, D] -> [N]
              temperature: float = TEMPERATURE) -> np.ndarray:
    """LERF's relevancy: ``min_k exp(t f.q) / (exp(t f.q) + exp(t f.n_k))`` = ``min_k sigmoid(t (f.q - f.n_k))``."""
    sq = features @ query  # [N]
    sn = features @ negatives.T  # [N, K]
    return (1.0 / (1.0 + np.exp(-temperature * (sq[:, None] - sn)))).min(axis=1).astype(np.float32)


@dataclass
class TextQuery:
    score: np.ndarray  # [N] float32 relevancy in [0, 1] (0 where never seen)
    selected: np.ndarray  # [N] bool
    threshold: float
    method: str  # how the threshold was found: valley | otsu | constant | floor (MIN_RELEVANCY) | given


_EMBEDDERS: dict[str, object] = {}


def embedder_for(meta: dict, device: str = "cpu"):
    """The text embedder that made a work folder's features (kept loaded between queries)."""
    from .models.clip import ClipEmbedder, ClipOptions

    key = json.dumps([meta.get("model"), meta.get("pretrained"), meta.get("checkpoint"), device])
    if key not in _EMBEDDERS:
        if not meta.get("model"):
            raise UserError("the work folder's CLIP features name no model (made by a stand-in?); pass an embedder")
        ckpt = meta.get("checkpoint")
        _EMBEDDERS[key] = ClipEmbedder.load(ClipOptions(meta["model"], meta.get("pretrained"),
                                                        Path(ckpt) if ckpt else None, device))
    return _EMBEDDERS[key]


def text_query(source, text: str, *, embedder=None, negatives: Sequence[str] = CANONICAL_NEGATIVES,
               threshold: float | None = None, temperature: float = TEMPERATURE) -> TextQuery:
    """Score every Gaussian against ``text`` and select the relevant ones.

    ``source``: a work folder (path) prepared with ``--clip-model``, or a loaded :class:`LanguageField`.
    ``embedder``: anything with ``embed_text``; default: the CLIP model named in the work folder.
    ``threshold``: None = automatic (valley below the top mode, Otsu fallback; at least
    :data:`MIN_RELEVANCY`, so a text matching nothing selects little rather than the best bump).
    """
    from .lifting import ThresholdConfig, auto_threshold

    if not text or not text.strip():
        raise UserError("--text: empty query")
    field_ = source if isinstance(source, LanguageField) else LanguageField.load(source)
    embedder = embedder or embedder_for(field_.meta)
    emb = np.asarray(embedder.embed_text([text, *negatives]), np.float32)
    if emb.shape[1] != field_.features.shape[1]:
        raise UserError(f"--text: the text embedder gives {emb.shape[1]}-d vectors, the work folder's features are "
                        f"{field_.features.shape[1]}-d (made by another model)")
    score = relevancy(field_.features, emb[0], emb[1:], temperature)
    seen = field_.seen
    score = np.where(seen, score, 0.0).astype(np.float32)
    if threshold is None:
        if seen.sum() < 2:
            raise UserError("--text: fewer than two Gaussians carry CLIP features")
        t = auto_threshold(score[seen], ThresholdConfig(side="top"))
        value, method = max(t.value, MIN_RELEVANCY), t.method if t.value >= MIN_RELEVANCY else "floor"
    else:
        value, method = float(threshold), "given"
    return TextQuery(score, seen & (score > value), value, method)


def prepare_language(work_root, scene, cameras, stacks, images: Callable[[int], np.ndarray], options,
                     progress=None, backend: str = "auto") -> dict:
    """``prepare --clip-model``: embed the views' masks with the user's CLIP, lift onto the work
    folder's (refined) scene, save ``clip_features.npy`` and ``clip.json``; returns the meta."""
    import time

    from .models.clip import ClipEmbedder

    t0 = time.perf_counter()
    embedder = ClipEmbedder.load(options)
    field_ = lift_embeddings(scene, cameras, stacks, lambda k, m: embedder.embed_masks(images(k), m),
                             backend=backend, progress=progress, name=embedder.name)
    field_.meta.update(options.to_json(), seconds=time.perf_counter() - t0)
    field_.save(work_root)
    return field_.meta

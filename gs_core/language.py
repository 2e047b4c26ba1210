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
INSTANCES_FILE = "clip_instances.npy"  # [I, D + 1]: one embedding per consistent instance, then its weight
TEXT_MODES = ("instances", "gaussians")  # what a text query scores: consistent instances, or lifted pixels
INSTANCE_RELATIVE = 0.5  # with --text-on instances, a relevancy logit above this share of the best one's is selected
DEFAULT_TEXT_MODE = "instances"  # chosen by measurement (docs/benchmarks.md, issue 26)


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


def mask_instance_iou(view_map: np.ndarray, masks: np.ndarray,  # [H, W] int, [M, H, W] bool -> [M, I]
                      num_instances: int) -> np.ndarray:
    """IoU of each mask with each consistent instance's region of the view (``view_map == i``; ids
    below 0 are no instance; ids at or above ``num_instances`` are ignored)."""
    ids = np.asarray(view_map).ravel()
    valid = (ids >= 0) & (ids < num_instances)
    area = np.bincount(ids[valid], minlength=num_instances).astype(np.float64)  # [I]
    M = len(masks)
    out = np.zeros((M, num_instances), np.float32)
    for m in range(M):
        mask = np.asarray(masks[m], bool).ravel()
        inside = ids[mask & valid]
        if inside.size == 0:
            continue
        overlap = np.bincount(inside, minlength=num_instances).astype(np.float64)
        union = mask.sum() + area - overlap
        out[m] = np.where(union > 0, overlap / np.maximum(union, 1), 0.0)
    return out


def instance_embeddings(view_maps: Sequence[np.ndarray], stacks: Sequence[np.ndarray],
                        embeddings: Sequence[np.ndarray], num_instances: int) -> tuple[np.ndarray, np.ndarray]:
    """One embedding per consistent instance: the mean of the embeddings of the masks associated
    with it across views, each weighted by the mask's IoU with the instance's region of its view.

    ``view_maps``: per view [H, W] int consistent instance ids (-1 none); ``stacks``: per view
    [M_v, H, W] bool masks; ``embeddings``: per view [M_v, D]. Returns ``features`` [I, D] (unit
    rows, 0 for an instance no mask overlaps) and ``weight`` [I] (the summed IoUs).

    A mask that merged two objects overlaps each of them by only part of its area, so it weighs less
    on either than the masks that outline one of them; painted per pixel (:func:`paint`) it would
    mix both objects' embeddings into every pixel it covers."""
    dim = next((e.shape[1] for e in embeddings if len(e)), 0)
    feats, weight = np.zeros((num_instances, dim), np.float64), np.zeros(num_instances, np.float64)
    for view_map, masks, emb in zip(view_maps, stacks, embeddings, strict=True):
        if len(masks) == 0:
            continue
        w = mask_instance_iou(view_map, masks, num_instances).astype(np.float64)  # [M, I]
        feats += w.T @ np.asarray(emb, np.float64)
        weight += w.sum(0)
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    feats = np.where(norm > 0, feats / np.maximum(norm, 1e-12), 0.0)
    return feats.astype(np.float32), weight.astype(np.float32)


@dataclass
class InstanceField:
    """Per consistent instance embeddings and the per-Gaussian ids they belong to."""

    features: np.ndarray  # [I, D] float32 unit rows (0: no mask associated)
    weight: np.ndarray  # [I] float32 summed association weight (IoUs)
    labels: np.ndarray  # [N] int instance id per Gaussian, -1 none
    meta: dict = field(default_factory=dict)
    lifted: LanguageField | None = None  # per-Gaussian features: they score the Gaussians of no instance

    def save(self, work: str | os.PathLike) -> None:
        from .io.atomic import atomic_write

        with atomic_write(Path(work) / INSTANCES_FILE, "wb") as fh:
            np.save(fh, np.concatenate([self.features, self.weight[:, None]], axis=1).astype(np.float32))

    @classmethod
    def load(cls, work: str | os.PathLike) -> "InstanceField":
        """The work folder's per-instance embeddings, ``labels.npy`` and lifted features."""
        from .io.safe_load import load_npy

        work = Path(work)
        path, hint = work / INSTANCES_FILE, "run gs-core prepare --force with --clip-model"
        if not path.is_file():
            raise UserError(f"{work}: no per-instance CLIP embeddings ({INSTANCES_FILE}); {hint}")
        both = load_npy(path, hint)
        if both.ndim != 2 or both.shape[1] < 2 or not np.issubdtype(both.dtype, np.floating):
            raise UserError(f"{path}: expected a float array [I, D + 1], got {both.dtype} {both.shape}; {hint}")
        labels = load_npy(work / "labels.npy", "run gs-core prepare again")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.max(initial=-1) >= len(both):
            raise UserError(f"{work / 'labels.npy'}: its ids do not index the {len(both)} instances of "
                            f"{INSTANCES_FILE}; {hint}")
        lifted = LanguageField.load(work)
        if len(lifted.coverage) != len(labels) or lifted.features.shape[1] != both.shape[1] - 1:
            raise UserError(f"{path}: does not match {FEATURES_FILE} and labels.npy of {work}; {hint}")
        return cls(both[:, :-1].astype(np.float32), both[:, -1].astype(np.float32), labels.astype(np.int64),
                   lifted.meta, lifted)


def relevancy_logit(features: np.ndarray, query: np.ndarray, negatives: np.ndarray,  # [N, D], [D], [K, D] -> [N]
                    temperature: float = TEMPERATURE) -> np.ndarray:
    """``min_k t (f.q - f.n_k)``: the logit of LERF's relevancy (float64, never saturated)."""
    f = np.asarray(features, np.float64)
    sq = f @ np.asarray(query, np.float64)  # [N]
    sn = f @ np.asarray(negatives, np.float64).T  # [N, K]
    return temperature * (sq[:, None] - sn).min(axis=1, initial=np.inf)


def relevancy(features: np.ndarray, query: np.ndarray, negatives: np.ndarray,  # [N, D], [D], [K, D] -> [N]
              temperature: float = TEMPERATURE) -> np.ndarray:
    """LERF's relevancy: ``min_k exp(t f.q) / (exp(t f.q) + exp(t f.n_k))`` = ``min_k sigmoid(t (f.q - f.n_k))``."""
    return (1.0 / (1.0 + np.exp(-relevancy_logit(features, query, negatives, temperature)))).astype(np.float32)


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


def _source(source, mode: str | None):
    """The field a text query scores: ``source`` itself when loaded; from a work folder, its
    per-instance embeddings (``mode`` "instances", or None when the folder has them) or its lifted
    per-Gaussian features ("gaussians", or None on a folder prepared before instances had them)."""
    if mode is not None and mode not in TEXT_MODES:
        raise UserError(f"--text-on {mode}: choose from {', '.join(TEXT_MODES)}")
    if isinstance(source, (LanguageField, InstanceField)):
        return source
    if mode == "instances" or (mode is None and DEFAULT_TEXT_MODE == "instances"
                               and (Path(source) / INSTANCES_FILE).is_file()):
        return InstanceField.load(source)
    return LanguageField.load(source)


def text_query(source, text: str, *, embedder=None, negatives: Sequence[str] = CANONICAL_NEGATIVES,
               threshold: float | None = None, temperature: float = TEMPERATURE, mode: str | None = None) -> TextQuery:
    """Score every Gaussian against ``text`` and select the relevant ones.

    ``source``: a work folder (path) prepared with ``--clip-model``, or a loaded :class:`LanguageField`
    (per-Gaussian lifted features) or :class:`InstanceField` (per consistent instance: each Gaussian
    scores its instance's relevancy).
    ``mode``: with a work folder, "instances" or "gaussians"; None = :data:`DEFAULT_TEXT_MODE` where
    the folder has it (folders prepared before per-instance embeddings existed: "gaussians").
    ``embedder``: anything with ``embed_text``; default: the CLIP model named in the work folder.
    ``threshold``: None = automatic (valley below the top mode, Otsu fallback; at least
    :data:`MIN_RELEVANCY`, so a text matching nothing selects little rather than the best bump).
    """
    from .lifting import ThresholdConfig, auto_threshold

    if not text or not text.strip():
        raise UserError("--text: empty query")
    field_ = _source(source, mode)
    embedder = embedder or embedder_for(field_.meta)
    emb = np.asarray(embedder.embed_text([text, *negatives]), np.float32)
    if emb.shape[1] != field_.features.shape[1]:
        raise UserError(f"--text: the text embedder gives {emb.shape[1]}-d vectors, the work folder's features are "
                        f"{field_.features.shape[1]}-d (made by another model)")
    if isinstance(field_, InstanceField):
        return _instance_query(field_, emb, threshold, temperature)
    seen = field_.seen
    score = np.where(seen, relevancy(field_.features, emb[0], emb[1:], temperature), 0.0).astype(np.float32)
    if threshold is None:
        if seen.sum() < 2:
            raise UserError("--text: fewer than two Gaussians carry CLIP features")
        t = auto_threshold(score[seen], ThresholdConfig(side="top"))
        value, method = max(t.value, MIN_RELEVANCY), t.method if t.value >= MIN_RELEVANCY else "floor"
    else:
        value, method = float(threshold), "given"
    return TextQuery(score, seen & (score > value), value, method)


def _instance_query(field_: "InstanceField", emb: np.ndarray, threshold: float | None,
                    temperature: float) -> TextQuery:
    """Each Gaussian of a consistent instance scores the instance's relevancy; one of none (the
    traces never gave it an id) its own lifted features' (``field_.lifted``), if any. Automatic
    threshold: a relevancy logit at least :data:`INSTANCE_RELATIVE` times the best one's (and a
    relevancy of at least :data:`MIN_RELEVANCY`); the best instance is always selected."""
    labels = field_.labels
    known = field_.weight > 0  # [I]
    per_instance = np.where(known, relevancy_logit(field_.features, emb[0], emb[1:], temperature), -np.inf)
    logit = np.full(len(labels), -np.inf)
    inside = labels >= 0
    logit[inside] = per_instance[labels[inside]]
    seen = np.isfinite(logit)
    lifted = field_.lifted
    if lifted is not None and len(lifted.coverage) == len(labels):
        rest = ~seen & lifted.seen
        logit[rest] = relevancy_logit(lifted.features[rest], emb[0], emb[1:], temperature)
        seen |= rest
    score = np.where(seen, 1.0 / (1.0 + np.exp(-np.where(seen, logit, 0.0))), 0.0).astype(np.float32)
    if threshold is not None:
        return TextQuery(score, seen & (score > threshold), float(threshold), "given")
    if not seen.any():
        raise UserError("--text: no instance carries CLIP features")
    best = float(logit[seen].max())
    floor = float(np.log(MIN_RELEVANCY / (1.0 - MIN_RELEVANCY)))
    cut = max(INSTANCE_RELATIVE * best, floor)
    selected = seen & ((logit >= cut) | (logit >= best))
    return TextQuery(score, selected, float(1.0 / (1.0 + np.exp(-min(cut, best)))),
                     "relative" if INSTANCE_RELATIVE * best >= floor else "floor")


def prepare_language(work_root, scene, cameras, stacks, images: Callable[[int], np.ndarray], options,
                     progress=None, backend: str = "auto", view_maps: Sequence[np.ndarray] | None = None,
                     labels: np.ndarray | None = None) -> dict:
    """``prepare --clip-model``: embed the views' masks with the user's CLIP, lift onto the work
    folder's (refined) scene, save ``clip_features.npy`` and ``clip.json``; with the method's
    consistent ``view_maps`` (per view [H, W] ids) and ``labels`` [N], also one embedding per
    instance (:func:`instance_embeddings`, ``clip_instances.npy``). Returns the meta."""
    import time

    from .models.clip import ClipEmbedder

    t0 = time.perf_counter()
    embedder = ClipEmbedder.load(options)
    embedded: dict[int, np.ndarray] = {}

    def embed(k: int, masks: np.ndarray) -> np.ndarray:
        embedded[k] = np.asarray(embedder.embed_masks(images(k), masks), np.float32)
        return embedded[k]

    field_ = lift_embeddings(scene, cameras, stacks, embed, backend=backend, progress=progress, name=embedder.name)
    field_.meta.update(options.to_json(), seconds=time.perf_counter() - t0)
    if view_maps is not None and labels is not None and len(view_maps) == len(stacks):
        dim = field_.features.shape[1]
        embs = [embedded.get(k, np.zeros((0, dim), np.float32)) for k in range(len(stacks))]
        num = int(max([np.max(labels, initial=-1), *(np.max(m, initial=-1) for m in view_maps)])) + 1
        feats, weight = instance_embeddings(view_maps, stacks, embs, num)
        InstanceField(feats, weight, np.asarray(labels)).save(work_root)
        field_.meta["instances"] = num
    field_.save(work_root)
    return field_.meta

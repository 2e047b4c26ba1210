"""Stand-ins for SAM's point predictor and for CLIP on the synthetic world, so self-prompting and text
queries run end to end in the benchmark (issue 12 item 7); no weights exist on our machines.

* :class:`GTPointPredictor` answers point prompts with the ground-truth mask of the clicked object,
  with the simulator's failure modes (:class:`~gs_core.synth.masks.MaskNoise`): sometimes the part
  or the group instead of the object (SAM's granularity ambiguity), jittered boundaries.
* :class:`GTEmbedder` maps every ground-truth object to a fixed random unit vector; a mask's
  embedding is the pixel-share-weighted mix of the vectors of the objects under it (a crop of two
  objects looks like both), a text naming an object gets that object's vector, any other text a
  fixed random vector of its own.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .groundtruth import GroundTruth
from .masks import MaskNoise, _jittered


def _text_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


class GTEmbedder:
    """``embed_view(k, masks)`` -> [M, D] for training view ``names[k]``; ``embed_text(texts)`` -> [T, D]."""

    name = "gt-standin"

    def __init__(self, gt: GroundTruth, names: list[str], dim: int = 64, seed: int = 0, noise: float = 0.0):
        self.gt, self.names, self.dim, self.noise = gt, names, dim, noise
        rng = np.random.default_rng([seed, 12])
        v = rng.normal(size=(len(gt.hierarchy.objects), dim))
        self.vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)  # [O, D]
        self.rng = np.random.default_rng([seed, 13])

    def embed_view(self, k: int, masks: np.ndarray) -> np.ndarray:
        objects = self.gt.instance_map(self.names[k])  # [H, W] -1 = background
        O = len(self.vectors)
        out = np.zeros((len(masks), self.dim), np.float32)
        for m, mask in enumerate(masks):
            ids = objects[mask]
            ids = ids[ids >= 0]
            if len(ids) == 0:
                out[m] = _text_vector("background", self.dim)
                continue
            share = np.bincount(ids, minlength=O).astype(np.float32) / len(ids)
            v = share @ self.vectors + self.noise * self.rng.normal(size=self.dim) / np.sqrt(self.dim)
            out[m] = v / np.linalg.norm(v)
        return out

    def embed_text(self, texts: list[str]) -> np.ndarray:
        index = {o.name: o.id for o in self.gt.hierarchy.objects}
        return np.stack([self.vectors[index[t]] if t in index else _text_vector(t, self.dim) for t in texts])


class GTPointPredictor:
    """``predict_view(k, points [P, 2] (x, y), labels [P])`` -> ``(mask [H, W] bool, score)``: the
    ground-truth object under the positive clicks (majority), at another level with the noise's
    ``granularity`` probability (the part only when the clicks all hit one part: SAM's ambiguity is
    a single click's), boundary-jittered; empty when the clicks hit background."""

    def __init__(self, gt: GroundTruth, names: list[str], noise: MaskNoise = MaskNoise(), seed: int = 0):
        self.gt, self.names, self.noise = gt, names, noise
        self.rng = np.random.default_rng([seed, 14])
        self.calls = 0

    def predict_view(self, k: int, points: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
        self.calls += 1
        name = self.names[k]
        maps = {level: self.gt.instance_map(name, level) for level in ("part", "object", "group")}
        H, W = maps["object"].shape
        points = np.asarray(points, np.int64).reshape(-1, 2)
        labels = np.asarray(labels).reshape(-1)
        pos = points[labels == 1]
        inside = (pos[:, 0] >= 0) & (pos[:, 0] < W) & (pos[:, 1] >= 0) & (pos[:, 1] < H)
        hit = maps["object"][pos[inside, 1], pos[inside, 0]]
        hit = hit[hit >= 0]
        if len(hit) == 0:
            return np.zeros((H, W), bool), 0.0
        obj = int(np.bincount(hit).argmax())
        level = "object"
        if self.rng.random() < self.noise.granularity:
            level = ("part", "group")[self.rng.integers(2)]
            parts = np.unique(maps["part"][pos[inside, 1], pos[inside, 0]])
            if level == "part" and len(parts) > 1:  # clicks on several parts are no longer ambiguous
                level = "object"
        x, y = pos[inside][np.argmax(maps["object"][pos[inside, 1], pos[inside, 0]] == obj)]
        mask = maps[level] == maps[level][y, x]
        neg = points[labels == 0]
        if level != "object" and len(neg):  # a negative click inside the coarser mask: SAM backs off to the object
            ok = (neg[:, 0] >= 0) & (neg[:, 0] < W) & (neg[:, 1] >= 0) & (neg[:, 1] < H)
            if mask[neg[ok, 1], neg[ok, 0]].any():
                mask = maps["object"] == obj
        if self.noise.jitter > 0:
            mask = _jittered(mask, self.noise.jitter / 100 * W, self.rng)
        return mask, 0.95

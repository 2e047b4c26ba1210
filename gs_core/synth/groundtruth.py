"""Ground truth of a synthetic world: the part -> object -> group hierarchy, per-Gaussian ids and
per-view instance maps, and its ``gt/`` folder.

``gt/`` layout (written by :func:`gs_core.synth.write_dataset`):

* ``scene.json`` — hierarchy (parts, objects, groups), train/test split (image names), generator
  config and artefact counts;
* ``gaussians.npz`` — per-Gaussian ``part``, ``object``, ``group`` (int32, -1 = none, e.g. a
  floater), ``artefact`` (int8, see :data:`ARTEFACTS`) and ``spans`` [N, 2] (the objects a
  Gaussian covers: owner first, -1 padded), indexed like the PLY's vertices;
* ``part/``, ``object/``, ``group/`` — 16-bit PNG instance maps per image, value = id + 1,
  0 = background; ``depth/`` — 16-bit PNG expected depth in millimetres (0 = background).

The label of a pixel is the instance whose clean Gaussians carry the largest summed blending
weight there; pixels where the clean scene's alpha is below 0.5 are background
(see :func:`gs_core.synth.views.render_views`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ARTEFACTS = ("clean", "straddler", "floater", "intruder")  # index = value of ``artefact``
LEVELS = ("part", "object", "group")
FORMAT = "gs_core.synth/1"


@dataclass
class PartInfo:
    id: int
    name: str
    object: int


@dataclass
class ObjectInfo:
    id: int
    name: str
    category: str
    group: int
    parts: list[int]
    stuff: bool  # floor, walls, ceiling
    support: int | None  # the object it rests on


@dataclass
class GroupInfo:
    id: int
    name: str
    objects: list[int]


@dataclass
class Hierarchy:
    """part -> object -> group. Ids are dense: ``parts[i].id == i`` and so on."""

    parts: list[PartInfo]
    objects: list[ObjectInfo]
    groups: list[GroupInfo]

    @property
    def part_to_object(self) -> np.ndarray:  # [P] int32
        return np.array([p.object for p in self.parts], dtype=np.int32)

    @property
    def object_to_group(self) -> np.ndarray:  # [O] int32
        return np.array([o.group for o in self.objects], dtype=np.int32)

    @property
    def things(self) -> list[int]:
        """Ids of objects that are not room structure."""
        return [o.id for o in self.objects if not o.stuff]

    def to_json(self) -> dict:
        return {"parts": [asdict(p) for p in self.parts], "objects": [asdict(o) for o in self.objects],
                "groups": [asdict(g) for g in self.groups]}

    @classmethod
    def from_json(cls, d: dict) -> "Hierarchy":
        return cls([PartInfo(**p) for p in d["parts"]], [ObjectInfo(**o) for o in d["objects"]],
                   [GroupInfo(**g) for g in d["groups"]])


@dataclass
class GaussianLabels:
    """Ground truth per Gaussian, indexed like the scene's splats."""

    part: np.ndarray  # [N] int32, -1 = none
    object: np.ndarray  # [N] int32, -1 = none (floaters)
    group: np.ndarray  # [N] int32, -1 = none
    artefact: np.ndarray  # [N] int8, index into ARTEFACTS
    spans: np.ndarray  # [N, 2] int32: objects the splat covers, owner first, -1 padded

    def __len__(self) -> int:
        return len(self.part)

    @property
    def clean(self) -> np.ndarray:  # [N] bool
        return self.artefact == 0

    @staticmethod
    def cat(chunks: list["GaussianLabels"]) -> "GaussianLabels":
        return GaussianLabels(*(np.concatenate([getattr(c, k) for c in chunks])
                                for k in ("part", "object", "group", "artefact", "spans")))

    def save(self, path: str | os.PathLike) -> None:
        np.savez_compressed(path, part=self.part, object=self.object, group=self.group,
                            artefact=self.artefact, spans=self.spans)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "GaussianLabels":
        with np.load(path, allow_pickle=False) as z:
            return cls(z["part"], z["object"], z["group"], z["artefact"], z["spans"])


def write_label_png(path: Path, labels: np.ndarray) -> None:  # labels [H, W] int, -1 = background
    if labels.max(initial=-1) >= 65535:
        raise ValueError(f"{path}: {labels.max()} ids do not fit a 16-bit PNG")
    Image.fromarray((labels + 1).astype(np.uint16)).save(path)


def read_label_png(path: Path) -> np.ndarray:  # -> [H, W] int32, -1 = background
    return np.asarray(Image.open(path), dtype=np.int32) - 1


@dataclass
class GroundTruth:
    """The ``gt/`` folder of a synthetic dataset, read back."""

    root: Path  # the dataset folder (parent of ``gt/``)
    hierarchy: Hierarchy
    gaussians: GaussianLabels
    train: list[str]  # image names of the training views
    test: list[str]  # image names of the held-out views
    info: dict  # the rest of scene.json: generator config, artefact counts

    @classmethod
    def load(cls, root: str | os.PathLike) -> "GroundTruth":
        root = Path(root)
        gt = root / "gt"
        if not (gt / "scene.json").is_file():
            raise FileNotFoundError(f"{root}: no gt/scene.json; not a gs_core synthetic dataset")
        meta = json.loads((gt / "scene.json").read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{gt / 'scene.json'}: format {meta.get('format')!r}, expected {FORMAT!r}")
        return cls(root, Hierarchy.from_json(meta["hierarchy"]), GaussianLabels.load(gt / "gaussians.npz"),
                   list(meta["split"]["train"]), list(meta["split"]["test"]),
                   {k: v for k, v in meta.items() if k not in ("hierarchy", "split", "format")})

    def instance_map(self, image_name: str, level: str = "object") -> np.ndarray:  # -> [H, W] int32
        """GT ids of ``level`` (part, object or group) at every pixel of an image, -1 = background."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
        return read_label_png(self.root / "gt" / level / f"{Path(image_name).stem}.png")

    def depth(self, image_name: str) -> np.ndarray:  # -> [H, W] float32 metres, 0 = background
        mm = np.asarray(Image.open(self.root / "gt" / "depth" / f"{Path(image_name).stem}.png"), dtype=np.float32)
        return mm / 1000.0

"""Splats under construction: activated per-splat arrays with their ground truth, and the
conversion to a :class:`~gs_core.scene.GaussianScene` in 3DGS or 2DGS form."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import SH_C0, GaussianScene
from .groundtruth import GaussianLabels
from .objects import ObjectSpec
from .shapes import frames_to_quats

LIGHT = np.array([0.3, -0.5, 1.0]) / np.linalg.norm([0.3, -0.5, 1.0])
THIN = 0.2  # 3DGS: the normal-axis scale relative to the tangent scales (trained splats are flat)
# Opacity of hidden splats relative to seen ones. 3DGS training resets every opacity to 0.01 now and
# then, and nothing raises it again where no view sees the splat. At full opacity, the wide floor
# splats under the rug, sorted by their centres, painted over half of the 1.2 cm rug (its own
# weight 0.47 on its pixels against 0.93 for a table), which no trained scene shows.
HIDDEN_OPACITY = 0.05


@dataclass
class Splats:
    """Activated splats: what the generator builds before writing a scene."""

    means: np.ndarray  # [n, 3]
    quats: np.ndarray  # [n, 4] wxyz, unit
    scales: np.ndarray  # [n, 3] standard deviations; column 2 is along the normal
    opacities: np.ndarray  # [n] in (0, 1)
    colors: np.ndarray  # [n, 3] rgb in [0, 1]
    labels: GaussianLabels

    def __len__(self) -> int:
        return len(self.means)

    @staticmethod
    def cat(chunks: list["Splats"]) -> "Splats":
        def c(name):
            return np.concatenate([getattr(s, name) for s in chunks])

        return Splats(c("means"), c("quats"), c("scales"), c("opacities"), c("colors"),
                      GaussianLabels.cat([s.labels for s in chunks]))

    def to_scene(self, kind: str = "3dgs", sh_degree: int = 3) -> GaussianScene:
        """INRIA conventions: log-scales (two for 2DGS), opacity logits, SH DC from the colour,
        higher SH bands zero."""
        if kind not in ("3dgs", "2dgs"):
            raise ValueError(f"kind must be '3dgs' or '2dgs', got {kind!r}")
        n = len(self)
        scales = self.scales if kind == "3dgs" else self.scales[:, :2]
        o = np.clip(self.opacities, 1e-4, 1 - 1e-4)
        f32 = np.float32
        return GaussianScene(
            means=self.means.astype(f32), quats=self.quats.astype(f32), log_scales=np.log(scales).astype(f32),
            opacity_logits=np.log(o / (1 - o)).astype(f32), sh_dc=((self.colors - 0.5) / SH_C0).astype(f32),
            sh_rest=np.zeros((n, (sh_degree + 1) ** 2 - 1, 3), f32), normals=np.zeros((n, 3), f32),
            comments=[f"gs_core.synth {kind}"])


def surface_splats(objects: list[ObjectSpec], object_group: list[int], rng: np.random.Generator) -> Splats:
    """One flat splat per surface sample, coloured by the part's texture under a fixed light.

    Part ids are numbered in order over ``objects`` and their parts; ``object_group`` [O] gives
    each object's group.
    """
    chunks, part_id = [], 0
    for obj_id, obj in enumerate(objects):
        for part in obj.parts:
            s = part.surface
            n = len(s)
            sigma = 0.7 * s.spacing * rng.uniform(0.85, 1.15, (n, 2))
            scales = np.c_[sigma, THIN * sigma.min(1)]
            shade = 0.55 + 0.45 * np.clip(s.normals @ LIGHT, 0, 1)
            colors = np.clip(part.texture.colors(s.points) * shade[:, None], 0, 1)
            ids = np.full(n, part_id, np.int32)
            labels = GaussianLabels(ids, np.full(n, obj_id, np.int32), np.full(n, object_group[obj_id], np.int32),
                                    np.zeros(n, np.int8), np.c_[np.full(n, obj_id), np.full(n, -1)].astype(np.int32))
            opacities = rng.uniform(0.8, 0.98, n)
            if part.hidden is not None:
                opacities = np.where(part.hidden, opacities * HIDDEN_OPACITY, opacities)
            chunks.append(Splats(s.points, frames_to_quats(s.normals, s.tangents), scales, opacities, colors, labels))
            part_id += 1
    return Splats.cat(chunks)

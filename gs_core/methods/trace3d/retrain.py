"""Density control's retraining mode (Trace3D Sec. 3.4.2): split and prune the ambiguous Gaussians,
then retrain the scene photometrically (L1 + 0.2 D-SSIM against the training photos), and repeat.

The paper splits / prunes every 1000 training iterations; here each round is one split / prune of
:func:`~gs_core.methods.trace3d.density.density_control` (its training-free refit skipped: retraining
replaces it) followed by ``steps`` steps of :func:`gs_core.refine.refine`, and the scene's GIT is
traced again for the next round's ambiguity (Eq. 4) and for the association. Adam's state carries
over from round to round as in 3DGS's densification: a Gaussian that survives a split / prune keeps
its moments, a split's children start from zero moments (3DGS's ``densification_postfix`` appends
zeros) and the step count goes on (:func:`carry_moments`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ...camera import Camera
from ...refine import RefineConfig, RefineReport, adam_moments, refine
from ...scene import GaussianScene
from .consistency import ConsistentInstances
from .density import DensityConfig, DensityReport, density_control
from .git import GITStore
from ...patches import InstancePatches


@dataclass(frozen=True)
class RetrainConfig:
    rounds: int = 2  # split / prune rounds, each followed by `steps` refinement steps
    steps: int = 200  # refinement steps per round (paper: 1000 iterations between splits)
    refine: RefineConfig = field(default_factory=RefineConfig)


@dataclass
class RetrainReport:
    density: list[DensityReport] = field(default_factory=list)
    refine: list[RefineReport] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    @property
    def split(self) -> int:
        return sum(d.split for d in self.density)

    def to_json(self) -> dict:
        return {"density": [d.to_json() for d in self.density],
                "refine": [r.to_json() for r in self.refine], "seconds": self.seconds}


def carry_moments(moments: dict[str, dict[str, torch.Tensor]], source_rows: np.ndarray,
                  children: np.ndarray) -> dict[str, dict[str, torch.Tensor]]:
    """Adam's state (:func:`gs_core.refine.adam_moments`) for the Gaussians after a split / prune:
    row ``i`` takes the moments of input row ``source_rows[i]`` [N'], zeroed where ``children[i]``
    [N'] (a child starts fresh, as 3DGS's new rows do); ``step`` is kept.

    Args:
        moments: [N, ...] per parameter name, Adam's ``exp_avg`` and ``exp_avg_sq`` rows (and its ``step``).
        source_rows: [N'] int64 input row each output Gaussian continues.
        children: [N'] bool whether each output Gaussian is a child of a split.
    """
    rows, fresh = torch.from_numpy(np.asarray(source_rows, np.int64)), torch.from_numpy(np.asarray(children, bool))
    out = {}
    for name, state in moments.items():
        new = {"step": state["step"].clone()}
        for k in ("exp_avg", "exp_avg_sq"):
            v = state[k][rows].clone()
            v[fresh] = 0
            new[k] = v
        out[name] = new
    return out


def retrain(scene: GaussianScene, cameras: list[Camera], instances: ConsistentInstances,
            patches: list[InstancePatches], images: Callable[[int], np.ndarray], density: DensityConfig,
            config: RetrainConfig, trace_config, backend: str = "auto",
            progress: Callable[[int, int], None] | None = None,
            ) -> tuple[GaussianScene, RetrainReport, GITStore]:
    """Rounds of split / prune then photometric retraining. ``instances`` are the consistent ids of
    the input scene (patch ids do not change across rounds); ``trace_config`` re-traces GIT.
    Returns the retrained scene, the report, and the GIT of the returned scene.

    Args:
        images: [H, W, 3] float in [0, 1], ``images(k)`` the photo of view k.
    """
    from .git import trace_all

    report = RetrainReport()
    store = instances.store
    photos = {}

    def photo(k: int) -> np.ndarray:  # each photo read once
        if k not in photos:
            photos[k] = images(k)
        return photos[k]

    moments = None  # Adam's state at the end of the last round
    for r in range(config.rounds):
        t = time.perf_counter()
        scene, d_report, store = density_control(scene, cameras, replace(instances, store=store), patches,
                                                 replace(density, rounds=1), images=None,
                                                 trace_config=trace_config, backend=backend)
        report.density.append(d_report)
        report.seconds[f"split_prune_{r}"] = time.perf_counter() - t
        if moments is not None:  # the survivors keep their moments, children start at zero
            moments = carry_moments(moments, d_report.source_rows, d_report.children)
        t = time.perf_counter()
        final: dict = {}

        def keep_moments(step, params, opt, final=final):
            if step == config.steps:
                final.update(adam_moments(opt, params))

        scene, r_report = refine(scene, cameras, photo, replace(config.refine, steps=config.steps,
                                                                seed=config.refine.seed + r, backend=backend),
                                 on_step=keep_moments, moments=moments)
        moments = final or None
        report.refine.append(r_report)
        report.seconds[f"refine_{r}"] = time.perf_counter() - t
        t = time.perf_counter()
        store, _ = trace_all(scene, cameras, patches, trace_config)  # the retrained scene's GIT
        report.seconds[f"trace_{r}"] = time.perf_counter() - t
        if progress:
            progress(r + 1, config.rounds)
    return scene, report, store

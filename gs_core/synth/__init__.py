"""A synthetic world with ground truth: Gaussian-splat rooms and table tops, their views, SAM-like
masks with controllable failure modes, written as standard datasets.

::

    from gs_core.synth import SynthConfig, MaskNoise, build_dataset
    build_dataset("out/room0", SynthConfig.sized("small", layout="room", seed=0), MaskNoise.level(1.0))

Pieces: :func:`make_world` (layout, splats, artefacts, cameras), :func:`render_views` (RGB, depth,
GT instance maps), :func:`simulate_masks`, :func:`write_dataset`; :class:`GroundTruth` reads ``gt/``.
"""

from .artefacts import ArtefactConfig
from .groundtruth import ARTEFACTS, LEVELS, GaussianLabels, GroundTruth, Hierarchy
from .masks import MaskNoise, MaskSource, SimulatedMasks, simulate_masks
from .views import ViewRender, render_views
from .world import LAYOUTS, SIZES, SynthConfig, SynthWorld, make_world
from .writer import SceneViews, build_dataset, dataset_written, write_dataset, write_or_reuse

__all__ = ["ARTEFACTS", "LAYOUTS", "LEVELS", "SIZES", "ArtefactConfig", "GaussianLabels", "GroundTruth",
           "Hierarchy", "MaskNoise", "MaskSource", "SceneViews", "SimulatedMasks", "SynthConfig", "SynthWorld",
           "ViewRender", "build_dataset", "dataset_written", "make_world", "render_views", "simulate_masks",
           "write_dataset", "write_or_reuse"]

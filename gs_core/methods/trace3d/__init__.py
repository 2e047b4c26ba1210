"""Trace3D (Shen et al.): Gaussian Instance Tracing (:mod:`.git`), consistent instance maps by
cross-view patch merging (:mod:`.consistency`, Eq. 3 and the merge tree), GIT-guided density control
(:mod:`.density`, :mod:`.retrain`), and the method that composes them (:mod:`.method`: ``run``, the
benchmark's adapters and ``prepare``'s). Instance patches (Sec. 3.2) are :mod:`gs_core.patches`, a mask
primitive SAM and CLIP use too."""

from .consistency import ConsistencyConfig, ConsistentInstances, MergeTree, consistent_instances
from .git import GITStore, ViewGIT, trace_view
from ...patches import InstancePatches, make_patches, scaled_min_area
from .method import (FINEST_SCORE, LEVELS, Trace3DConfig, Trace3DResult, level_threshold, prepare_config,
                     prepare_trace3d, render_time, run, segment, segment_consistent, segment_density,
                     segment_retrain, trace_settings)

__all__ = ["ConsistencyConfig", "ConsistentInstances", "FINEST_SCORE", "GITStore", "InstancePatches", "LEVELS",
           "MergeTree", "Trace3DConfig", "Trace3DResult", "ViewGIT", "consistent_instances", "level_threshold",
           "make_patches", "prepare_config", "prepare_trace3d", "render_time", "run", "scaled_min_area",
           "segment", "segment_consistent", "segment_density", "segment_retrain", "trace_settings",
           "trace_view"]

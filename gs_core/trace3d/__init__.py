"""Trace3D (Shen et al.): instance patches, Gaussian Instance Tracing, consistent instance maps and
GIT-guided density control, each a composition of the engine's ``trace`` (and ``render``)."""

from .consistency import ConsistencyConfig, ConsistentInstances, MergeTree, consistent_instances
from .git import GITStore, ViewGIT, trace_view
from .patches import InstancePatches, make_patches, scaled_min_area

__all__ = ["ConsistencyConfig", "ConsistentInstances", "GITStore", "InstancePatches", "MergeTree", "ViewGIT",
           "consistent_instances", "make_patches", "scaled_min_area", "trace_view"]

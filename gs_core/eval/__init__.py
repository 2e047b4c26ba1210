"""Evaluation on the synthetic world: the protocol (queries, selection rule, scores) and the
ground-truth baselines, scored beside every method of the one registry. The benchmark and the main
job (``gs-core demo``) both score through here."""

from ..methods.base import Method, MethodInput, MethodResult
from ..methods.registry import REGISTRY
from .baselines import gt_association, naive_lifting, oracle
from .protocol import COLUMNS, MIN_QUERY_PIXELS, Evaluation, Query, SceneContext, Score, select, truth_mask

METHODS: dict[str, Method] = {
    "oracle": oracle,
    "naive": naive_lifting,
    "gt-association": gt_association,  # ceiling: Trace3D's patches and GIT, ground-truth association
    **{name: entry.segment for name, entry in REGISTRY.items()},
}
"""Every method the evaluation can score, by name: the baselines, then the registry's methods."""

__all__ = ["COLUMNS", "METHODS", "MIN_QUERY_PIXELS", "Evaluation", "Method", "MethodInput", "MethodResult", "Query",
           "SceneContext", "Score", "gt_association", "naive_lifting", "oracle", "select", "truth_mask"]

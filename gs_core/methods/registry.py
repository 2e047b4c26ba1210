"""The one method registry: every entry point (``gs-core prepare``, the server and the add-on, the demo,
``gs-core bench segmentation``) reaches a method through :data:`REGISTRY`. An entry pairs the
benchmark's adapter (``segment``: MethodInput -> MethodResult) with ``prepare``'s (``preparer``:
PrepareInput -> PreparedResult), both thin wrappers of one ``run`` in the method's module, reading
masks through the dataset's one loader. Adding a method is one entry here (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import foundation, gaga, iqgs, proto_saga, trace3d
from . import lifting as lifting_methods
from .base import Method, Preparer


@dataclass(frozen=True)
class MethodEntry:
    segment: Method  # the benchmark's adapter
    preparer: Preparer | None = None  # prepare's adapter (None: a benchmark-only ablation or peer)
    about: str = ""


def _settings(config_of):
    return lambda options: repr(config_of(options))


TRACE3D = Preparer(settings=_settings(trace3d.prepare_config), run=trace3d.prepare_trace3d,
                   cache_settings=trace3d.trace_settings)
IQGS = Preparer(settings=_settings(iqgs.prepare_config), run=iqgs.prepare_iqgs)
PROTO_SAGA = Preparer(settings=_settings(proto_saga.prepare_config), run=proto_saga.prepare_proto_saga)

REGISTRY: dict[str, MethodEntry] = {
    "trace3d": MethodEntry(trace3d.segment, TRACE3D, "consistent maps and training-free density control"),
    "git-consistent": MethodEntry(trace3d.segment_consistent, TRACE3D, "consistent maps, no density control"),
    "trace3d-retrain": MethodEntry(trace3d.segment_retrain, about="density control with photometric retraining"),
    "git-density": MethodEntry(trace3d.segment_density, about="density control, per-view ids (ablation)"),
    "gaga": MethodEntry(gaga.segment, about="Gaga's memory-bank association (the peer)"),
    "closed-form": MethodEntry(lifting_methods.closed_form, about="closed-form lifting of per-view ids"),
    "contrastive": MethodEntry(lifting_methods.contrastive_consistent, about="contrastive lifting of consistent maps"),
    "contrastive-raw": MethodEntry(lifting_methods.contrastive_raw, about="contrastive lifting of raw masks"),
    "self-prompt": MethodEntry(foundation.self_prompt, about="SAM self-prompting (stand-in predictor)"),
    "text": MethodEntry(foundation.text, about="CLIP text queries on painted per-pixel maps (stand-in embedder)"),
    "text-instances": MethodEntry(foundation.text_instances, about="CLIP text queries on consistent instances "
                                  "(stand-in embedder)"),
    "iqgs": MethodEntry(iqgs.segment, IQGS, "instance queries, id matching"),
    "iqgs-h": MethodEntry(iqgs.segment_hungarian, IQGS, "instance queries, Hungarian matching"),
    "proto-saga": MethodEntry(proto_saga.segment, PROTO_SAGA, "prototypes on Gaga's memory bank"),
    "proto-saga-depth": MethodEntry(proto_saga.segment_depth, about="Tab. 3 ablation: depth criterion only"),
    "proto-saga-prob": MethodEntry(proto_saga.segment_probability, about="Tab. 3 ablation: probability criterion"),
    "proto-saga-cls": MethodEntry(proto_saga.segment_classifier, about="Tab. 4 ablation: classifier inference"),
    "proto-saga-kmeans": MethodEntry(proto_saga.segment_kmeans, about="Tab. 4 ablation: k-means inference"),
}

"""The benchmark's self-prompt and text methods (stand-in SAM predictor and CLIP) scored like every
other method on a tiny clean table top."""

import pytest

from gs_core.eval import METHODS
from gs_core.eval import Evaluation
from gs_core.dataset import Dataset
from gs_core.methods.base import MethodInput
from gs_core.synth import GroundTruth, MaskNoise, SynthConfig, build_dataset


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    root = tmp_path_factory.mktemp("fm") / "ds"
    build_dataset(root, SynthConfig.sized("tiny", layout="tabletop"), MaskNoise.level(0.0))
    ds = Dataset.load(root)
    return ds, Evaluation.prepare(ds, GroundTruth.load(root))


@pytest.mark.parametrize("name", ["self-prompt", "text", "text-instances"])
def test_foundation_methods_score(evaluation, name):
    ds, ev = evaluation
    result = METHODS[name](MethodInput(ds, ev.train))
    metrics = ev.score(result).metrics
    # measured: NV mIoU 80 for both (naive lifting of these clean masks: 92): per-object queries
    # leave some Gaussians unlabelled where the whole-scene methods label everything
    assert metrics["nv_miou"] > 0.65 and metrics["ext_miou"] > 0.6, metrics
    if name.startswith("text"):
        assert result.info["mean_query_iou"] > 0.75 and set(result.info["query_iou"])
    else:
        assert result.info["objects"] >= 4 and result.info["mean_views"] >= 2

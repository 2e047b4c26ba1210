"""``gs-core prepare --method iqgs``: the work folder every later command reads, with IQGS's labels,
then ``segment`` and ``query`` on it; the dataset is left untouched."""

import json

import numpy as np
import pytest
import torch

from gs_core.cli import main
from gs_core.synth import MaskNoise, SynthConfig, build_dataset

WORK_FILES = ("manifest.json", "cameras.json", "scene.ply", "labels.npy", "confidence.npy", "levels.npz",
              "view_maps.npz", "iqgs_model.pt")


@pytest.mark.slow
def test_prepare_iqgs_then_segment_and_query(tmp_path):
    data = tmp_path / "dataset"
    build_dataset(data, SynthConfig.sized("tiny"), MaskNoise.level(0.5))
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    work = tmp_path / "work"
    assert main(["prepare", str(data), "--out", str(work), "--method", "iqgs"]) == 0
    for name in WORK_FILES:
        assert (work / name).is_file(), name
    manifest = json.loads((work / "manifest.json").read_text())
    assert manifest["method"] == "iqgs" and manifest["status"] == "complete" and "train" in manifest["stages"]
    labels = np.load(work / "labels.npy")
    assert (labels >= 0).mean() > 0.5 and len(np.unique(labels[labels >= 0])) >= 3
    saved = torch.load(work / "iqgs_model.pt", weights_only=False)
    assert saved["active"][labels[labels >= 0]].all()  # every label is a trained query
    assert main(["segment", str(work), "--out", str(tmp_path / "seg.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "seg.npy"), labels)
    pick = int(np.flatnonzero(labels >= 0)[0])
    np.save(tmp_path / "ids.npy", np.array([pick]))
    assert main(["query", str(work), "--gaussians", str(tmp_path / "ids.npy"), "--out", str(tmp_path / "sel.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "sel.npy"), labels == labels[pick])
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before

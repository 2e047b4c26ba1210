"""``gs-core bench proto-saga``: the consistency measure, and the command's wiring (a few training
steps only: the plumbing, not the scores; docs/benchmarks.md has the measured ones)."""

import json

import numpy as np
import pytest
import torch

from gs_core.bench import proto_saga as bench_proto_saga
from gs_core.bench.proto_saga import gaussian_agreement
from gs_core.cli import main


def test_gaussian_agreement():
    rng = np.random.default_rng(0)
    objects = np.repeat(np.arange(4), 50)
    clustered = torch.as_tensor(np.eye(16)[objects] + 0.2 * rng.normal(size=(200, 16)), dtype=torch.float32)
    assert gaussian_agreement(clustered, objects) == 1.0
    # each object split in two directions by the views that trained it (the failure the bench measures)
    split = torch.as_tensor(np.eye(16)[objects * 2 + np.arange(200) % 2], dtype=torch.float32)
    assert gaussian_agreement(split, objects) == 1.0  # centres still separate: 45 degrees from each half
    noise = torch.as_tensor(rng.normal(size=(200, 16)), dtype=torch.float32)
    assert gaussian_agreement(noise, objects) < 0.6


@pytest.mark.slow
def test_bench_proto_saga_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_proto_saga, "OPTIONS", {"default": {"steps": 4, "pixels_per_step": 256},
                                                      "unit embeddings": {"steps": 4, "normalize": True}})
    out = tmp_path / "b"
    assert main(["bench", "proto-saga", "--size", "tiny", "--scene", "tabletop:1", "--curve", "2", "3",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["option"] for r in rows] == ["default, 2 steps", "default, 3 steps", "default", "unit embeddings"]
    for r in rows:
        for key in ("gauss_agree", "proto_agree", "pan_miou", "assoc_miou", "pan_gt_protos", "pan_2views"):
            assert 0 <= r[key] <= 1
    assert "Gaussian agreement" in (out / "results.md").read_text()

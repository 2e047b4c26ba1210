"""``gs-core bench iqgs`` wiring: both experiments run and report every row (a few training steps
only, so this checks the plumbing, not the scores; docs/benchmarks.md has the measured ones)."""

import functools
import json

import pytest

from gs_core.bench import iqgs as bench_iqgs
from gs_core.cli import main
from gs_core.methods.iqgs import TrainConfig


@pytest.mark.slow
def test_bench_iqgs_writes_both_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_iqgs, "TrainConfig", functools.partial(TrainConfig, steps=3))
    monkeypatch.setattr(bench_iqgs, "ABLATION", [(20, 8)])
    out = tmp_path / "b"
    assert main(["bench", "iqgs", "--size", "tiny", "--source", "tabletop:1", "--target", "tabletop:2",
                 "--scene", "tabletop:2", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert [(r["N_q"], r["D"]) for r in rows if r["experiment"] == "ablation"] == [(20, 8)]
    transfer = [(r["method"], r["setting"]) for r in rows if r["experiment"] == "transfer"]
    assert transfer == [(m, s) for m in ("iqgs", "iqgs-h") for s in ("in-scene", "swapped", "frozen")]
    for r in rows:
        assert 0 <= r["pan_miou"] <= 1 and 0 <= r["pv_miou"] <= 1
    md = (out / "results.md").read_text()
    assert "Ablation (Tab. 3)" in md and "Transfer (Tab. 2)" in md

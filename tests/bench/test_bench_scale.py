"""gs-core bench scale's measuring executor (the Ray runs themselves are the benchmark, not a test)."""

import os
import pickle

import numpy as np

from gs_core.bench.scale import MeasuringExecutor
from gs_core.parallel import LOCAL, Shared, run_all


def _square(item, shared):
    return shared.value[item] ** 2


def test_measuring_executor_passes_results_through_and_counts_bytes_and_tasks():
    shared = Shared(np.arange(100, dtype=np.float64))
    measuring = MeasuringExecutor(LOCAL)
    assert run_all(measuring, _square, [3, 5, 7], shared) == [9.0, 25.0, 49.0]
    assert measuring.tasks == 3 and list(measuring.cpu) == [os.getpid()] and measuring.peak_mb[os.getpid()] > 0
    assert measuring.bytes_out == len(pickle.dumps(shared, protocol=5)) + sum(len(pickle.dumps(i, protocol=5))
                                                                              for i in (3, 5, 7))
    assert measuring.bytes_in == 3 * len(pickle.dumps(np.float64(9.0), protocol=5))
    before = measuring.bytes_out
    assert run_all(measuring, _square, [2], shared) == [4.0]  # a Shared is sent once (RayExecutor keeps it)
    assert measuring.bytes_out == before + len(pickle.dumps(2, protocol=5))


def test_bench_scale_runs_a_limited_number_of_city_blocks(tmp_path, capsys):
    """The plumbing of ``bench scale --size xl`` on the tiny city: one of its two blocks runs."""
    import json

    import pytest

    pytest.importorskip("ray", reason="Ray is not installed (pip install 'gs-core[ray]')")
    from gs_core.cli import main

    out = tmp_path / "scale.json"
    assert main(["bench", "scale", "--layout", "city", "--size", "tiny", "--workers", "1", "--limit", "1",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["blocks_total"] == 2 and len(result["ran"]) == 1
    ran = result["ran"][0]
    assert ran["gaussians"] > 0 and ran["views"] > 0 and ran["instances"] > 0
    assert result["generation"]["views"] == ran["views"]  # only the views of the block that ran were made
    assert result["bytes_to_workers"] > 0 and result["bytes_from_workers"] > 0 and result["worker_peak_rss_mb"]
    assert set(result["projected_wall_s"]) == {"1", "2", "8", "32", "128"}
    assert "projected" in capsys.readouterr().out


def test_bench_scale_stitches_the_city_blocks_that_ran(tmp_path):
    import json

    import pytest

    pytest.importorskip("ray", reason="Ray is not installed (pip install 'gs-core[ray]')")
    from gs_core.cli import main

    out = tmp_path / "scale.json"
    assert main(["bench", "scale", "--layout", "city", "--size", "tiny", "--workers", "1", "--limit", "2",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert len(result["ran"]) == 2
    st = result["stitch"]
    assert st["instances_in_blocks"] == sum(r["instances"] for r in result["ran"])
    assert 0 < st["instances"] < st["instances_in_blocks"]  # ids of objects across the border joined

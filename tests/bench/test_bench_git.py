"""``gs-core bench git`` on a tiny cloud: its figures are consistent with the store it built."""

import numpy as np
import pytest

from gs_core.bench.git import _patch_map, run_bench


def test_patch_map_is_the_voronoi_partition():
    rng = np.random.default_rng(3)
    pm = _patch_map(30, 40, 7, rng)
    seeds = np.random.default_rng(3).uniform(0, 1, (7, 2)) * [40, 30]
    ys, xs = np.mgrid[:30, :40] + 0.5
    brute = ((xs[..., None] - seeds[:, 0]) ** 2 + (ys[..., None] - seeds[:, 1]) ** 2).argmin(-1)
    assert pm.dtype == np.int32 and np.array_equal(pm, brute)


def test_bench_git_reports_its_store():
    r = run_bench(3000, 3, 64, 48, 8, say=lambda *_: None, breakdown=True)
    assert 0 < r["visible_pairs"] <= 3000 * 3
    # per seen pair: its id and total (8 bytes); per entry: Gaussian, patch, weight (10 bytes), 1..8 entries
    assert 8 < r["bytes_per_pair"] <= 8 + 8 * 10
    assert r["store_mb"] * 2**20 == pytest.approx(r["bytes_per_pair"] * r["visible_pairs"])
    assert r["kernel_s"] > 0 and r["git_s"] > 0 and r["render_s"] > 0 and r["peak_rss_mb"] > 0

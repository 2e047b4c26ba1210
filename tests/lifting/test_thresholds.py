"""auto_threshold: the valley between two modes, Otsu when there is one mode, degenerate inputs."""

import numpy as np
import pytest

from gs_core.lifting.thresholds import ThresholdConfig, auto_threshold, otsu


@pytest.mark.parametrize("seed", range(5))
def test_bimodal_valley(seed):
    rng = np.random.default_rng(seed)
    # a large background mode and a small, well separated object mode (5% of the values)
    v = np.concatenate([rng.normal(0.0, 1.0, 20000), rng.normal(7.0, 0.6, 1000)])
    t = auto_threshold(v)
    assert t.method == "valley"
    assert 3.0 < t.value < 5.5
    assert ((v > t.value) == (np.arange(len(v)) >= 20000)).mean() > 0.999


def test_bimodal_valley_is_not_otsu():
    """Unequal, overlapping modes: the valley sits in the density minimum; Otsu is pulled towards the
    middle of the means, cutting into the small mode."""
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.normal(0.0, 1.0, 50000), rng.normal(5.0, 1.0, 5000)])
    t = auto_threshold(v)
    assert t.method == "valley"
    # the density minimum of 10 N(0,1) + N(5,1) lies at (25 + 2 ln 10) / 10 = 2.96
    assert abs(t.value - 2.96) < 0.4


def test_valley_below_the_peak():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(10.0, 1.0, 20000), rng.normal(2.0, 0.5, 1000)])
    assert auto_threshold(v).method == "otsu"  # nothing above the largest peak
    t = auto_threshold(v, ThresholdConfig(side="below"))
    assert t.method == "valley" and 3.5 < t.value < 7.0


def test_empty_gap_gives_its_middle():
    v = np.concatenate([np.full(100, 0.0), np.full(30, 1.0)])
    t = auto_threshold(v, ThresholdConfig(bins=100, smooth_bins=0))
    assert t.method == "valley" and abs(t.value - 0.5) < 0.02


@pytest.mark.parametrize("seed", range(5))
def test_unimodal_falls_back_to_otsu(seed):
    rng = np.random.default_rng(seed)
    for v in (rng.normal(0.0, 1.0, 20000), rng.exponential(1.0, 20000), rng.uniform(0, 1, 5000)):
        t = auto_threshold(v)
        assert t.method == "otsu"
        assert t.value == otsu(v)


def test_otsu_matches_brute_force():
    rng = np.random.default_rng(2)
    v = np.concatenate([rng.normal(0, 1, 300), rng.normal(3, 0.5, 100)])
    counts, edges = np.histogram(v, bins=32)
    best, best_t = -1.0, None
    for t in edges[1:-1]:
        a, b = v[v < t], v[v >= t]
        score = len(a) * len(b) * (a.mean() - b.mean()) ** 2 if len(a) and len(b) else -1
        if score > best:
            best, best_t = score, t
    # Otsu on bin centres vs on the raw values: the same edge or a neighbour
    assert abs(otsu(v, bins=32) - best_t) <= (edges[1] - edges[0]) + 1e-9


def test_degenerate_inputs():
    with pytest.raises(ValueError):
        auto_threshold(np.array([]))
    with pytest.raises(ValueError):
        auto_threshold(np.array([np.nan, np.inf]))
    t = auto_threshold(np.full(50, 0.3))
    assert t.method == "constant" and t.value == 0.3 and not (np.full(50, 0.3) > t.value).any()
    t = auto_threshold(np.array([1.0, 1.0, np.nan, 2.0, 2.0, 2.0]))
    assert 1.0 <= t.value < 2.0
    assert auto_threshold(np.array([5.0])).method == "constant"
    with pytest.raises(ValueError):
        auto_threshold(np.arange(4.0), ThresholdConfig(side="left"))


def test_top_side_finds_the_small_top_mode_above_several_bumps():
    """A text query's relevancy: every unrelated object is a bump of its own below the wanted mode;
    "above the largest peak" stops between two unrelated bumps, "top" below the wanted one."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0.15, 0.03, 3000), rng.normal(0.45, 0.03, 2000),
                             rng.normal(0.65, 0.03, 1200), rng.normal(0.97, 0.01, 150)])
    top = auto_threshold(scores, ThresholdConfig(side="top"))
    assert top.method == "valley" and 0.75 < top.value < 0.94
    above = auto_threshold(scores, ThresholdConfig(side="above"))
    assert above.value < 0.6  # the failure "top" exists for
    with pytest.raises(ValueError, match="side"):
        auto_threshold(scores, ThresholdConfig(side="sideways"))

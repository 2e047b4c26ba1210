"""Automatic thresholds for per-Gaussian (or per-pixel) scores.

Linear-inverse paper, "Auto Threshold Selection" (and its appendix H): locate the largest peak of
the score histogram and take the adjacent valley as the threshold; the valley stays identifiable
when the ideal hard threshold moves. Here: the histogram is smoothed with a Gaussian of
``smooth_bins``; walking from the largest peak towards ``side``, the first local minimum followed
by a significant rise (above Poisson noise of the smoothed counts, 4 standard deviations, and ``min_rise`` of the peak) is
the valley; a flat run of minima (an empty gap between modes) gives its middle. With no such
valley, Otsu's threshold (maximum between-class variance) is the fallback.

``side="top"`` is for scores whose wanted set is a small mode at the top and whose rest is not one
peak but several (a text query's relevancy: every unrelated object makes its own bump below): the
valley is sought below the highest significant mode instead of above the largest one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass
class ThresholdConfig:
    bins: int = 128
    smooth_bins: float = 2.0  # standard deviation of the Gaussian smoothing, in bins (0 = none)
    side: str = "above"  # valley above ("above") or below ("below") the largest peak, or below the top mode ("top")
    min_rise: float = 0.01  # the far side of a valley must rise by this share of the largest peak ...
    noise_z: float = 4.0  # ... and by this many standard deviations of (far count - valley count)


@dataclass
class Threshold:
    value: float
    method: str  # "valley" | "otsu" | "constant" (all values equal: nothing to separate)

    def __float__(self) -> float:
        return self.value


def otsu(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of ``values`` [M]: the bin edge maximising the between-class variance.

    Args:
        values: [M] float (any shape, flattened).
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    counts, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(counts)[:-1].astype(np.float64)  # class 0 = bins [0, i]
    w1 = counts.sum() - w0
    s0 = np.cumsum(counts * centres)[:-1]
    m0 = s0 / np.maximum(w0, 1)
    m1 = ((counts * centres).sum() - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2
    return float(edges[1:-1][int(np.argmax(between))])


def auto_threshold(values, config: ThresholdConfig = ThresholdConfig()) -> Threshold:
    """First valley after the largest peak of the smoothed histogram of ``values`` [M]; Otsu when
    there is none. Non-finite values are ignored. Select with ``values > threshold.value``.

    Args:
        values: [M] float (any shape or array-like, flattened).
    """
    if config.side not in ("above", "below", "top"):
        raise ValueError(f"side must be 'above', 'below' or 'top', got {config.side!r}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("no finite values to threshold")
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return Threshold(lo, "constant")
    counts, edges = np.histogram(v, bins=config.bins, range=(lo, hi))
    h = counts.astype(np.float64)
    if config.smooth_bins > 0:
        h = gaussian_filter1d(h, config.smooth_bins, mode="constant")
    # variance of a smoothed Poisson count: count * sum(kernel^2) = count / (2 sqrt(pi) sigma)
    gain = 1.0 / (2.0 * np.sqrt(np.pi) * config.smooth_bins) if config.smooth_bins > 0 else 1.0
    flip = config.side in ("below", "top")
    if flip:
        h = h[::-1]
    if config.side == "top":
        valley = _top_valley(h, config.min_rise, config.noise_z, gain)
    else:
        valley = _first_valley(h, config.min_rise, config.noise_z, gain)
    if valley is None:
        return Threshold(otsu(v, config.bins), "otsu")
    centre = valley if not flip else config.bins - 1 - valley
    return Threshold(float(edges[0] + (centre + 0.5) * (edges[1] - edges[0])), "valley")


def _first_valley(h: np.ndarray, min_rise: float, noise_z: float, gain: float) -> float | None:
    """Fractional bin index of the first significant valley right of the largest peak of ``h``."""
    n = len(h)
    peak = int(np.argmax(h))
    i = peak
    while i + 1 < n:
        start = i
        while i + 1 < n and h[i + 1] <= h[i]:  # descend (through flat runs)
            if h[i + 1] < h[i]:
                start = i + 1
            i += 1
        if i + 1 >= n:
            return None
        far = float(h[i + 1:].max())
        # Poisson noise of the difference; z = 4 because ``far`` is the maximum of many noisy bins
        needed = max(min_rise * h[peak], noise_z * np.sqrt(max(far + h[i], 1.0) * gain))
        if far - h[i] >= needed:
            return 0.5 * (start + i)
        while i + 1 < n and h[i + 1] >= h[i]:  # climb to the next local maximum and go on
            i += 1
    return None


def _top_valley(h: np.ndarray, min_rise: float, noise_z: float, gain: float) -> float | None:
    """Fractional bin index of the valley after the first significant mode of ``h`` (walking from
    index 0: the top scores when the histogram is flipped)."""
    n = len(h)
    i = 0
    while i < n and h[i] <= 0:
        i += 1
    while i + 1 < n:
        while i + 1 < n and h[i + 1] >= h[i]:  # climb to the mode
            i += 1
        peak = h[i]
        start = i
        while i + 1 < n and h[i + 1] <= h[i]:  # descend to the valley (through flat runs)
            if h[i + 1] < h[i]:
                start = i + 1
            i += 1
        if i + 1 >= n:
            return None
        needed = max(min_rise * h.max(), noise_z * np.sqrt(max(peak + h[i], 1.0) * gain))
        if peak - h[i] >= needed:
            return 0.5 * (start + i)
    return None

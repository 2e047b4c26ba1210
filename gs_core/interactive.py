"""The interactive-segmentation protocol: an automatic clicker and NoC@85 / NoC@90.

NoC@t is the number of clicks an automatic user needs before the selection's mask reaches IoU ``t``
with the true mask, capped at :data:`MAX_CLICKS` (an object never reaching ``t`` counts the cap), as
in the 2D protocol of interactive segmentation (Xu et al. 2016; RITM, Sofiiuk et al. 2022). Each next
click lands at the interior-most point (largest distance to the region's edge or the image border)
of the largest error region: positive on a missed part, negative on a wrong one. A pixel already
clicked is never clicked again: the field's clickers keep a map of the clicked pixels and zero the
distance transform there (``not_clicked_map`` in RITM's ``isegm/inference/clicker.py``, which
SimpleClick and FocalClick reuse), so where the selection did not change the next click moves to the
next interior-most pixel instead of repeating itself (a user would not click the same pixel twice).

Optionally (``slider=True``) the user may instead move the granularity slider one notch finer or
coarser, counted as one click; each step takes whichever of the click and the two notches gives the
highest IoU (a user who looks at the result before acting); a notch straight back to the level
just left is not offered.

Everything here is numpy: the caller supplies ``predict(clicks, level) -> mask`` (for the splats,
:meth:`gs_core.query.LabelLevels.from_clicks` rendered by :func:`gs_core.query.selection_mask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy import ndimage

from .metrics import iou

MAX_CLICKS = 20
THRESHOLDS = (0.85, 0.90)


@dataclass(frozen=True)
class Click:
    x: int
    y: int
    positive: bool


def next_click(pred: np.ndarray, gt: np.ndarray, clicked=()) -> Click | None:
    """The automatic user's next click for ``pred``, ``gt`` [H, W] bool: at the interior-most pixel
    of the largest connected error region (4-connected), positive when that region is a missed part of
    ``gt``, negative when it is wrongly selected. Pixels of ``clicked`` (clicks or (x, y) pairs) are
    never chosen again; a region whose pixels were all clicked gives way to the next largest. None when
    there is no error left to click."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    done = np.zeros(gt.shape, bool)
    for c in clicked:
        x, y = (c.x, c.y) if isinstance(c, Click) else c
        done[y, x] = True
    candidates = []  # (area, positive first on ties, region)
    for positive, error in ((True, gt & ~pred), (False, pred & ~gt)):
        regions, n = ndimage.label(error)
        if n == 0:
            continue
        areas = np.bincount(regions.ravel(), minlength=n + 1)[1:]
        candidates += [(int(areas[k]), positive, regions == k + 1) for k in range(n)]
    candidates.sort(key=lambda c: (-c[0], not c[1]))  # largest first; ties: the missed part (positive)
    for _, positive, region in candidates:
        if not (region & ~done).any():
            continue
        # distance to the nearest pixel outside the region, the image border counting as outside
        dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        dist[done] = -1.0
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        return Click(int(x), int(y), positive)
    return None


@dataclass
class ClickRun:
    """What the automatic user did on one object: IoU after each action (clicks and notches)."""

    ious: list[float] = field(default_factory=list)  # [actions]
    actions: list[str] = field(default_factory=list)  # "+", "-" (clicks), "finer", "coarser" (slider notches)
    levels: list[int] = field(default_factory=list)  # [actions] slider index after each action
    clicks: list[Click] = field(default_factory=list)  # every click, in order (one per "+" / "-" action)

    def noc(self, threshold: float, max_clicks: int = MAX_CLICKS) -> int:
        """Actions until IoU >= ``threshold`` (``max_clicks`` when never within the cap)."""
        hits = [k for k, v in enumerate(self.ious[:max_clicks]) if v >= threshold]
        return hits[0] + 1 if hits else max_clicks

    def reached(self, threshold: float, max_clicks: int = MAX_CLICKS) -> bool:
        return any(v >= threshold for v in self.ious[:max_clicks])

    @property
    def best_iou(self) -> float:
        return max(self.ious, default=0.0)


def run_clicker(predict: Callable[[list[Click], int], np.ndarray], gt: np.ndarray, start_level: int,
                n_levels: int = 1, slider: bool = False, target: float = max(THRESHOLDS),
                max_clicks: int = MAX_CLICKS) -> ClickRun:
    """Click until IoU >= ``target`` or ``max_clicks`` actions.

    ``predict(clicks, level)`` -> [H, W] bool: the selection's mask in the clicked view after
    ``clicks`` at slider index ``level`` (of ``n_levels``; starts at ``start_level``). ``gt`` [H, W]
    bool: the object's visible mask in that view. With ``slider``, each step may move the slider one
    notch instead of clicking (see the module docstring).
    """
    gt = np.asarray(gt, bool)
    if not gt.any():
        raise ValueError("the object is not visible in the clicked view")
    run, clicks, level = ClickRun(), [], start_level
    pred = np.zeros_like(gt)
    while len(run.ious) < max_clicks and (not run.ious or run.ious[-1] < target):
        click = next_click(pred, gt, clicks)
        options = []
        if click is not None:
            options.append(("+" if click.positive else "-", clicks + [click], level))
        if slider and clicks:  # a notch, but not straight back to the level just left
            back = run.levels[-2] if len(run.levels) > 1 and run.actions[-1] in ("finer", "coarser") else None
            options += [(name, clicks, level + step) for name, step in (("finer", -1), ("coarser", 1))
                        if 0 <= level + step < n_levels and level + step != back]
        if not options:
            break
        scored = []
        for name, c, lv in options:
            mask = np.asarray(predict(c, lv), bool)
            scored.append((iou(mask, gt), name, c, lv, mask))
        best = max(range(len(scored)), key=lambda k: scored[k][0])  # ties: the click (listed first)
        value, name, clicks, level, pred = scored[best]
        run.ious.append(float(value))
        run.actions.append(name)
        run.levels.append(level)
    run.clicks = clicks
    return run

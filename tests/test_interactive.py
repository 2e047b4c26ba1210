"""The automatic clicker and NoC@85/90 (gs_core.interactive) on hand-made masks whose answers are known."""

import numpy as np
import pytest

from gs_core.interactive import MAX_CLICKS, Click, ClickRun, next_click, run_clicker


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_next_click_positive_at_the_centre_of_the_largest_miss():
    gt = _box(40, 60, 5, 16, 5, 16) | _box(40, 60, 20, 25, 40, 45)  # 11x11 and 5x5 squares
    assert next_click(np.zeros_like(gt), gt) == Click(10, 10, True)  # the centre of the 11x11 square
    # the big square found: the small one is the remaining miss
    assert next_click(_box(40, 60, 5, 16, 5, 16), gt) == Click(42, 22, True)
    assert next_click(gt, gt) is None


def test_next_click_negative_on_the_largest_wrong_region():
    gt = _box(40, 60, 5, 16, 5, 16)
    pred = gt | _box(40, 60, 20, 39, 35, 54)  # a wrong 19x19 block: no miss at all
    c = next_click(pred, gt)
    assert not c.positive and pred[c.y, c.x] and not gt[c.y, c.x]
    assert (c.x, c.y) == (44, 29)


def test_next_click_counts_the_image_border_as_an_edge():
    gt = _box(20, 40, 0, 20, 0, 10)  # a strip along the left border, 10 px wide
    c = next_click(np.zeros_like(gt), gt)
    assert c.positive and c.x in (4, 5)  # middle of the strip, not on the border column


def test_noc_counts():
    run = ClickRun(ious=[0.5, 0.86, 0.89, 0.93])
    assert run.noc(0.85) == 2 and run.noc(0.90) == 4 and run.reached(0.9)
    never = ClickRun(ious=[0.1] * MAX_CLICKS)
    assert never.noc(0.9) == MAX_CLICKS and not never.reached(0.9)
    assert ClickRun(ious=[0.95]).noc(0.9) == 1


def test_run_clicker_with_an_ideal_segmenter():
    """The segmenter returns the connected parts of the object under positive clicks, minus nothing:
    100 + 16 pixels, so one click gives 100/116 = 0.862 (>= 0.85, < 0.90) and the second 1.0."""
    from scipy import ndimage

    gt = _box(40, 60, 2, 12, 2, 12) | _box(40, 60, 30, 34, 50, 54)
    parts, _ = ndimage.label(gt)

    def predict(clicks, level):
        keep = {parts[c.y, c.x] for c in clicks if c.positive} - {0}
        return np.isin(parts, list(keep))

    run = run_clicker(predict, gt, start_level=0)
    assert run.ious == pytest.approx([100 / 116, 1.0])
    assert run.noc(0.85) == 1 and run.noc(0.90) == 2 and run.actions == ["+", "+"]
    assert [c.positive for c in run.clicks] == [True, True] and run.levels == [0, 0]


def test_run_clicker_slider_notch_counts_as_a_click():
    """A segmenter whose click selects object + support at level 1 and the object alone at level 0;
    negative clicks change nothing (the earlier rule when both fall in one instance removes all):
    with the slider the second action is a notch finer, without it the cap is reached."""
    gt = _box(30, 30, 5, 15, 5, 15)
    merged = gt | _box(30, 30, 15, 30, 0, 30)

    def predict(clicks, level):
        if not any(c.positive for c in clicks):
            return np.zeros_like(gt)
        if any(not c.positive for c in clicks):
            return np.zeros_like(gt)
        return gt if level == 0 else merged

    slider = run_clicker(predict, gt, start_level=1, n_levels=2, slider=True)
    assert slider.actions == ["+", "finer"] and slider.noc(0.9) == 2 and slider.levels == [1, 0]
    clicks_only = run_clicker(predict, gt, start_level=1, n_levels=2, slider=False)
    assert clicks_only.noc(0.9) == MAX_CLICKS and len(clicks_only.ious) == MAX_CLICKS
    assert clicks_only.actions[:2] == ["+", "-"]


def test_run_clicker_rejects_an_invisible_object():
    with pytest.raises(ValueError, match="not visible"):
        run_clicker(lambda c, lv: np.zeros((4, 4), bool), np.zeros((4, 4), bool), 0)


def test_next_click_never_clicks_a_pixel_twice():
    """Where a click changed nothing, the field's clickers (RITM's ``not_clicked_map``) move on to the next
    interior-most pixel of the error region rather than click the same one again."""
    gt = _box(40, 60, 5, 16, 5, 16)
    first = next_click(np.zeros_like(gt), gt)
    second = next_click(np.zeros_like(gt), gt, [first])
    assert first == Click(10, 10, True) and second.positive and (second.x, second.y) != (10, 10)
    assert gt[second.y, second.x] and max(abs(second.x - 10), abs(second.y - 10)) == 1  # the next most interior
    # every pixel of the only error region clicked: no click left to make
    assert next_click(np.zeros((2, 2), bool), np.ones((2, 2), bool), [(0, 0), (0, 1), (1, 0), (1, 1)]) is None


def test_run_clicker_does_not_repeat_a_click_that_changed_nothing():
    gt = _box(20, 20, 4, 15, 4, 15)
    run = run_clicker(lambda clicks, level: np.zeros_like(gt), gt, start_level=0, max_clicks=6)
    assert len(run.clicks) == 6 and len({(c.x, c.y) for c in run.clicks}) == 6
    assert all(c.positive and gt[c.y, c.x] for c in run.clicks)

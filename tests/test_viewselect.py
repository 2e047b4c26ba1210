"""Covering view subsets: spread over positions and directions, the cover shrinks with more views."""

import numpy as np
import pytest

from gs_core.camera import Camera
from gs_core.viewselect import cover_radius, covering_views, views_for_budget


def _ring(n=24):
    return [Camera.look_at((3 * np.cos(a), 3 * np.sin(a), 1.0), (0, 0, 0)) for a in np.linspace(0, 2 * np.pi, n,
                                                                                                 endpoint=False)]


def test_covering_views_spread_around_a_ring():
    cams = _ring()
    pick = covering_views(cams, 4)
    assert len(pick) == 4 and pick == sorted(pick)
    gaps = np.diff(sorted(pick + [pick[0] + 24]))
    assert gaps.min() >= 4  # no two chosen views are neighbours on the ring (even spacing is 6)
    radii = [cover_radius(cams, covering_views(cams, n)) for n in (2, 4, 8, 24)]
    assert all(a >= b for a, b in zip(radii, radii[1:])) and radii[-1] == 0


def test_direction_counts_not_only_position():
    """Of four cameras at (nearly) one spot, two looking each way, two views covering them look both ways."""
    cams = [Camera.look_at((0, 0, 1), (1, 0, 1)), Camera.look_at((0, 0, 1), (-1, 0, 1)),
            Camera.look_at((0.01, 0, 1), (1, 0, 1)), Camera.look_at((0.01, 0, 1), (-1, 0, 1))]
    pick = covering_views(cams, 2)
    looks = {round(float(cams[k].camera_to_world[0, 2]), 3) for k in pick}
    assert looks == {1.0, -1.0}


def test_budget():
    assert views_for_budget(60, 30 * 60, 300) == 30
    assert views_for_budget(600, 30 * 60, 300) == 8  # at least 8
    assert views_for_budget(600, 30 * 60, 5) == 5
    with pytest.raises(ValueError):
        covering_views(_ring(), 0)

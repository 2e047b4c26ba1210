"""One colour table for instances: the report's pictures and Blender's preview show an id alike."""

import numpy as np

from gs_core.instance_colors import instance_colors, srgb_to_linear
from gs_core.viz import label_colors


def test_an_id_keeps_its_colour_and_none_is_black():
    ids = np.array([[-1, 0, 1], [7, 0, 123456]])
    rgb = instance_colors(ids)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all() and (rgb[0, 1] == rgb[1, 1]).all()
    assert np.array_equal(label_colors(ids), rgb)  # the report's pictures use the same table
    many = instance_colors(np.arange(200))
    assert len(np.unique(many, axis=0)) == 200 and many.min() >= 60  # distinct, none near black


def test_linear_colours_invert_srgb():
    rgb = instance_colors(np.arange(50))
    lin = srgb_to_linear(rgb)
    c = lin.astype(np.float64)
    back = np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055) * 255
    assert np.abs(back - rgb).max() < 1e-3

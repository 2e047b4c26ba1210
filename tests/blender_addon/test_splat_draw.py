"""The viewport draw (blender_addon.splat_draw) without a GPU: its GLSL compiles (glslangValidator, with the
declarations Blender's create-info adds), uses gs_core.splat_view's constants, and what it gathers from the
scene is the objects' splats with hidden ones left out, the selection tinted and instance colours while
previewing. The draw call itself runs headless in test_splat_draw_gl (EGL); the math it runs is
splat_display.project_packed, tested against gs_core's render in test_splat_display and tests/test_splat_view.py."""

import shutil
import subprocess

import numpy as np
import pytest

from blender_addon import splat_draw
from gs_core import splat_view

GLSLANG = shutil.which("glslangValidator")


@pytest.mark.skipif(GLSLANG is None, reason="no glslangValidator (apt install glslang-tools)")
@pytest.mark.parametrize("name", ["splat", "over"])
def test_shaders_compile(tmp_path, name):
    if name == "splat":
        parts = (splat_draw.SPLAT_CONSTANTS, splat_draw.SPLAT_SAMPLERS, splat_draw.SPLAT_VARYINGS,
                 (("VEC2", "corner"),), splat_draw.SPLAT_VERTEX, splat_draw.SPLAT_FRAGMENT)
    else:
        parts = ((), splat_draw.OVER_SAMPLERS, (), (("VEC2", "pos"),), splat_draw.OVER_VERTEX, splat_draw.OVER_FRAGMENT)
    constants, samplers, varyings, vertex_in, vertex, fragment = parts
    for stage, source in (("vert", vertex), ("frag", fragment)):
        path = tmp_path / f"{name}.{stage}"
        path.write_text(splat_draw.glsl_declarations(constants, samplers, varyings,
                                                     "vertex" if stage == "vert" else "fragment", vertex_in) + source)
        done = subprocess.run([GLSLANG, str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


def test_shader_uses_splat_views_constants():
    source = splat_draw.SPLAT_VERTEX + splat_draw.SPLAT_FRAGMENT
    assert f"+ {splat_view.EPS2D};" in source and f"ceil({splat_view.RADIUS_SIGMAS} *" in source
    assert f"min({splat_view.ALPHA_MAX}," in source and "alpha < 1.0 / 255.0" in source
    assert f"{splat_view.FOV_CLAMP * 0.5} * W / fx" in source and "tz < 1e10" in source and splat_view.FAR_PLANE == 1e10


@pytest.mark.blender
def test_gather_leaves_hidden_out_tints_the_selection_and_previews_instances(bpy, imported):
    from blender_addon import edit_ops, segmentation, splat_display, splat_object
    from blender_addon import splat_attributes as sa

    obj, table, _ = imported(n=40, degree=1, seed=5)
    assert obj.display_type == 'BOUNDS'  # the Gaussians are drawn: no spheres in front of them
    bpy.context.scene.gs_draw_gaussians = False
    assert obj.display_type == 'TEXTURED'
    bpy.context.scene.gs_draw_gaussians = True
    hidden = np.zeros(40, bool)
    hidden[:5] = True
    edit_ops.hide_splats(obj, hidden)
    selected = np.zeros(40, bool)
    selected[10:20] = True
    splat_object.write_attributes(obj.data, {".selection": sa.Attribute("BOOLEAN", selected)})
    (shown,) = splat_draw.gather(bpy.context, [obj])
    assert len(shown) == 35
    plain = splat_display.object_splats(splat_object.read_attributes(obj.data, splat_display.attribute_names(
        [a.name for a in obj.data.attributes])), splat_object.matrix_of(obj))
    np.testing.assert_array_equal(shown.means, plain.means)
    assert np.array_equal(shown.sh[:5], plain.sh[:5]) and not np.allclose(shown.sh[5:15, 0], plain.sh[5:15, 0])
    colors = np.tile(np.array([0.2, 0.4, 0.6, 1.0], np.float32), (40, 1))
    splat_object.write_attributes(obj.data, {segmentation.PREVIEW: sa.Attribute("FLOAT_COLOR", colors)})
    bpy.context.scene.gs_segment["preview"] = True  # the property's value, without the backend round trip
    (preview,) = splat_draw.gather(bpy.context, [obj])
    assert preview.sh.shape == (35, 1, 3)
    dc = preview.sh[15:, 0] * splat_display.sh.SH_C0 + 0.5  # unselected: the instance colour (display)
    np.testing.assert_allclose(dc, np.tile(splat_display.linear_to_srgb(np.array([0.2, 0.4, 0.6])), (20, 1)),
                               atol=1e-6)
    assert splat_draw.PREVIEW == segmentation.PREVIEW

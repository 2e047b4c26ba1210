"""The sidebar panel (panels never draw in background Blender): its draw code runs against a
recording layout, with and without an active splat object, and offers only registered operators
with valid icons."""

from types import SimpleNamespace

import pytest

pytestmark = pytest.mark.blender


class RecordingLayout:
    """Stands in for bpy.types.UILayout: every container is itself, calls are recorded."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self
        return record


def draw(bpy):
    from blender_addon.panel import GS_PT_splats

    layout = RecordingLayout()
    GS_PT_splats.draw(SimpleNamespace(layout=layout), bpy.context)
    return layout.calls


def test_panel_draws_with_and_without_a_splat_object(bpy, imported):
    icons = bpy.types.UILayout.bl_rna.functions["operator"].parameters["icon"].enum_items.keys()
    empty = draw(bpy)
    assert ("label", (), {"text": "No splat object active"}) in empty
    imported(n=10)
    calls = draw(bpy)
    assert ("label", (), {"text": "scene: 10 splats", "icon": 'POINTCLOUD_DATA'}) in calls
    operators = [c for c in calls if c[0] == "operator"]
    assert len(operators) == 15  # 8 splat edits, Render Splats, prepare, click, text, and the selection's separate/delete/hide
    for _, (idname,), kwargs in operators:
        category, name = idname.split(".")
        getattr(getattr(bpy.ops, category), name).get_rna_type()  # registered
    for _, _, kwargs in calls:
        assert kwargs.get("icon", 'NONE') in icons
    settings = bpy.context.scene.gs_segment
    for _, args, _ in [c for c in calls if c[0] == "prop" and c[1][0] == settings]:
        assert args[1] in settings.bl_rna.properties  # a real setting
    assert any("gs_core Python" in str(c) for c in calls)  # backend hint until a path is set
    # the click's gestures, the refine one included
    for line in ("Shift: add another object", "Shift+Ctrl: refine: add a missed part", "Ctrl: remove"):
        assert ("label", (), {"text": line}) in calls

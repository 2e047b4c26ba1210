"""Segmentation in Blender through the real gs_core backend (blender_addon.segmentation), headless:
Prepare in background mode binds the imported object; Click to Select with explicit view matrices and
a pixel selects exactly what the library selects for that camera (also with the object moved), shift
adds another object whole, shift+ctrl refines (a part of it) and ctrl removes; the granularity walk is
monotonic; the selection separates into its own object; the preview leaves the splat data alone; the text
query and a crashing backend report errors and leave the scene as it was."""

import numpy as np
import pytest

pytestmark = pytest.mark.blender


@pytest.fixture
def prepared(bpy, tiny_work, tmp_path):
    """The tiny dataset's scene.ply imported and prepared (git-consistent) through the operators."""
    dataset, _ = tiny_work
    assert bpy.ops.gs_splats.import_ply(filepath=str(dataset / "scene.ply")) == {'FINISHED'}
    obj = bpy.context.active_object
    s = bpy.context.scene.gs_segment
    s.dataset, s.work_dir, s.method = str(dataset), str(tmp_path / "work"), 'git-consistent'
    assert bpy.ops.gs_splats.prepare() == {'FINISHED'}
    return obj, s


def library_rows(work, camera, positive, negative=(), level=0.0):
    """What gs_core itself selects for these clicks in this camera (at the first grid level)."""
    from gs_core.engine import project
    from gs_core.pipeline.segment import load_levels
    from gs_core.pipeline.workdir import WorkDir
    from gs_core.query import from_clicks
    from gs_core.scene import GaussianScene

    wd = WorkDir(work, must_exist=True)
    labels = load_levels(wd).at(level)
    proj = project(GaussianScene.load(wd.scene_path).to_gaussians(), camera)
    return np.flatnonzero(from_clicks(proj, labels, np.array(positive), np.array(negative).reshape(-1, 2)).selected)


def _library_levels_rows(work, camera, positive, level=0.0):
    """What gs_core selects for these positive clicks in order, as the server answers them (the work
    folder's levels, the scene's centres and colours)."""
    from gs_core.engine import project
    from gs_core.pipeline.segment import load_levels
    from gs_core.pipeline.workdir import WorkDir
    from gs_core.query import pixel_weights
    from gs_core.scene import GaussianScene

    wd = WorkDir(work, must_exist=True)
    scene = GaussianScene.load(wd.scene_path)
    proj = project(scene.to_gaussians(), camera)
    sel = load_levels(wd).from_clicks(level, pixel_weights(proj, np.array(positive)), means=scene.means,
                                      colors=scene.sh_dc)
    return np.flatnonzero(sel.selected)


def selected_index(obj):
    from blender_addon import splat_object

    attrs = splat_object.read_attributes(obj.data, [".selection", "gs:index"])
    return np.sort(attrs["gs:index"][attrs[".selection"]])


def click(bpy, camera, pixel, mode='SET', obj_matrix=None):
    from blender_addon import view_camera

    cam = {"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy, "width": camera.width,
           "height": camera.height, "world_to_camera": camera.world_to_camera}
    view, proj = view_camera.view_matrices(cam, obj_matrix)
    return bpy.ops.gs_splats.click_select(pixel=pixel, region_size=(camera.width, camera.height), mode=mode,
                                          view_matrix=view.ravel().tolist(), window_matrix=proj.ravel().tolist())


def test_prepare_in_background_binds_the_object(prepared, tmp_path):
    obj, s = prepared
    assert s.work == str(tmp_path / "work") and obj["gs_work"] == s.work
    assert s.status.startswith(f"Prepared {len(obj.data.points):,} splats") and not s.running
    assert (tmp_path / "work" / "manifest.json").is_file()


def test_click_select_matches_the_library_and_adds_removes(bpy, prepared, tmp_path):
    from gs_core.pipeline.workdir import WorkDir

    obj, s = prepared
    s["level"] = 0.0  # (no live re-query: nothing clicked yet)
    cam = WorkDir(s.work).cameras()[0]
    assert click(bpy, cam, (30, 20)) == {'FINISHED'}
    first = library_rows(s.work, cam, [[30, 20]])
    assert len(first) > 0 and np.array_equal(selected_index(obj), first)
    # the object moved and turned: the same view of it selects the same splats
    obj.location, obj.rotation_euler = (0.5, -0.2, 1.0), (0.0, 0.3, 0.9)
    bpy.context.view_layer.update()
    matrix = np.array(obj.matrix_world)
    assert click(bpy, cam, (30, 20), obj_matrix=matrix) == {'FINISHED'}
    assert np.array_equal(selected_index(obj), first)
    # shift adds what the library's second positive click adds: another object's whole instance (and the
    # splats it points at), however large against the selection; ctrl removes the first one again
    other = next(p for p in [(10, 40), (50, 40), (5, 5), (60, 10), (32, 44)]
                 if not np.isin(library_rows(s.work, cam, [p]), first).any() and len(library_rows(s.work, cam, [p])))
    assert click(bpy, cam, other, 'ADD', matrix) == {'FINISHED'}
    both = _library_levels_rows(s.work, cam, [[30, 20], list(other)])
    assert np.array_equal(selected_index(obj), both) and np.isin(first, both).all() and len(both) > len(first)
    assert np.array_equal(both, np.union1d(first, library_rows(s.work, cam, [other])))
    assert click(bpy, cam, (30, 20), 'REMOVE', matrix) == {'FINISHED'}
    assert np.array_equal(selected_index(obj), library_rows(s.work, cam, [other]))
    with pytest.raises(RuntimeError, match="outside the 64x48 view"):
        click(bpy, cam, (64, 3), 'SET', matrix)
    assert np.array_equal(selected_index(obj), library_rows(s.work, cam, [other]))  # unchanged


def test_refine_click_adds_a_part_where_shift_adds_the_other_object_whole(bpy, prepared, monkeypatch):
    """A click on a small object, then on another more than twice its size: shift (ADD) selects the
    library's rows with that object whole, shift+ctrl (REFINE) sends the rule ``split-support`` and
    selects the library's rows with only a part of it; a plain shift-click sends no rule (an older
    server's request). The modifiers map to the gestures as the modal operator reads them."""
    from blender_addon import segmentation
    from click_scenes import add_and_refine_clicks
    from gs_core.pipeline.workdir import WorkDir

    assert [segmentation.click_mode(shift, ctrl) for shift, ctrl in [(0, 0), (1, 0), (1, 1), (0, 1)]] == \
        ['SET', 'ADD', 'REFINE', 'REMOVE']
    obj, s = prepared
    s["level"] = 0.5
    cam = WorkDir(s.work).cameras()[0]
    a, b, add, refine = add_and_refine_clicks(s.work, cam)
    assert np.isin(refine, add).all() and len(refine) < len(add)
    sent = []
    client = segmentation.backend(bpy.context)
    call = client.call
    monkeypatch.setattr(client, "call", lambda cmd, **args: (sent.append((cmd, args)), call(cmd, **args))[1])
    assert click(bpy, cam, a) == {'FINISHED'} and click(bpy, cam, b, 'ADD') == {'FINISHED'}
    assert np.array_equal(selected_index(obj), add) and "rule" not in sent[-1][1]
    assert click(bpy, cam, a) == {'FINISHED'} and click(bpy, cam, b, 'REFINE') == {'FINISHED'}
    assert sent[-1][0] == "query_pixels" and sent[-1][1]["rule"] == "split-support" and sent[-1][1]["append"]
    assert np.array_equal(selected_index(obj), refine) and s.status.startswith(f"{len(refine):,} splats selected (part of")
    # a backend without the rule field (older than the add-on) would take a refine click as an addition:
    # the click is refused, saying so, before anything is sent, and the selection stays
    assert "click-rule" in client.features
    monkeypatch.setattr(client, "features", frozenset())
    count = len(sent)
    with pytest.raises(RuntimeError, match="refine clicks need a newer backend"):
        click(bpy, cam, a, 'REFINE')
    assert len(sent) == count and np.array_equal(selected_index(obj), refine)


def test_a_split_instance_says_part_of_it_in_the_status(bpy, prepared):
    """A click and a ctrl-click on one instance of the finest level: the selection is the library's 3D
    split of it, and the status line says a part of the instance is selected (a plain click's does not)."""
    from gs_core.engine import project
    from gs_core.pipeline.segment import load_levels
    from gs_core.pipeline.workdir import WorkDir
    from gs_core.query import pixel_labels, pixel_weights
    from gs_core.scene import GaussianScene

    obj, s = prepared
    s["level"] = 0.0
    wd = WorkDir(s.work)
    cam, levels, scene = wd.cameras()[0], load_levels(wd), GaussianScene.load(wd.scene_path)
    proj = project(scene.to_gaussians(), cam)
    grid = np.stack(np.meshgrid(np.arange(2, cam.width, 4), np.arange(2, cam.height, 4)), -1).reshape(-1, 2)
    owner = pixel_labels(proj, levels.labels[0].astype(np.int64), grid)
    big = int(np.bincount(owner[owner >= 0]).argmax())
    on = grid[owner == big]
    i, j = np.unravel_index(np.argmax(np.linalg.norm(on[:, None] - on[None], axis=-1)), (len(on), len(on)))
    pos, neg = tuple(int(v) for v in on[i]), tuple(int(v) for v in on[j])
    assert click(bpy, cam, pos) == {'FINISHED'}
    assert f"(instance {big} at" in s.status and "part of" not in s.status
    assert click(bpy, cam, neg, 'REMOVE') == {'FINISHED'}
    expected = levels.from_clicks(0.0, pixel_weights(proj, np.array([pos])), pixel_weights(proj, np.array([neg])),
                                  means=scene.means, colors=scene.sh_dc)
    got = selected_index(obj)
    assert np.array_equal(got, np.flatnonzero(expected.selected)) and 0 < len(got) < int((levels.labels[0] == big).sum())
    assert s.status.startswith(f"{len(got):,} splats selected (part of instance {big} at granularity 0.00")


def test_status_line_names_a_part_only_when_the_server_says_so(bpy):
    from blender_addon.segmentation import status_line

    whole = {"instances": [3, 5], "level": 0.5}
    assert status_line(1200, whole, 0.2) == "1,200 splats selected (instances 3, 5 at granularity 0.50)"
    assert status_line(7, {**whole, "partial": True}, 0.2) == "7 splats selected (part of instances 3, 5 at granularity 0.50)"
    assert status_line(0, {"instances": []}, 0.25) == "0 splats selected (instances none at granularity 0.25)"


def test_granularity_is_monotonic_and_separate_takes_the_selection(bpy, prepared):
    from gs_core.pipeline.workdir import WorkDir

    obj, s = prepared
    s["level"] = 0.0
    cam = WorkDir(s.work).cameras()[0]
    click(bpy, cam, (30, 20))
    previous, sizes = selected_index(obj), []
    for level in np.linspace(0, 1, 11):
        s.level = float(level)  # the slider: a live re-query
        now = selected_index(obj)
        assert np.isin(previous, now).all(), level
        previous = now
        sizes.append(len(now))
    assert sizes[-1] > sizes[0]
    assert bpy.ops.gs_splats.query_level(level=0.5) == {'FINISHED'}
    chosen = selected_index(obj)
    n = len(obj.data.points)
    assert bpy.ops.gs_splats.separate() == {'FINISHED'}
    part = bpy.context.active_object
    assert part is not obj and part["gs_work"] == s.work  # the part stays bound: later clicks reach it
    from blender_addon import splat_object

    assert np.array_equal(np.sort(splat_object.read_attributes(part.data, ["gs:index"])["gs:index"]), chosen)
    assert len(obj.data.points) == n - len(chosen)


def test_preview_toggles_without_touching_the_splats(bpy, prepared, tmp_path):
    from gs_core.io.ply import read_ply_table

    obj, s = prepared
    material = bpy.data.materials["GS Splat Colour"]
    node = next(n for n in material.node_tree.nodes if n.bl_idname == 'ShaderNodeAttribute')
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "before.ply"))
    s.preview = True
    assert node.attribute_name == "gs:preview" and "gs:preview" in obj.data.attributes
    colours = np.array([c.color[:] for c in obj.data.attributes["gs:preview"].data])
    assert len(np.unique(colours.round(4), axis=0)) > 3  # several instances, several colours
    bpy.ops.gs_splats.export_ply(filepath=str(tmp_path / "during.ply"))
    s.preview = False
    assert node.attribute_name == "gs:color"
    before, during = read_ply_table(tmp_path / "before.ply"), read_ply_table(tmp_path / "during.ply")
    for name in before.names:
        assert before.columns[name].tobytes() == during.columns[name].tobytes(), name


def test_text_query_and_a_crashing_backend_report_and_change_nothing(bpy, prepared):
    import sys

    from blender_addon import backend_client, segmentation
    from gs_core.pipeline.workdir import WorkDir

    obj, s = prepared
    s.text = "the red mug"
    with pytest.raises(RuntimeError, match="no CLIP features in WORK"):
        bpy.ops.gs_splats.text_query()
    cam = WorkDir(s.work).cameras()[0]
    click(bpy, cam, (30, 20))
    before = selected_index(obj)
    # the warm backend is replaced by one that dies on the next request
    python = segmentation.interpreter(bpy.context)
    segmentation._backends[python].stop()
    segmentation._backends[python] = backend_client.Backend(sys.executable, ("-c", (
        "import json, sys; print(json.dumps({'event': 'ready', 'version': 'x', 'protocol': 1}), flush=True); "
        "sys.stdin.readline(); sys.exit('Segmentation fault in a kernel')")))
    with pytest.raises(RuntimeError, match=r"the backend exited \(status 1\): Segmentation fault in a kernel"):
        click(bpy, cam, (10, 40), 'ADD')
    assert np.array_equal(selected_index(obj), before)
    segmentation._backends.pop(python).stop()


def test_prepare_reports_missing_settings(bpy, imported):
    imported(n=20)
    with pytest.raises(RuntimeError, match="choose the dataset folder"):
        bpy.ops.gs_splats.prepare()
    bpy.context.scene.gs_segment.dataset = "/no/such/folder"
    with pytest.raises(RuntimeError, match="/no/such/folder: dataset folder does not exist"):
        bpy.ops.gs_splats.prepare()
    assert not bpy.ops.gs_splats.click_select.poll()  # nothing prepared: nothing to click

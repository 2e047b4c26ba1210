"""``gs-core demo --blender OUT.blend``: the main job inside Blender, headless, through the add-on's
own operators (the ``bpy`` wheel, the add-on from this checkout, the backend as a subprocess):

1. build the built-in synthetic sample (``OUT_demo/dataset``, as ``gs-core demo``);
2. import its ``scene.ply`` (File > Import > Gaussian Splats);
3. **Prepare** (the backend: instance tracing, consistent instances) into ``OUT_demo/work``;
4. **Click to select** the largest table-top item at its centre pixel in the training view where it is
   largest, the viewport set to that camera (explicit view matrices, as a click would give); when the
   selection takes more than a tenth of the scene (the item's support came along), walk the
   granularity slider toward parts in steps of 0.1 until it lets go, as an artist would;
5. **Separate** it into its own object and move it up;
6. **Export** the recomposed scene (``OUT_demo/recomposed.ply``), **re-import** it and check it against
   the numpy transform of the moved rows;
7. save ``OUT.blend`` and render ``OUT.png`` with Cycles on the CPU, the splats drawn as Gaussians
   (the add-on's *Render Splats*: the backend's engine renders the splat layer of each frame and the
   compositor combines it with Blender's render by depth);
8. write ``OUT_reference.png``: gs_core's own render of the exported recomposed PLY from the same
   camera at the same size, and check the two agree (PSNR >= 30 dB; no mesh in this scene).

Each step prints its time; a failed check is an error, not a warning.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import UserError

LIFT = 0.25  # how far the separated object is moved up, in scene units (metres in the synthetic world)
RENDER_SCALE = 4  # render at this multiple of the dataset's image size
SAMPLES = 16
MAX_SHARE = 0.1  # a click selection above this share of the scene is taken to include the support
MIN_PSNR = 30.0  # OUT.png against OUT_reference.png


def camera_object(bpy, camera, name: str = "Demo camera"):
    """A Blender camera object showing the pinhole ``camera`` (gs_core.camera.Camera) exactly."""
    from blender_addon import view_camera

    data = bpy.data.cameras.new(name)
    data.sensor_fit, data.sensor_width = 'HORIZONTAL', 36.0
    data.lens = camera.fx * data.sensor_width / camera.width
    data.shift_x = (camera.width / 2 - camera.cx) / camera.width
    data.shift_y = (camera.cy - camera.height / 2) / camera.width
    obj = bpy.data.objects.new(name, data)
    view, _ = view_camera.view_matrices({"fx": camera.fx, "fy": camera.fy, "cx": camera.cx, "cy": camera.cy,
                                         "width": camera.width, "height": camera.height,
                                         "world_to_camera": camera.world_to_camera})
    obj.matrix_world = np.linalg.inv(view).T.tolist()  # (mathutils takes rows; .T undoes numpy's layout)
    return obj


def run(args, blend: Path) -> int:
    from rich.console import Console

    from .. import synth
    from ..dataset import Dataset
    from .click import choose_click
    from ..io.ply import read_ply_table

    console = Console()
    t_start = time.perf_counter()
    times: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        times[name] = time.perf_counter() - started
        console.print(f"  {name}: {times[name]:.1f} s", highlight=False)

    if blend.suffix != ".blend":
        raise UserError(f"--blender {blend}: give a .blend file name")
    blend = blend.absolute()  # Blender saves a render only to a path with a folder ("edit.png" fails)
    from ..blender_host import import_addon

    bpy, blender_addon = import_addon("--blender")
    from blender_addon import segmentation, splat_object, splat_render, view_camera

    out = blend.parent / f"{blend.stem}_demo"
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    world = synth.build_dataset(out / "dataset", synth.SynthConfig.sized(args.size, layout=args.layout, seed=args.seed),
                                synth.MaskNoise.level(args.noise), backend=args.backend)
    ds, gt = Dataset.load(out / "dataset"), synth.GroundTruth.load(out / "dataset")
    step("sample dataset", t)
    del world

    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    try:
        context = bpy.context
        t = time.perf_counter()
        _ok(bpy.ops.gs_splats.import_ply(filepath=str(out / "dataset" / "scene.ply")), "import")
        scene_obj = context.active_object
        n_splats = len(scene_obj.data.points)
        step(f"import ({n_splats:,} splats)", t)

        t = time.perf_counter()
        settings = context.scene.gs_segment
        settings.dataset, settings.work_dir, settings.method = str(out / "dataset"), str(out / "work"), 'git-consistent'
        _ok(bpy.ops.gs_splats.prepare(), "prepare")
        console.print(f"  {settings.status}", highlight=False)
        step("prepare (backend)", t)

        t = time.perf_counter()
        click = choose_click(ds, gt)
        cam = ds.cameras[click.view]
        view, proj = view_camera.view_matrices({"fx": cam.fx, "fy": cam.fy, "cx": cam.cx, "cy": cam.cy,
                                                "width": cam.width, "height": cam.height,
                                                "world_to_camera": cam.world_to_camera},
                                               splat_object.matrix_of(scene_obj))
        settings["level"] = 0.5
        _ok(bpy.ops.gs_splats.click_select(pixel=click.xy, region_size=(cam.width, cam.height), mode='SET',
                                           view_matrix=view.ravel().tolist(), window_matrix=proj.ravel().tolist()),
            "click")
        console.print(f"  clicked ({click.xy[0]}, {click.xy[1]}) in {ds.names[click.view]} on {click.name}: "
                      f"{settings.status}", highlight=False)
        # as an artist would: the click took the table along (noisy masks merge an item with its support,
        # see the README), so walk the granularity slider toward parts until it lets go
        while _selected(scene_obj) > MAX_SHARE * n_splats and settings.level > 0.05:
            _ok(bpy.ops.gs_splats.query_level(level=round(settings.level - 0.1, 2)), "granularity")
            console.print(f"  granularity {settings.level:.1f}: {settings.status}", highlight=False)
        step("click to select", t)

        t = time.perf_counter()
        _ok(bpy.ops.gs_splats.separate(), "separate")
        part = context.active_object
        part.name = click.name
        part.location = (0.0, 0.0, LIFT)
        context.view_layer.update()
        step(f"separate {part.name} ({len(part.data.points):,} splats) and move it up {LIFT} m", t)

        t = time.perf_counter()
        recomposed = out / "recomposed.ply"
        context.view_layer.objects.active = scene_obj
        _ok(bpy.ops.gs_splats.export_ply(filepath=str(recomposed)), "export")
        step("export the recomposed PLY", t)

        t = time.perf_counter()
        moved = _check_recomposed(bpy, read_ply_table(out / "dataset" / "scene.ply"), recomposed, part)
        step(f"re-import and check ({moved:,} moved splats at +{LIFT} m, the rest unchanged)", t)

        t = time.perf_counter()
        render_cam = camera_object(bpy, cam.scaled(RENDER_SCALE))
        context.scene.collection.objects.link(render_cam)
        context.scene.camera = render_cam
        _setup_render(bpy, context.scene, cam.width * RENDER_SCALE, cam.height * RENDER_SCALE,
                      blend.with_suffix(".png"))
        _ok(bpy.ops.gs_splats.setup_render(), "render splats")
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        step(f"save {blend}", t)

        t = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        step(f"render {blend.with_suffix('.png')} (Cycles, CPU, {SAMPLES} samples; "
             f"{splat_render.last_status['message']})", t)
        if not splat_render.last_status["message"].startswith("splat layer:"):
            raise UserError(f"demo --blender: {splat_render.last_status['message']}")

        t = time.perf_counter()
        reference = blend.with_name(f"{blend.stem}_reference.png")
        score = _reference(recomposed, cam.scaled(RENDER_SCALE), reference, blend.with_suffix(".png"))
        step(f"reference {reference} (gs_core's render of {recomposed.name}): PSNR {score:.1f} dB "
             f"against {blend.with_suffix('.png').name}", t)
        if score < MIN_PSNR:
            raise UserError(f"demo --blender: the Blender render and gs_core's differ (PSNR {score:.1f} dB < "
                            f"{MIN_PSNR:.0f})")
    finally:
        segmentation.stop_backends()
        blender_addon.unregister()
    console.print(f"done in {time.perf_counter() - t_start:.1f} s: {blend}, {blend.with_suffix('.png')}, "
                  f"{blend.with_name(blend.stem + '_reference.png')}, {out / 'recomposed.ply'}", highlight=False)
    return 0


def _selected(obj) -> int:
    from blender_addon import splat_object

    selection = splat_object.read_attributes(obj.data, [".selection"]).get(".selection")
    return 0 if selection is None else int(selection.sum())


def _ok(result: set, what: str) -> None:
    if result != {'FINISHED'}:
        raise UserError(f"demo --blender: {what} did not finish ({result})")


def _check_recomposed(bpy, original, path: Path, part) -> int:
    """Re-import the exported PLY; every splat is the original's, the moved ones lifted by LIFT."""
    from blender_addon import splat_object

    before = set(bpy.data.objects)
    _ok(bpy.ops.gs_splats.import_ply(filepath=str(path)), "re-import")
    (again,) = set(bpy.data.objects) - before
    try:
        back = splat_object.object_table(again)
    finally:
        splat_object.remove_splat_object(again)
    if len(back) != len(original):
        raise UserError(f"demo --blender: {path} has {len(back)} splats, the sample {len(original)}")
    moved_rows = np.sort(splat_object.read_attributes(part.data, ["gs:index"])["gs:index"])
    xyz = np.stack([original.columns[a] for a in "xyz"], 1).astype(np.float64)
    expected = xyz.copy()
    expected[moved_rows, 2] += LIFT
    got = np.stack([back.columns[a] for a in "xyz"], 1).astype(np.float64)
    # exported by object, in name order: match rows by position, which the lift makes unique per splat
    order_expected = np.lexsort(np.round(expected, 5).T)
    order_got = np.lexsort(np.round(got, 5).T)
    if not np.allclose(got[order_got], expected[order_expected], atol=1e-5):
        raise UserError(f"demo --blender: {path} does not hold the sample with the object moved")
    return len(moved_rows)


def _reference(recomposed: Path, camera, path: Path, rendered: Path) -> float:
    """gs_core's render of ``recomposed`` (world space) by ``camera`` over black, as ``path`` (8-bit
    sRGB PNG, as Blender writes ``rendered``); returns the PSNR of ``rendered`` against it."""
    import torch
    from PIL import Image

    from ..engine import project, render, sh_colors
    from ..io.atomic import atomic_write
    from ..metrics import psnr
    from ..scene import GaussianScene
    from ..viz import to_uint8

    scene = GaussianScene.load(recomposed)
    gaussians = scene.to_gaussians()
    coeffs = torch.as_tensor(np.concatenate([scene.sh_dc[:, None], scene.sh_rest], axis=1), dtype=torch.float32)
    with torch.no_grad():
        out = render(project(gaussians, camera), sh_colors(coeffs, gaussians.means, camera))
    image = to_uint8(out.features.numpy())
    with atomic_write(path, "wb") as fh:
        Image.fromarray(image).save(fh, format="PNG")
    blender = np.asarray(Image.open(rendered).convert("RGB"))
    return psnr(blender / 255.0, image / 255.0)


def _setup_render(bpy, scene, width: int, height: int, path: Path) -> None:
    scene.render.engine = 'CYCLES'
    scene.cycles.device = 'CPU'
    scene.cycles.samples = SAMPLES
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.render.filepath = str(path)
    scene.render.image_settings.file_format = 'PNG'
    scene.view_settings.view_transform = 'Standard'  # gs_core's colours are display values: no tone mapping
    scene.render.dither_intensity = 0.0
    world = bpy.data.worlds.new("Demo world")  # black: the splats over nothing, as gs_core renders them
    world.color = (0.0, 0.0, 0.0)
    if world.node_tree is not None:  # 5.0: a new world has a Background node
        for node in world.node_tree.nodes:
            if node.bl_idname == 'ShaderNodeBackground':
                node.inputs['Color'].default_value = (0.0, 0.0, 0.0, 1.0)
    scene.world = world

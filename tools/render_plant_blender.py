"""Render the real plant capture (``../shared/data/real/plant.splat``, CC-BY-4.0, Marcel Padilla) through
the Blender add-on, headless: import (File > Import > Gaussian Splats), stand it upright (its up axis is
-y), Render Splats, then Cycles (or EEVEE: ``--engine eevee``) twice from one camera:

1. the splats alone, checked against gs_core's own render of the same file and camera (PSNR);
2. with meshes (a floor under the pot, a block in front of it, a sun): the splats composited by depth.

With ``--viewport`` a third panel is the viewport's GPU draw (``blender_addon.splat_draw``) of the same
camera, run headless (``blender_addon.gpu_background``), also checked against gs_core's render.

    python tools/render_plant_blender.py [PLANT.splat] [--out docs/blender_plant.jpg] [--size 600 800]
    python tools/render_plant_blender.py --engine eevee --viewport --out docs/blender_plant_eevee.jpg
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plant", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "real" / "plant.splat")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "blender_plant.jpg")
    parser.add_argument("--size", type=int, nargs=2, default=(600, 800), metavar=("W", "H"))
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--engine", choices=("cycles", "eevee"), default="cycles")
    parser.add_argument("--viewport", action="store_true", help="add the viewport's GPU draw as a third panel")
    args = parser.parse_args(argv)

    import bpy
    from PIL import Image

    import blender_addon
    from blender_addon import segmentation, splat_object, splat_render
    from gs_core import render_layer
    from gs_core.camera import Camera
    from gs_core.demo.blender import camera_object
    from gs_core.metrics import psnr
    from gs_core.server import camera_from_json
    from gs_core.viz import to_uint8

    width, height = args.size
    if args.engine == "eevee" or args.viewport:
        from blender_addon import gpu_background

        reason = gpu_background.probe()  # EEVEE and the draw need Blender's GPU backend (EGL headless)
        if reason is not None:
            parser.error(reason)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    tmp = Path(tempfile.mkdtemp(prefix="gs_plant_"))
    try:
        scene = bpy.context.scene
        assert bpy.ops.gs_splats.import_exchange(filepath=str(args.plant)) == {'FINISHED'}
        plant = bpy.context.active_object
        plant.rotation_euler = (-np.pi / 2, 0.0, 0.0)  # the capture's up is -y
        bpy.context.view_layer.update()
        world = splat_object.read_attributes(plant.data, ["position"])["position"] @ \
            splat_object.matrix_of(plant)[:3, :3].T + splat_object.matrix_of(plant)[:3, 3]
        lo, hi = np.percentile(world, 2, axis=0), np.percentile(world, 98, axis=0)
        centre, extent = (lo + hi) / 2, float((hi - lo).max())
        cam = Camera.look_at(centre + np.array([0.35, -2.0, 0.55]) * extent, centre, fov_x_deg=32,
                             width=width, height=height)
        cam_obj = camera_object(bpy, cam)
        scene.collection.objects.link(cam_obj)
        scene.camera = cam_obj
        if args.engine == "eevee":
            scene.render.engine = 'BLENDER_EEVEE_NEXT' if bpy.app.version < (5, 0, 0) else 'BLENDER_EEVEE'
        else:
            scene.render.engine = 'CYCLES'
            scene.cycles.device, scene.cycles.use_denoising = 'CPU', False
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
        scene.view_settings.view_transform = 'Standard'
        scene.render.dither_intensity = 0.0
        scene.render.image_settings.file_format = 'PNG'
        black = bpy.data.worlds.new("black")
        black.color = (0.0, 0.0, 0.0)
        if black.node_tree is not None:
            for node in black.node_tree.nodes:
                if node.bl_idname == 'ShaderNodeBackground':
                    node.inputs['Color'].default_value = (0.0, 0.0, 0.0, 1.0)
        scene.world = black
        assert bpy.ops.gs_splats.setup_render() == {'FINISHED'}

        # 1. the splats alone, against gs_core's render of the same file from the same camera
        scene.cycles.samples = scene.eevee.taa_render_samples = 1
        scene.render.filepath = str(tmp / "alone.png")
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        print(f"splats alone: {time.perf_counter() - t0:.1f} s ({splat_render.last_status['message']})")
        objects = [s for _, s in splat_render.render_objects(scene)]
        layer = render_layer.render_layer(objects, camera_from_json(splat_render.scene_camera(scene)))
        reference = to_uint8(layer[..., :3])
        alone = np.asarray(Image.open(tmp / "alone.png").convert("RGB"))
        print(f"Blender render vs gs_core's render of {args.plant.name}: PSNR "
              f"{psnr(alone / 255.0, reference / 255.0):.1f} dB")

        # 2. with meshes: a floor under the pot, a block in front of it, a sun
        floor_z = float(lo[2])
        bpy.ops.mesh.primitive_plane_add(size=6 * extent, location=(centre[0], centre[1], floor_z))
        floor = bpy.context.active_object
        bpy.ops.mesh.primitive_cube_add(size=0.22 * extent, location=(centre[0] + 0.2 * extent,
                                                                        centre[1] - 0.5 * extent,
                                                                        floor_z + 0.11 * extent))
        block = bpy.context.active_object
        for obj, rgb in ((floor, (0.55, 0.5, 0.45)), (block, (0.1, 0.25, 0.6))):
            material = bpy.data.materials.new(obj.name)
            if material.node_tree is None:
                material.use_nodes = True
            bsdf = next(n for n in material.node_tree.nodes if n.bl_idname == 'ShaderNodeBsdfPrincipled')
            bsdf.inputs['Base Color'].default_value = (*rgb, 1.0)
            obj.data.materials.append(material)
        sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", 'SUN'))
        sun.data.energy = 3.0
        sun.rotation_euler = (0.6, 0.3, 0.4)
        scene.collection.objects.link(sun)
        scene.cycles.samples = scene.eevee.taa_render_samples = args.samples
        scene.render.filepath = str(tmp / "meshes.png")
        t0 = time.perf_counter()
        bpy.ops.render.render(write_still=True)
        print(f"with meshes: {time.perf_counter() - t0:.1f} s ({splat_render.last_status['message']})")
        from gs_core.io.atomic import atomic_write

        panels = [reference, np.asarray(Image.open(tmp / "meshes.png").convert("RGB"))]
        if args.viewport:
            panels.append(viewport_panel(bpy, scene, plant, reference))
        with atomic_write(args.out, "wb") as fh:
            Image.fromarray(np.concatenate(panels, axis=1)).save(fh, format="JPEG", quality=85)
        print(f"wrote {args.out}: gs_core's render | Blender ({args.engine} + splat layer, meshes composited by "
              f"depth){' | the viewport draw' if args.viewport else ''}")
    finally:
        segmentation.stop_backends()
        blender_addon.unregister()
    return 0


def viewport_panel(bpy, scene, plant, reference):
    """The viewport's GPU draw of ``plant`` from the scene camera (headless), over black, as uint8 [H, W, 3]."""
    from blender_addon import gpu_background, splat_draw, splat_render, view_camera
    from gs_core.metrics import psnr
    from gs_core.viz import to_uint8

    print(f"viewport draw on {gpu_background.ensure()}")
    camera = splat_render.scene_camera(scene)
    near = 0.01
    window = view_camera.view_matrices(camera, near=near, far=1000.0)[1]
    t0 = time.perf_counter()
    offscreen = splat_draw.draw_splats(bpy.context, [plant], camera, window, near,
                                       splat_draw.depth_texture(camera["width"], camera["height"]))
    drawn = to_uint8(splat_draw.read_pixels(offscreen)[..., :3])
    print(f"viewport draw (first frame, read back): {time.perf_counter() - t0:.1f} s; vs gs_core's render: PSNR "
          f"{psnr(drawn / 255.0, reference / 255.0):.1f} dB")
    return drawn


if __name__ == "__main__":
    sys.exit(main())

"""``gs-core demo --blender OUT.blend``: the main job in Blender through the add-on's operators."""

import subprocess
import sys

import numpy as np
import pytest

from gs_core.cli import main


def test_blender_demo_needs_a_blend_file_name(tmp_path, capsys):
    assert main(["demo", "--blender", str(tmp_path / "edit.txt")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"gs-core: --blender {tmp_path / 'edit.txt'}: give a .blend file name"


@pytest.mark.slow
@pytest.mark.blender
def test_blender_demo_tiny(tmp_path):
    pytest.importorskip("bpy")
    blend = tmp_path / "edit.blend"
    # a child process: the demo resets Blender's state, which the other bpy tests share in this one; a name
    # relative to the working folder, as the README's command gives it (Blender cannot save a render there)
    done = subprocess.run([sys.executable, "-m", "gs_core.cli", "demo", "--blender", blend.name, "--size", "tiny",
                           "--seed", "1"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    for needle in ("import (", "prepare (backend)", "clicked (", "separate ", "re-import and check",
                   "render ", "splat layer: ", "reference "):
        assert needle in done.stdout, needle
    assert blend.stat().st_size > 0 and blend.with_suffix(".png").stat().st_size > 1000
    # the splats as Gaussians in Blender's render, gs_core's render of the exported scene beside it
    from PIL import Image

    from gs_core.metrics import psnr

    ours = np.asarray(Image.open(blend.with_suffix(".png")).convert("RGB")) / 255.0
    reference = np.asarray(Image.open(tmp_path / "edit_reference.png").convert("RGB")) / 255.0
    assert ours.shape == reference.shape and reference.mean() > 0.05
    assert psnr(ours, reference) >= 30.0
    check = subprocess.run([sys.executable, "-c", f"""
import bpy
bpy.ops.wm.open_mainfile(filepath={str(blend)!r})
clouds = sorted(o.name for o in bpy.data.objects if o.type == 'POINTCLOUD')
moved = [o for o in bpy.data.objects if o.type == 'POINTCLOUD' and o.location.z > 0.2]
print(len(clouds), len(moved), bpy.context.scene.camera is not None)
"""], capture_output=True, text=True, timeout=300)
    assert check.stdout.split()[-3:] == ["2", "1", "True"], check.stdout + check.stderr

"""The numpy-only gs_core modules the add-on uses: one implementation, two ways to reach it.

The built zip carries a copy in ``_vendor/gs_core`` (made by ``build_addon.py``; numpy only, no
wheels); a source checkout imports the repository's ``gs_core`` directly. ``scene`` brings the
other splat formats (``io.spz``, ``io.splat``, ``io.compressed_ply``; SPZ v4 uses Blender's bundled
``zstandard``).
"""

from pathlib import Path

if (Path(__file__).parent / "_vendor").is_dir():
    from ._vendor.gs_core import instance_colors, sh, splat_ids, splat_transform, splat_view
    from ._vendor.gs_core import scene
    from ._vendor.gs_core.io import errors, ply
else:
    try:
        from gs_core import instance_colors, sh, splat_ids, splat_transform, splat_view
        from gs_core import scene
        from gs_core.io import errors, ply
    except ImportError as exc:
        raise ImportError("the add-on runs from a source checkout but cannot import gs_core; put the "
                          "repository root on sys.path or install the zip made by build_addon.py") from exc

__all__ = ["errors", "instance_colors", "ply", "scene", "sh", "splat_ids", "splat_transform", "splat_view"]

"""gs_core: lift 2D segmentation onto 3D Gaussian-splat scenes.

The package is layered so that light modules import without torch:

* ``gs_core.io.ply``, ``gs_core.sh``, ``gs_core.splat_transform`` — numpy only (vendored into the
  Blender add-on);
* ``gs_core.scene``, ``gs_core.camera``, ``gs_core.dataset`` — scene and dataset I/O;
* ``gs_core.engine`` — the two primitives everything stands on: ``render`` (Gaussians -> pixels)
  and ``trace`` (pixels -> Gaussians), with ``torch``, ``cpu`` and ``gsplat`` backends.
"""

__version__ = "0.1.0"

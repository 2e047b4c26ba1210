"""gs_core: lift 2D segmentation onto 3D Gaussian-splat scenes.

The package is layered so that light modules import without torch:

* ``gs_core.io.ply``, ``gs_core.sh``, ``gs_core.splat_transform`` — numpy only (vendored into the
  Blender add-on);
* ``gs_core.scene``, ``gs_core.camera``, ``gs_core.dataset`` — scene and dataset I/O;
* ``gs_core.engine`` — the two primitives everything stands on: ``render`` (Gaussians -> pixels)
  and ``trace`` (pixels -> Gaussians), with ``torch``, ``cpu`` and ``gsplat`` backends.

Importing gs_core before torch makes OpenMP threads (torch's and the native kernels') sleep when
they run out of work instead of spinning: artists run gs_core beside Blender and other CPU-bound
programs, and spinning threads made it 4-5x slower there (``gs-core bench engine --contended``).
libgomp reads the setting once, when torch loads it; a choice already in the environment wins.
"""

import os as _os

if "OMP_WAIT_POLICY" not in _os.environ and "GOMP_SPINCOUNT" not in _os.environ:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

__version__ = "0.1.0"

"""Two clicks on a prepared work folder for the add / refine gestures (the server, CLI and add-on tests):
a pixel on a small instance, then one on another instance more than twice its size, and what the
library selects for them as an addition (rule "split": the second instance whole) and as a refinement
("split-support": only as much of it as the first selects)."""

import numpy as np


def add_and_refine_clicks(work, camera, level=0.5):
    """-> (a, b, add, refine): pixels a, b [2] int in ``camera``, and the rows [K] int64 the library
    selects for the clicks a then b with each rule (:meth:`gs_core.query.LabelLevels.from_clicks`,
    the scene's centres and colours, as the server and the CLI pass them)."""
    from gs_core.engine import project
    from gs_core.pipeline.segment import load_levels
    from gs_core.pipeline.workdir import WorkDir
    from gs_core.query import pixel_labels, pixel_weights
    from gs_core.scene import GaussianScene

    wd = WorkDir(work, must_exist=True)
    levels, scene = load_levels(wd), GaussianScene.load(wd.scene_path)
    proj = project(scene.to_gaussians(), camera)
    labels = levels.at(level)
    sizes = np.bincount(labels[labels >= 0])
    grid = np.stack(np.meshgrid(np.arange(2, camera.width, 4), np.arange(2, camera.height, 4)), -1).reshape(-1, 2)
    owner = pixel_labels(proj, labels, grid)
    for a in grid[owner >= 0]:
        la = pixel_labels(proj, labels, a[None])[0]
        larger = (owner >= 0) & (owner != la) & (sizes[np.maximum(owner, 0)] > 2 * sizes[la])
        if not larger.any():
            continue
        b = grid[np.flatnonzero(larger)[0]]
        clicks = pixel_weights(proj, np.stack([a, b]))
        add, refine = (np.flatnonzero(levels.from_clicks(level, clicks, rule=rule, means=scene.means,
                                                         colors=scene.sh_dc).selected)
                       for rule in ("split", "split-support"))
        return a.tolist(), b.tolist(), add, refine
    raise AssertionError("no small instance beside one more than twice its size in this view")

"""A contact sheet of the virtual views gs_core places around a splat file (the photo-less path).

    python tools/virtual_views_sheet.py ../shared/data/real/plant.splat docs/virtual_views_plant.png

The views are the ones ``prepare --scene FILE`` renders (:func:`gs_core.virtual_views.choose_virtual_views`),
here 8 of them at 320x240 on a white background, four to a row. The plant capture is CC-BY-4.0 (Marcel
Padilla; its README says so): a sheet made from it carries that attribution wherever it is shown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from PIL import Image

    from gs_core.io.atomic import atomic_write
    from gs_core.scene import GaussianScene
    from gs_core.virtual_views import VirtualViewConfig, choose_virtual_views, render_rgb

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--views", type=int, default=8)
    args = parser.parse_args()
    scene = GaussianScene.load(args.scene)
    cams, stats = choose_virtual_views(scene, VirtualViewConfig(views=args.views, width=320, height=240))
    gaussians = scene.to_gaussians()
    tiles = []
    for cam in cams:
        rgb, alpha, _ = render_rgb(scene, gaussians, cam)
        tiles.append((np.clip(rgb + (1.0 - alpha[..., None]), 0, 1) * 255 + 0.5).astype(np.uint8))
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % 4)
    sheet = np.concatenate([np.concatenate(tiles[i:i + 4], 1) for i in range(0, len(tiles), 4)], 0)
    with atomic_write(args.out, "wb") as fh:
        Image.fromarray(sheet).save(fh, format="PNG", optimize=True)
    print(f"{len(cams)} views (up {np.round(stats['up'], 3).tolist()}, enclosed: {stats['enclosed']}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

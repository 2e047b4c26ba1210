"""Make the "written by another implementation" fixtures in tests/io/data (run once; outputs committed).

    python tools/make_format_fixtures.py --niantic PATH/niantic_convert --splat-transform PATH/splat-transform \\
        --ply2splat-python PATH/python [--out tests/io/data]

* ``source.ply``: 256 deterministic splats, SH degree 3, values inside every format's range (written by
  gs_core; the other files are conversions of it).
* ``niantic_v2.spz``, ``niantic_v3.spz``, ``niantic_v4.spz``: Niantic's C++ (``nianticlabs/spz``
  ``load-spz.cc``, as vendored in the ``alspz`` 0.2.0 sdist) converting the PLY as its own tools do:
  ``loadSplatFromPly(to=RUB)`` then ``saveSpz(from=RUB, version)``. ``niantic_convert`` is
  ``tools/niantic_convert.cc`` compiled against those sources (``g++ -std=c++17 ... -lz -lzstd``).
* ``splat_transform.compressed.ply``, ``splat_transform.spz``: PlayCanvas splat-transform 3.7.0
  (npm ``@playcanvas/splat-transform``; its SPZ is written by Adobe's wasm build of spz, without the
  RUB flip).
* ``ply2splat.splat``: ``ply2splat`` 0.6.0 (PyPI, Rust) ``convert(sort=False)``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gs_core.scene import GaussianScene  # noqa: E402

COUNT = 256


def source_scene(count: int = COUNT, seed: int = 17) -> GaussianScene:
    """Splats whose values every format can hold (SH within SPZ's [-1, 1], colours inside [0, 1])."""
    rng = np.random.default_rng(seed)
    f = np.float32
    quats = rng.standard_normal((count, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    return GaussianScene(
        means=rng.uniform(-4, 4, (count, 3)).astype(f),
        quats=quats.astype(f),
        log_scales=rng.uniform(-7, 0.5, (count, 3)).astype(f),
        opacity_logits=rng.uniform(-4, 4, count).astype(f),
        sh_dc=rng.uniform(-1.6, 1.6, (count, 3)).astype(f),
        sh_rest=rng.uniform(-0.8, 0.8, (count, 15, 3)).astype(f),
        normals=np.zeros((count, 3), f),
        comments=["gs_core test fixture source (tools/make_format_fixtures.py)"],
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--niantic", type=Path, required=True, help="niantic_convert binary")
    parser.add_argument("--splat-transform", type=Path, required=True, help="splat-transform CLI")
    parser.add_argument("--ply2splat-python", type=Path, required=True, help="a python with ply2splat installed")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "io" / "data")
    args = parser.parse_args(argv)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    source = out / "source.ply"
    source_scene().save(source)
    for version in (2, 3, 4):
        subprocess.run([str(args.niantic), "ply2spz", str(source), str(out / f"niantic_v{version}.spz"),
                        str(version)], check=True, capture_output=True)
    for name in ("splat_transform.compressed.ply", "splat_transform.spz"):
        subprocess.run([str(args.splat_transform), "-q", "-w", str(source), str(out / name)], check=True)
    subprocess.run([str(args.ply2splat_python), "-c", "import ply2splat, sys; "
                    "ply2splat.convert(sys.argv[1], sys.argv[2], sort=False)", str(source), str(out / "ply2splat.splat")],
                   check=True)
    for path in sorted(out.iterdir()):
        print(f"{path.name}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

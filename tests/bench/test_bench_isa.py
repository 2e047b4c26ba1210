"""``gs-core bench engine --isa``: every prebuilt kernel variant timed on the same ops, ratios to the widest."""

import numpy as np
import pytest
from rich.console import Console

from gs_core.bench import isa as isa_bench
from gs_core.bench.engine import GARDEN
from gs_core.engine import cpu_backend


@pytest.fixture
def small_garden(tmp_path):
    """The garden file's first 3,000 points and its cameras, at a quarter of their size."""
    d = np.load(GARDEN)
    Ks = d["Ks"].copy()
    Ks[:, :2] /= 4
    path = tmp_path / "garden_small.npz"
    np.savez(path, means3d=d["means3d"][:3000], colors=d["colors"][:3000], viewmats=d["viewmats"], Ks=Ks,
             width=np.int64(d["width"] // 4), height=np.int64(d["height"] // 4))
    return path


def test_isa_bench_times_every_variant_against_the_widest(small_garden):
    variants = cpu_backend.prebuilt_variants()
    if not variants:
        pytest.skip("no prebuilt kernel variant imports here")
    rows = isa_bench.measure(small_garden, variants, repeats=1, cameras=1, backward=True)
    by = {(r.variant, r.op): r for r in rows}
    ops = {r.op for r in rows}
    assert {"project", "render D=3", "trace labels", "forward + backward, all parameters", isa_bench.FRAME_OP} <= ops
    assert len(rows) == len(variants) * len(ops)
    for v in variants:
        frame = by[(v, isa_bench.FRAME_OP)]
        assert frame.ms == pytest.approx(sum(by[(v, op)].ms for op in isa_bench.FRAME))
        assert all(by[(v, op)].ms > 0 for op in ops)
    assert all(by[(variants[0], op)].ratio == pytest.approx(1.0) for op in ops)
    console = Console(record=True, width=200)
    result = isa_bench.report(rows, variants, console)
    text = console.export_text()
    assert "garden frame" in text and all(f"{v} ms" in text for v in variants)
    assert result["variants"][variants[0]]["vector_width"] in (4, 8, 16)
    assert cpu_backend.variant() is None or cpu_backend.variant() in variants  # switched back

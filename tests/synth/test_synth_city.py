"""The synthetic city (``gs-core synth --layout city``): buildings, streets and street objects, written
view by view as a dataset ``Dataset`` reads; its ground-truth maps agree across levels. The xl size is a
benchmark (``gs-core bench scale --size xl``), not a test."""

import json

import numpy as np

from gs_core.cli import main
from gs_core.dataset import Dataset
from gs_core.synth import GroundTruth
from gs_core.synth.city import CITY_SIZES


def test_tiny_city_is_written_view_by_view_as_a_dataset(tmp_path, capsys):
    out = tmp_path / "city"
    assert main(["synth", "--out", str(out), "--layout", "city", "--size", "tiny", "--noise", "0.5"]) == 0
    config = CITY_SIZES["tiny"]
    ds = Dataset.load(out)
    assert len(ds) == config.n_train + config.n_test
    assert len(list((out / "masks").glob("*.npz"))) == config.n_train
    gt = GroundTruth.load(out)
    meta = json.loads((out / "gt" / "scene.json").read_text())
    objects = meta["hierarchy"]["objects"]
    categories = {o["category"] for o in objects}
    assert {"building", "road", "sidewalk"} <= categories and len(categories & {"tree", "street_lamp", "bench", "car"}) >= 2
    assert meta["city"]["blocks"] == list(config.blocks)
    h = gt.hierarchy
    seen = set()
    for name in meta["split"]["train"]:
        part, obj = gt.instance_map(name, "part"), gt.instance_map(name, "object")
        assert np.array_equal(obj, np.where(part >= 0, h.part_to_object[np.maximum(part, 0)], -1))
        seen |= {objects[o]["category"] for o in np.unique(obj[obj >= 0])}
    assert "building" in seen and seen & {"tree", "street_lamp", "bench", "car"}  # the path films both


def test_city_sizes_are_tiny_and_xl_only(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "c"), "--layout", "city", "--size", "small"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--size" in err and "xl" in err and len(err.splitlines()) == 1
    assert CITY_SIZES["xl"].n_train >= 1000

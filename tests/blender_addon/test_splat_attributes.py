"""blender_addon.splat_attributes without Blender: PLY columns -> attributes -> columns is bit-exact
(every dtype, 2DGS, unknown columns), native attributes carry 5.3's names and activations, raw
copies exist only where needed, and edits of native attributes win on export."""

import numpy as np
import pytest

from blender_addon import splat_attributes as sa
from gs_core.io.ply import PlyError, PlyTable


def values_of(data: sa.SplatData) -> dict:
    return {name: attribute.values for name, attribute in data.attributes.items()}


@pytest.mark.parametrize("kwargs", [dict(degree=0), dict(degree=1), dict(degree=3, extra=True),
                                    dict(degree=2, two_d=True)],
                         ids=["sh0", "sh1", "sh3+extra", "2dgs"])
def test_round_trip_is_bit_exact(kwargs, make_table, assert_identical):
    table = make_table(n=500, **kwargs)
    data = sa.table_to_splat_data(table, "scene.ply")
    assert_identical(sa.splat_data_to_table(values_of(data), data.schema, "obj"), table)


def test_double_precision_files_round_trip_exactly(make_table, assert_identical):
    table = make_table(n=300, degree=1)
    table = PlyTable({k: v.astype(np.float64) + 1e-12 for k, v in table.columns.items()}, table.comments)
    data = sa.table_to_splat_data(table, "double.ply")
    assert data.attributes[sa.RAW_PREFIX + "rot_0"].data_type == "INT32_2D"
    assert_identical(sa.splat_data_to_table(values_of(data), data.schema, "obj"), table)


def test_native_attributes_follow_blender_names_and_activations(make_table):
    table = make_table(n=300, degree=3)
    cols = table.columns
    attrs = sa.table_to_splat_data(table, "scene.ply").attributes
    assert attrs[sa.BASE].data_type == "FLOAT_COLOR" and attrs[sa.ROTATION].data_type == "QUATERNION"
    base = attrs[sa.BASE].values
    for i in range(3):
        assert np.array_equal(base[:, i], cols[f"f_dc_{i}"])
    np.testing.assert_allclose(base[:, 3], 1 / (1 + np.exp(-cols["opacity"].astype(np.float64))), rtol=1e-6)
    np.testing.assert_allclose(attrs[sa.SCALE].values,
                               np.exp(np.stack([cols[f"scale_{i}"] for i in range(3)], 1).astype(np.float64)),
                               rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(attrs[sa.ROTATION].values, axis=1), 1.0, rtol=1e-6)
    # radiance:sh_k is coefficient k of (r, g, b); f_rest is channel-major with 15 per channel
    assert [n for n in attrs if n.startswith(sa.SH_PREFIX)] == [sa.sh_attribute(k) for k in range(15)]
    for k in (0, 7, 14):
        expected = np.stack([cols[f"f_rest_{k + 15 * c}"] for c in range(3)], 1)
        assert np.array_equal(attrs[sa.sh_attribute(k)].values, expected)
    assert np.array_equal(attrs[sa.INDEX].values, np.arange(300))


def test_raw_attributes_only_where_native_cannot_give_the_bits_back(make_table):
    attrs = sa.table_to_splat_data(make_table(n=300, extra=True), "s.ply").attributes
    raw = {n[len(sa.RAW_PREFIX):]: a for n, a in attrs.items() if n.startswith(sa.RAW_PREFIX)}
    assert {"opacity", "rot_0", "nx", "segment", "confidence"} <= set(raw)
    assert not {"x", "y", "z", "f_dc_0", "f_rest_0"} & set(raw)
    assert raw["confidence"].data_type == "INT32_2D" and raw["segment"].data_type == "INT"
    table = make_table(n=4)
    for i, column in enumerate([[1, 0, 0.5, 0], [0, -1, 0.5, 0], [0, 0, -0.5, 0], [0, 0, 0.5, 1]]):
        table.columns[f"rot_{i}"] = np.array(column, np.float32)  # unit in float32 exactly
    unit = sa.table_to_splat_data(table, "s.ply").attributes
    assert not any(n.startswith(sa.RAW_PREFIX + "rot_") for n in unit)


def test_edited_native_values_are_exported(make_table):
    table = make_table(n=200)
    data = sa.table_to_splat_data(table, "s.ply")
    values = values_of(data)
    values[sa.BASE] = values[sa.BASE].copy()
    values[sa.BASE][:10, 0] = 0.25  # recolour 10 splats
    values[sa.SCALE] = values[sa.SCALE].copy()
    values[sa.SCALE][5] = 2.0  # resize one
    out = sa.splat_data_to_table(values, data.schema, "obj").columns
    assert np.all(out["f_dc_0"][:10] == np.float32(0.25))
    assert out["opacity"].tobytes() == table.columns["opacity"].tobytes()  # alpha untouched: raw bits
    np.testing.assert_allclose(out["scale_1"][5], np.log(2.0), rtol=1e-6)
    unchanged = np.arange(200) != 5
    assert np.array_equal(out["scale_1"][unchanged], table.columns["scale_1"][unchanged])


def test_native_only_object_exports_from_activated_values(make_table):
    table = make_table(n=200, degree=1)
    data = sa.table_to_splat_data(table, "s.ply")
    native_only = {n: v for n, v in values_of(data).items() if not n.startswith(sa.RAW_PREFIX)}
    out = sa.splat_data_to_table(native_only, {}, "obj")
    np.testing.assert_allclose(out.columns["opacity"], table.columns["opacity"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.columns["scale_2"], table.columns["scale_2"], rtol=1e-5)
    assert out.names[:3] == ["x", "y", "z"] and "nx" not in out.columns


@pytest.mark.parametrize("drop, message", [("opacity", "missing columns: opacity"),
                                           ("scale_0", "scale_0..scale_2"),
                                           ("f_rest_44", "not a multiple of 3")])
def test_malformed_tables_name_the_file_and_problem(drop, message, make_table):
    table = make_table(n=10)
    del table.columns[drop]
    with pytest.raises(PlyError, match=f"bad.ply: .*{message}"):
        sa.table_to_splat_data(table, "bad.ply")


def test_integer_positions_are_refused(make_table):
    table = make_table(n=10)
    table.columns["x"] = table.columns["x"].astype(np.int32)
    with pytest.raises(PlyError, match="'x' has type int32"):
        sa.table_to_splat_data(table, "bad.ply")


def test_concatenate_fills_missing_columns_and_widens_types(make_table):
    a, b = make_table(n=5, degree=1, extra=True), make_table(n=3, degree=0, seed=1)
    b.columns["confidence"] = np.ones(3, np.float32)
    out = sa.concatenate_tables([a, b])
    assert out.names == a.names and len(out) == 8
    assert out.columns["confidence"].dtype == np.float64
    assert np.all(out.columns["f_rest_0"][5:] == 0) and np.all(out.columns["segment"][5:] == 0)


def test_schemas_merge_columns_and_sources():
    first = sa.make_schema({"x": np.float32, "a": np.uint8}, ["c1"], ["one.ply"])
    second = sa.make_schema({"x": np.float32, "b": np.float64}, ["c2"], ["two.ply"])
    merged = sa.merge_schemas([first, sa.schema_from_json(sa.schema_to_json(second))])
    assert [c for c, _ in merged["columns"]] == ["x", "a", "b"]
    assert merged["comments"] == ["c1"] and merged["sources"] == ["one.ply", "two.ply"]


def test_identity_transform_returns_the_table_itself(make_table):
    table = make_table(n=20)
    assert sa.transform_table(table, np.eye(4)) is table
    moved = sa.transform_table(table, np.diag([2.0, 2.0, 2.0, 1.0]))
    np.testing.assert_allclose(moved.columns["scale_0"], table.columns["scale_0"] + np.log(2.0), rtol=1e-6)
    assert isinstance(moved, PlyTable) and moved.names == table.names


def test_partial_sh_bands_export_whole_bands_only(make_table):
    data = sa.table_to_splat_data(make_table(n=20, degree=2), "s.ply")
    values = {k: v for k, v in values_of(data).items() if k not in (sa.sh_attribute(7), sa.sh_attribute(6))}
    out = sa.splat_data_to_table(values, data.schema, "obj")
    assert sum(n.startswith("f_rest_") for n in out.names) == 9  # degree 1: 3 coefficients x 3 channels

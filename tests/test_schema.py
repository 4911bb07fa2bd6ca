"""One table schema (store/schema.py): column roles, declared roles, the one categorical rule,
and that groupings, shortcut findings and concept coherence all follow it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from neurocarta.data import load_data
from neurocarta.errors import AtlasError, UserError
from neurocarta.findings import shortcut_candidates, shortcut_findings
from neurocarta.store import layout, schema
from neurocarta.viewer.data import ViewerData
from tiny_models import planted_data


def test_roles_of_a_demo_like_table():
    table = load_data("shapes:n=400").table()
    roles = schema.column_roles(table)
    assert list(roles) == list(map(str, table.columns))
    assert roles == {
        "input_id": "bookkeeping", "label": "label", "label_name": "label",
        "shape": "label",  # the drawn shape says what the label says: label-like, found from the data
        "colour": "attribute", "texture": "attribute", "background": "attribute",
        "size": "attribute", "x": "attribute", "y": "attribute", "rotation": "attribute",
        "relabelled": "bookkeeping", "split": "bookkeeping", "source_index": "bookkeeping",
    }
    # floats with hundreds of values are measurements, not categories
    assert schema.categorical_columns(table) == ["colour", "texture", "background"]
    assert schema.categorical_columns(table, include=("label", "attribute")) == [
        "label", "label_name", "shape", "colour", "texture", "background"]
    assert schema.grouping_columns(table) == ["label", "colour", "texture", "background"]


def test_declared_roles_win():
    table = load_data("shapes:n=400").table()
    roles = schema.column_roles(table, {"colour": "bookkeeping", "split": "attribute", "absent": "output"})
    assert roles["colour"] == "bookkeeping" and roles["split"] == "attribute"
    assert "absent" not in roles  # a declaration for another table's column is ignored here
    assert schema.categorical_columns(table, roles=roles) == ["texture", "background", "split"]
    with pytest.raises(UserError, match="role 'feature' is not one of label, attribute, output, bookkeeping"):
        schema.column_roles(table, {"colour": "feature"})


def test_columns_unique_per_row_are_bookkeeping():
    n = 30
    table = pd.DataFrame({"label": np.arange(n) % 3, "file": [f"img{i:03d}.png" for i in range(n)],
                          "sample_id": np.arange(100, 100 + n), "weight": np.linspace(0, 1, n),
                          "site": np.arange(n) % 5})
    roles = schema.column_roles(table)
    assert roles["file"] == roles["sample_id"] == "bookkeeping"
    assert roles["weight"] == "attribute"  # a float unique per row is a measurement, not an id
    assert roles["site"] == "attribute"
    assert schema.categorical_columns(table) == ["site"]
    assert schema.column_roles(table, {"sample_id": "attribute"})["sample_id"] == "attribute"
    assert schema.column_roles(table.head(1))["file"] == "attribute"  # one row proves nothing


def test_label_like_needs_two_known_classes():
    label = pd.Series([0, 0, 1, 1, 2, 2, 0, 1, 2, 0] * 4)
    names = label.map({0: "a", 1: "b", 2: "c"})
    assert schema.is_label_like(names, label)
    noisy = names.copy()
    noisy.iloc[:8] = "c"  # 20% of the rows disagree
    assert not schema.is_label_like(noisy, label)
    # no labels (-1): a dominant attribute value must not read as "the label"
    assert not schema.is_label_like(pd.Series(["x"] * 38 + ["y"] * 2), pd.Series([-1] * 40))


@pytest.mark.parametrize("values, expected", [
    (pd.Series([True, False, True]), True),
    (pd.Series([True, True, True]), False),  # one value is no grouping
    (pd.Series(np.arange(40) % 7), True),
    (pd.Series(np.arange(120) % 60), False),  # more than 50 values
    (pd.Series(["red", "green", None, "red"]), True),  # missing values aside
    (pd.Series(pd.Categorical(["a", "b", "a"])), True),
    (pd.Series([0.0, 1.0, 0.5, 1.0]), True),  # a float code of a few values
    (pd.Series(np.linspace(0, 1, 25)), False),  # a measurement
])
def test_the_categorical_rule(values, expected):
    assert schema.is_categorical(values) is expected


def test_the_categorical_rule_limits():
    assert schema.is_categorical(pd.Series(np.arange(120) % 60), most_values=60)
    assert not schema.is_categorical(pd.Series(np.arange(60) % 30, dtype=float), most_values=60)
    with pytest.raises(ValueError, match="unknown roles"):
        schema.categorical_columns(pd.DataFrame({"a": [1, 2]}), include=("feature",))


def test_summary_atlases_keep_statistics_for_the_schema_groupings(tmp_path):
    """Summary mode's default group columns are the schema's groupings (the label and the
    categorical attributes, not the label-like shape, the split or a planted flag), then the outputs."""
    atlas = nc.extract("py:tiny_models:cnn_bundle", "shapes:n=200", tmp_path / "s", layers=["act"], mode="summary",
                       sample_size=20, topk=3, progress=False)
    assert atlas.manifest.params["group_by"] == ["label", "colour", "texture", "background", "pred", "correct"]
    assert list(atlas.group_stats("act", "texture").count.index) == sorted(atlas.inputs["texture"].unique())


@pytest.fixture
def flipped_atlas(tmp_path):
    """A tiny atlas (PlantedNet, which predicts the planted class) whose labels are 30% wrong,
    and whose input table has a bool ``flipped`` flag that equals "the model agrees with the
    label": a perfect shortcut by the numbers, and bookkeeping by meaning."""
    planted = np.load(planted_data(tmp_path / "planted.npz", n=300))
    rng = np.random.default_rng(1)
    y = np.where(rng.random(300) < 0.3, rng.integers(0, 4, 300), planted["y"])
    np.savez(tmp_path / "noisy.npz", x=planted["x"], y=y)
    atlas = nc.extract("py:tiny_models:planted_net", f"npz:{tmp_path / 'noisy.npz'}", tmp_path / "a",
                       layers=["act"], batch_size=64, chunk_size=128, topk=5, progress=False)
    table = atlas.input_table.assign(flipped=atlas.inputs["correct"].to_numpy(dtype=bool))
    atlas.location.write_parquet(layout.INPUTS, table)
    return tmp_path / "a"


def test_a_declared_bookkeeping_flag_makes_no_grouping_and_no_finding(flipped_atlas):
    atlas = nc.open_atlas(flipped_atlas)
    assert atlas.column_roles["flipped"] == "attribute"  # inferred: a bool with two values
    assert "flipped" in ViewerData(atlas).groupings()
    assert any(f["selection"]["group_by"] == "flipped" for f in shortcut_findings(atlas))
    assert "flipped" in schema.grouping_columns(atlas.row_table("act"), atlas.column_roles)

    atlas.declare_columns({"flipped": "bookkeeping"})
    again = nc.open_atlas(flipped_atlas)  # kept in the manifest
    assert again.manifest.columns == {"flipped": "bookkeeping"}
    assert again.column_roles["flipped"] == "bookkeeping"
    groupings = ViewerData(again).groupings()
    assert "flipped" not in groupings and "correct" in groupings
    assert not any(f["selection"]["group_by"] == "flipped" for f in shortcut_findings(again))
    assert "flipped" not in set(shortcut_candidates(again.inputs, roles=again.column_roles)["attribute"])
    assert "flipped" not in schema.grouping_columns(again.row_table("act"), again.column_roles)


def test_declarations_are_checked(flipped_atlas):
    atlas = nc.open_atlas(flipped_atlas)
    with pytest.raises(UserError, match="no column 'flipd' to declare"):
        atlas.declare_columns({"flipd": "bookkeeping"})
    with pytest.raises(UserError, match="role 'flag' is not one of"):
        atlas.declare_columns({"flipped": "flag"})
    assert nc.open_atlas(flipped_atlas).manifest.columns == {}
    atlas.manifest.complete = False
    with pytest.raises(AtlasError, match="finish the extraction"):
        atlas.declare_columns({"flipped": "bookkeeping"})

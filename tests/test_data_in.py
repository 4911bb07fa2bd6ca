"""Data in (issue 15): every data path keeps the user's attributes and class names, labels are
optional, column roles can be declared, and each bad input is one line (exit 2)."""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neurocarta as nc
from neurocarta.cli import main
from neurocarta.data import load_data
from neurocarta.errors import SpecError, UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """Run the CLI in this process: its exit code and its stderr."""
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    """The single error line of a failed command (no traceback, nothing else in error)."""
    errors = [line for line in err.splitlines() if line.startswith("neurocarta: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _images(root: Path, names: list[str]) -> None:
    from PIL import Image

    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (20 * i, 100, 200)).save(root / name)


# ------------------------------------------------------------------------------------ npz:
def test_npz_keeps_every_per_input_array_as_a_column_and_names_the_classes(tmp_path):
    n = 6
    np.savez(tmp_path / "d.npz", x=np.arange(n * 4, dtype=np.float32).reshape(n, 4), y=np.array([0, 1, 2, 0, 1, -1]),
             class_names=np.array(["cat", "dog", "eel"]), colour=np.array(["red", "blue"] * 3),
             flipped=np.array([True, False] * 3), age=np.arange(n) + 30, size=np.linspace(0, 1, n),
             split=np.array(["train"] * 4 + ["test"] * 2), sid=np.array([b"s%d" % i for i in range(n)]),
             patches=np.zeros((n, 2)), short=np.arange(3), payload=np.array([{"a": 1}] * n, dtype=object))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = load_data(f"npz:{tmp_path / 'd.npz'}")
    messages = [str(w.message) for w in caught]
    # one line per array it cannot use, naming it and saying why
    assert len(messages) == 3 and all("\n" not in m for m in messages), messages
    assert any("'patches'" in m and "2-D" in m for m in messages)
    assert any("'short'" in m and "3 values for 6 inputs" in m for m in messages)
    assert any("'payload'" in m and "unpickling" in m for m in messages)
    t = src.table()
    assert list(t.columns) == ["input_id", "label", "label_name", "colour", "flipped", "age", "size", "split", "sid"]
    assert src.class_names == ["cat", "dog", "eel"]
    assert t["label_name"].tolist() == ["cat", "dog", "eel", "cat", "dog", ""]
    assert t["flipped"].dtype == bool and t["age"].tolist() == [30, 31, 32, 33, 34, 35]
    assert t["sid"].tolist() == [f"s{i}" for i in range(n)] and t["size"].iloc[-1] == 1.0

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atlas = nc.extract("py:user_data:sign_net", f"npz:{tmp_path / 'd.npz'}", tmp_path / "a", layers=["fc"],
                           progress=False)
    assert atlas.inputs["colour"].tolist() == ["red", "blue"] * 3
    roles = atlas.column_roles
    assert (roles["colour"], roles["flipped"], roles["split"], roles["sid"]) == (
        "attribute", "attribute", "bookkeeping", "bookkeeping")  # sid is id-like: unique per row


def test_npz_labels_given_as_class_names(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.array(["dog", "cat", "", "dog"]))
    src = load_data(f"npz:{tmp_path / 'd.npz'}")
    assert src.class_names == ["cat", "dog"]
    assert src.table()["label"].tolist() == [1, 0, -1, 1]


@pytest.mark.parametrize("arrays,needle", [
    ({"y": np.array([0, 3]), "class_names": np.array(["a", "b"])}, "label 3 has no class name: 2 names"),
    ({"y": np.array([0, 1]), "class_names": np.array([0, 1])}, "class_names must be a 1-D array of text"),
    ({"y": np.array([0.5, 1.0])}, "labels must be integer classes or class names"),
    ({"y": np.array([0, 1, 1])}, "x has 2 rows but y has shape (3,)"),
    ({"y": np.array([{}, {}], dtype=object)}, "y holds Python objects"),
    ({"y": np.array(["a", "b"]), "class_names": np.array(["a", "b"])}, "y holds class names and class_names"),
])
def test_npz_bad_arrays_are_one_line(tmp_path, capsys, arrays, needle):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 4), dtype=np.float32), **arrays)
    with pytest.raises(SpecError, match=re.escape(needle)):
        load_data(f"npz:{tmp_path / 'd.npz'}")
    rc, err = _cli(capsys, "extract", "--model", "py:user_data:sign_net", "--data", f"npz:{tmp_path / 'd.npz'}",
                   "--out", tmp_path / "a", "--quiet")
    assert rc == 2 and needle in _one_error_line(err)
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------------- folder:
def test_a_flat_folder_is_unlabelled_said_once_and_every_map_still_runs(tmp_path, capsys):
    from neurocarta.findings import findings, has_labels
    from neurocarta.pipeline import build_mappers, build_topomaps

    _images(tmp_path / "photos", [f"im{i:02d}.png" for i in range(24)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = load_data(f"folder:{tmp_path / 'photos'}")
    assert [str(w.message).count("no class subfolders") for w in caught] == [1]
    assert list(src.table().columns) == ["input_id", "path"] and src.class_names is None  # no label, not -1

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atlas = nc.extract("py:tiny_models:cnn_bundle", src, tmp_path / "a", layers=["fc"], progress=False)
    assert "label" not in atlas.inputs.columns and atlas.inputs["correct"].isna().all()
    capsys.readouterr()
    runs = build_topomaps(atlas, method="pca", progress=False, formats=())
    assert [r.result.group_by for r in runs] == ["pred"]  # the model's classes stand in, and it says so
    assert "the data has no labels, so topomaps are grouped by pred" in capsys.readouterr().err
    assert build_mappers(atlas, progress=False)[0].graph.n_nodes >= 1
    assert not has_labels(atlas) and [f for f in findings(atlas) if f["kind"] != "concept"] == []
    rc, err = _cli(capsys, "findings", tmp_path / "a")
    assert rc == 0 and "no labels, so the findings about classes" in err
    rc, err = _cli(capsys, "topomap", tmp_path / "a", "--group-by", "confusion", "--quiet")
    assert rc == 2 and "confusion needs labels" in _one_error_line(err)
    rc, err = _cli(capsys, "topomap", tmp_path / "a", "--group-by", "label", "--quiet")
    assert rc == 2 and "(the data has no labels)" in _one_error_line(err)


def _class_folder(root: Path) -> list[str]:
    names = [f"{c}/{i}.png" for c in ("cat", "dog") for i in range(3)]
    _images(root, names)
    return names


def test_folder_metadata_table_joins_attributes_on_the_path(tmp_path):
    names = _class_folder(tmp_path / "photos")
    meta = pd.DataFrame({"path": names, "site": ["A", "B", "A"] * 2, "scanner": [1, 2, 3, 1, 2, 3]})
    meta["path"] = ["./" + p if i % 2 else p.replace("/", "\\") for i, p in enumerate(meta["path"])]  # as written
    meta.sample(frac=1, random_state=0).to_csv(tmp_path / "meta.csv", index=False)  # any row order
    meta.to_parquet(tmp_path / "meta.parquet")
    for table in ("meta.csv", "meta.parquet"):
        src = nc.data.with_inputs(load_data(f"folder:{tmp_path / 'photos'}"), tmp_path / table)
        t = src.table()
        assert t["path"].tolist() == names and t["site"].tolist() == ["A", "B", "A"] * 2
        assert t["scanner"].tolist() == [1, 2, 3, 1, 2, 3] and t["label_name"].tolist() == ["cat"] * 3 + ["dog"] * 3
        assert src.spec.endswith(f"|inputs={table}")
    atlas = nc.extract("py:tiny_models:cnn_bundle", f"folder:{tmp_path / 'photos'}", tmp_path / "a",
                       inputs=tmp_path / "meta.csv", layers=["fc"], progress=False)
    assert atlas.inputs["site"].tolist() == ["A", "B", "A"] * 2 and atlas.class_names == ["cat", "dog"]


@pytest.mark.parametrize("rows,needle", [
    (slice(0, 4), "meta.csv misses 2 of the 6 inputs (dog/1.png, dog/2.png); add a row for each"),
    (slice(None), "meta.csv names 1 path(s) that are not in the data (bird/0.png)"),
])
def test_a_metadata_table_that_misses_or_invents_files_is_one_line(tmp_path, capsys, rows, needle):
    names = _class_folder(tmp_path / "photos")
    paths = names[rows] + (["bird/0.png"] if rows == slice(None) else [])
    pd.DataFrame({"path": paths, "site": "A"}).to_csv(tmp_path / "meta.csv", index=False)
    rc, err = _cli(capsys, "extract", "--model", "py:tiny_models:cnn_bundle", "--data", f"folder:{tmp_path / 'photos'}",
                   "--inputs", tmp_path / "meta.csv", "--out", tmp_path / "a", "--quiet")
    assert rc == 2 and needle in _one_error_line(err)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("meta,needle", [
    (pd.DataFrame({"file": ["cat/0.png"]}), "meta.csv has no 'path' column to join on"),
    (pd.DataFrame({"path": ["cat/0.png", "cat/0.png"]}), "names 1 path(s) more than once (cat/0.png)"),
    (pd.DataFrame({"path": ["cat/0.png"], "label": ["x"]}), "column 'label' is already in the input table"),
])
def test_metadata_table_errors(tmp_path, meta, needle):
    _class_folder(tmp_path / "photos")
    meta.to_csv(tmp_path / "meta.csv", index=False)
    with pytest.raises(SpecError, match=re.escape(needle)):
        nc.data.with_inputs(load_data(f"folder:{tmp_path / 'photos'}"), tmp_path / "meta.csv")
    with pytest.raises(SpecError, match="give a .csv or .parquet table"):
        nc.data.with_inputs(load_data(f"folder:{tmp_path / 'photos'}"), tmp_path / "meta.xlsx")


def test_a_metadata_table_joins_on_input_id_for_other_data(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((3, 4), dtype=np.float32))
    pd.DataFrame({"input_id": [2, 0, 1], "site": ["c", "a", "b"]}).to_csv(tmp_path / "m.csv", index=False)
    src = nc.data.with_inputs(load_data(f"npz:{tmp_path / 'd.npz'}"), tmp_path / "m.csv")
    assert src.table()["site"].tolist() == ["a", "b", "c"]
    pd.DataFrame({"input_id": [0, 1], "site": ["a", "b"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(SpecError, match=re.escape("m.csv misses 1 of the 3 inputs (2); add a row for each, keyed by "
                                                  "input_id")):
        nc.data.with_inputs(load_data(f"npz:{tmp_path / 'd.npz'}"), tmp_path / "m.csv")


def test_a_metadata_label_column_labels_a_flat_folder(tmp_path):
    _images(tmp_path / "photos", ["a.png", "b.png", "c.png"])
    pd.DataFrame({"path": ["c.png", "a.png", "b.png"], "label": ["owl", "cat", ""]}).to_csv(tmp_path / "m.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = nc.data.with_inputs(load_data(f"folder:{tmp_path / 'photos'}"), tmp_path / "m.csv")
    assert src.class_names == ["cat", "owl"]
    assert src.table()[["label", "label_name"]].values.tolist() == [[0, "cat"], [-1, ""], [1, "owl"]]


# ----------------------------------------------------------------------------------- py:
def test_py_dataset_items_carry_labels_by_name_and_attributes(tmp_path):
    src = load_data("py:user_data:patient_scans")
    t = src.table()
    assert src.class_names == ["healthy", "ill"] and t["label_name"].tolist()[:4] == ["ill", "healthy", "healthy", "ill"]
    assert t["site"].tolist()[:3] == ["north", "south", "north"] and t["age"].tolist()[-1] == 51
    assert t["scanned"].dtype == bool and t["note"].isna().tolist()[:3] == [True, False, True] and t["note"][1] == "retake"
    unlabelled = load_data("py:user_data:unlabelled")
    assert list(unlabelled.table().columns) == ["input_id"] and unlabelled.class_names is None
    with pytest.raises(SpecError, match=re.escape("item 0 is a 4-tuple (Tensor, int, int, int); return x, (x, y)")):
        load_data("py:user_data:quadruples")
    atlas = nc.extract("py:user_data:sign_net", "py:user_data:patient_scans", tmp_path / "a", layers=["fc"],
                       columns={"age": "bookkeeping"}, progress=False)
    assert atlas.inputs["site"].tolist()[:2] == ["north", "south"]
    assert atlas.manifest.columns == {"age": "bookkeeping"} and atlas.column_roles["age"] == "bookkeeping"


def _readme_block(first_line: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"README has no python block starting {first_line!r}"
    return found[0]


@pytest.mark.parametrize("module,spec,columns", [
    ("mydata", "py:mydata:scans", ["input_id", "label", "label_name", "site", "age"]),
    ("mysource", "py:mysource:build", ["input_id", "label", "label_name", "room"]),
])
def test_the_readme_py_data_templates_run_from_the_working_directory(tmp_path, monkeypatch, module, spec, columns):
    (tmp_path / f"{module}.py").write_text(_readme_block(f"# {module}.py: {spec}"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, module, raising=False)
    src = load_data(spec)
    assert list(src.table().columns) == columns and len(src.get([0, 1])) == 2


# --------------------------------------------------------------------------- column roles
def _shortcut_npz(path: Path, n: int = 200) -> str:
    """Labels at random; ``flipped`` sets the sign of x[0], which alone decides sign_net's class:
    a planted shortcut on flipped. ``sid`` is unique per input (id-like)."""
    rng = np.random.default_rng(0)
    flipped = rng.random(n) < 0.5
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[:, 0] = np.where(flipped, 1.0, -1.0)
    np.savez(path, x=x, y=rng.integers(0, 2, n), flipped=flipped, sid=np.arange(1000, 1000 + n))
    return f"npz:{path}"


def test_declared_bookkeeping_and_id_like_columns_never_produce_findings(tmp_path, capsys):
    from neurocarta.findings import findings

    data = _shortcut_npz(tmp_path / "d.npz")
    atlas = nc.extract("py:user_data:sign_net", data, tmp_path / "a", layers=["fc"], progress=False)
    about = lambda fs, col: [f for f in fs if f["kind"] == "shortcut" and f["selection"]["group_by"] == col]
    assert about(findings(atlas), "flipped")  # the planted shortcut, while flipped is an attribute
    assert atlas.column_roles["sid"] == "bookkeeping" and not about(findings(atlas), "sid")

    assert main(["columns", str(tmp_path / "a"), "flipped=bookkeeping"]) == 0
    assert re.search(r"^flipped +bookkeeping  \(declared\)$", capsys.readouterr().out, re.M)
    after = nc.open_atlas(tmp_path / "a")
    assert after.column_roles["flipped"] == "bookkeeping" and not about(findings(after), "flipped")

    declared = nc.extract("py:user_data:sign_net", data, tmp_path / "b", layers=["fc"], progress=False,
                          columns={"flipped": "bookkeeping"})
    assert declared.manifest.columns == {"flipped": "bookkeeping"} and not about(findings(declared), "flipped")


def test_columns_command_lists_and_declares(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((30, 4), dtype=np.float32), y=np.arange(30) % 2,
             site=np.array(["a", "b", "c"] * 10))
    nc.extract("py:user_data:sign_net", f"npz:{tmp_path / 'd.npz'}", tmp_path / "a", layers=["fc"], progress=False)
    assert main(["columns", str(tmp_path / "a"), "site=bookkeeping", "--json"]) == 0
    import json

    roles = json.loads(capsys.readouterr().out)
    assert roles["site"] == "bookkeeping" and roles["label"] == "label" and roles["pred"] == "output"
    assert main(["columns", str(tmp_path / "a")]) == 0
    assert "site        bookkeeping  (declared)" in capsys.readouterr().out
    rc, err = _cli(capsys, "columns", tmp_path / "a", "nope=attribute")
    assert rc == 2 and "the atlas has no column 'nope'" in _one_error_line(err)


@pytest.mark.parametrize("columns,needle", [
    ("flipped=weird", "column 'flipped': role 'weird' is not one of label, attribute, output, bookkeeping"),
    ("flipped", "cannot read column role 'flipped': write NAME=ROLE"),
    ("site=attribute", "--columns names 'site', which is not a column of the data; its columns: input_id"),
])
def test_bad_column_declarations_are_one_line(tmp_path, capsys, columns, needle):
    data = _shortcut_npz(tmp_path / "d.npz", n=20)
    rc, err = _cli(capsys, "extract", "--model", "py:user_data:sign_net", "--data", data, "--columns", columns,
                   "--out", tmp_path / "a", "--quiet")
    assert rc == 2 and needle in _one_error_line(err)
    with pytest.raises(UserError):
        nc.extract("py:user_data:sign_net", data, tmp_path / "a", columns={"site": "attribute"}, progress=False)


# ----------------------------------------------------------------------------------- hfds:
def _hf_images(path: Path) -> None:
    import datasets
    from PIL import Image

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=["bean", "rust"]),
                                  "site": datasets.Value("string"), "size": datasets.Value("float32"),
                                  "box": datasets.Sequence(datasets.Value("float32"))})
    ds = datasets.Dataset.from_dict({"img": [Image.new("RGB", (8, 8), (40 * i, 0, 0)) for i in range(6)],
                                     "label": [0, 1, 1, 0, 1, 0], "site": ["A", "B"] * 3,
                                     "size": [1.0, 2.0, 3.0] * 2, "box": [[0.0, 1.0]] * 6}, features=features)
    datasets.DatasetDict({"train": ds, "test": ds.select([0, 1, 2])}).save_to_disk(str(path))


def test_hfds_image_dataset_from_disk(tmp_path, capsys):
    _hf_images(tmp_path / "beans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        src = load_data(f"hfds:{tmp_path / 'beans'}:test")
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        "column 'box' is not kept as an attribute: it is a List, not one plain value per row"]
    t = src.table()
    assert src.modality == "image" and src.class_names == ["bean", "rust"]
    assert list(t.columns) == ["input_id", "label", "label_name", "site", "size"]
    assert t["label_name"].tolist() == ["bean", "rust", "rust"] and t["site"].tolist() == ["A", "B", "A"]
    assert src.get([1])[0].shape == (8, 8, 3) and src.get([1])[0][0, 0].tolist() == [40, 0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        atlas = nc.extract("py:tiny_models:cnn_bundle", f"hfds:{tmp_path / 'beans'}:train", tmp_path / "a",
                           layers=["fc"], progress=False)
    assert atlas.inputs["label_name"].tolist() == ["bean", "rust", "rust", "bean", "rust", "bean"]
    assert atlas.class_names == ["bean", "rust"] and atlas.inputs["site"].tolist() == ["A", "B"] * 3
    for spec, needle in ((f"hfds:{tmp_path / 'beans'}", "holds several splits; pick one of train, test with"),
                         (f"hfds:{tmp_path / 'beans'}:valid", "has no split 'valid'; pick one of train, test"),
                         (f"hfds:{tmp_path / 'nowhere'}", "does not exist")):
        rc, err = _cli(capsys, "extract", "--model", "py:tiny_models:cnn_bundle", "--data", spec,
                       "--out", tmp_path / "b", "--quiet")
        assert rc == 2 and needle in _one_error_line(err)


def test_hfds_text_dataset_picks_its_text_column_or_asks(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"sentence": ["a red apple", "the bank", "a calm river"],
                                     "source": ["web", "book", "web"], "label": ["food", "money", "nature"]})
    ds.save_to_disk(str(tmp_path / "t"))
    with pytest.raises(SpecError, match=re.escape("has several text columns (sentence, source); pick the input "
                                                  f"with hfds:{tmp_path / 't'}?text=sentence")):
        load_data(f"hfds:{tmp_path / 't'}")
    src = load_data(f"hfds:{tmp_path / 't'}?text=sentence")
    assert src.modality == "text" and src.class_names == ["food", "money", "nature"]
    assert src.table()[["text", "source"]].values.tolist() == [["a red apple", "web"], ["the bank", "book"],
                                                               ["a calm river", "web"]]
    assert src.get([2]) == ["a calm river"]
    with pytest.raises(SpecError, match="holds one dataset, not splits"):
        load_data(f"hfds:{tmp_path / 't'}:train")
    with pytest.raises(SpecError, match=re.escape("cannot read 'colour=x'")):
        load_data(f"hfds:{tmp_path / 't'}?colour=x")

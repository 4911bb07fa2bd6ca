"""The inspector names an input's prediction and marks it right or wrong only when the data's
labels are the model's classes (issue 15), in a real browser (helpers of test_viewer_e2e.py)."""

from __future__ import annotations

import pytest

import neurocarta as nc
from neurocarta.pipeline import build_topomaps
from test_models_in import _image_folder, _named_cnn
from test_viewer_e2e import Page, browser, serving  # noqa: F401  (browser is a fixture)

pytestmark = pytest.mark.slow

CLASSES = ["apple", "bee", "cat", "dog"]


def _prediction_text(browser, atlas, input_id: int) -> tuple[str, str]:  # noqa: F811 - the fixture
    """The inspector's prediction cell for ``input_id``: its text and its CSS classes."""
    build_topomaps(atlas, layers=["head"], method="pca", progress=False)
    with serving(atlas.root) as url:
        p = Page(browser)
        try:
            page = p.open(url + "#notour")
            page.fill("[data-testid=inspector-goto]", str(input_id))
            page.keyboard.press("Enter")
            cell = page.wait_for_selector("[data-testid=inspector-prediction]")
            text, classes = cell.inner_text(), cell.get_attribute("class") or ""
            assert p.errors == []
        finally:
            p.context.close()
    return text, classes


@pytest.mark.parametrize("folders,scored", [(CLASSES, True), (["x", "y"], False)])
def test_the_inspector_marks_a_prediction_only_when_it_is_scored(browser, tmp_path, folders, scored):  # noqa: F811
    atlas = nc.extract(_named_cnn(CLASSES), _image_folder(tmp_path / "photos", folders), tmp_path / "atlas",
                       layers=["head"], progress=False)
    row = atlas.inputs.iloc[0]
    text, classes = _prediction_text(browser, atlas, 0)
    assert text.startswith(f"{row['pred_name']} (") and row["pred_name"] in CLASSES
    if scored:
        right = bool(row["correct"])
        assert text.endswith("✓" if right else "✗") and (("wrong" in classes.split()) is not right)
    else:
        assert "✓" not in text and "✗" not in text and "wrong" not in classes.split()

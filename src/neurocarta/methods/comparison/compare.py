"""``compare_atlases``: layer similarity and concept matching of one atlas (its layers and
snapshots) or two (made on the same inputs), as one result for the CLI, the viewer and
notebooks."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ...errors import UserError
from ..defaults import COMPARISON_BATCH_SIZE, COMPARISON_MAX_INPUTS
from .concept_matching import ConceptMatch, compare_concepts
from .layers import LayerSimilarity, layer_similarity

if TYPE_CHECKING:
    from ...store import Atlas


@dataclass
class AtlasComparison:
    """``similarity``: CKA of every pair of layers and snapshots; ``concepts``: the concept
    matching (None when not asked for, or when it could not run: ``concepts_note`` says why)."""
    similarity: LayerSimilarity
    concepts: ConceptMatch | None = None
    concepts_note: str | None = None
    warnings: list[str] = field(default_factory=list)  # what was warned on the way (e.g. different data)

    def to_json(self) -> dict:
        return {"similarity": self.similarity.to_json(),
                "concepts": self.concepts.to_json() if self.concepts is not None else None,
                "concepts_note": self.concepts_note, "warnings": self.warnings}

    def plot(self):
        return self.similarity.plot()

    def _repr_png_(self) -> bytes:
        return self.similarity._repr_png_()

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``similarity.png`` (the heatmaps) and ``comparison.json`` into ``out_dir``."""
        import json

        from ...render import save_figure

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        figure = save_figure(self.plot(), out / "similarity.png")
        data = out / "comparison.json"
        data.write_text(json.dumps(self.to_json(), indent=1))
        return {"figure": figure, "json": data}

    def __repr__(self) -> str:
        return f"<AtlasComparison {self.similarity!r} {self.concepts!r}>"


def compare_atlases(atlas: "Atlas", other: "Atlas | None" = None, layers: list[str] | None = None,
                    other_layers: list[str] | None = None, snapshots: str = "all", concepts: bool = True,
                    batch_size: int = COMPARISON_BATCH_SIZE,
                    max_inputs: int = COMPARISON_MAX_INPUTS, seed: int = 0,
                    progress: bool = False) -> AtlasComparison:
    """Layer similarity (see ``layers.layer_similarity``) and, with ``concepts``, concept
    matching (``concept_matching.compare_concepts``: one atlas's first snapshot against its
    last; two atlases' last snapshots). An atlas with one snapshot compared with nothing has no
    concept matching to do; that is said in ``concepts_note``."""
    # warnings are kept with the result (the viewer shows them) and passed on as they were
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        similarity = layer_similarity(atlas, other, layers=layers, other_layers=other_layers, snapshots=snapshots,
                                      batch_size=batch_size, max_inputs=max_inputs, seed=seed, progress=progress)
        match, note = None, None
        if concepts and other is None and len(atlas.snapshots) < 2:
            note = "one atlas with one snapshot: no other snapshot or model to match its concepts with"
        elif concepts:
            try:
                match = compare_concepts(atlas, other)
            except UserError as e:  # e.g. a layer without exemplars, or no groups: the CKA stands alone
                note = f"concept matching skipped: {e}"
    said = list(dict.fromkeys(str(w.message) for w in caught))
    for message in said:
        warnings.warn(message, stacklevel=2)
    return AtlasComparison(similarity, match, note, said)

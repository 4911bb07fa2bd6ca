"""Label issues of an atlas through cleanlab: the evidence the label findings read.

Confident learning (cleanlab) needs *out-of-sample* class probabilities, and the atlas stores
only in-sample outputs (pred, confidence = p(pred), loss = -log p(label)). So two estimates
stand side by side:

- **the representation's**: leave-one-out kNN class probabilities in the activation space of
  a late layer (the deepest per-input layer that is not the logits; token layers: the mean of
  each input's rows). An input's own label never votes for it, so the estimate is out of
  sample (leave-one-out is k-fold cross-validation with one input per fold, and for a kNN
  classifier it costs one neighbour query). The votes come from standardised, PCA-reduced
  activations; the distances Datalab reads for outliers, near duplicates and groups from the
  centred ones (:func:`reduce_features` says why); both euclidean, so a far input stays far
  (cosine would hide a magnitude outlier).
- **the model's own**: the softmax of a stored logits layer when there is one, else the
  vector rebuilt from pred/confidence/loss (p(pred) and p(label) are exact, the remaining mass
  is spread evenly over the other classes). In sample: a model that memorised a wrong label
  puts mass on it, which only makes the rule more cautious.

cleanlab judges their mean: averaging the probabilities of several models is the ensemble
cleanlab's authors recommend, it ranks better than either alone (the loss ranks by the
model, the kNN-disagreement baseline by the neighbours), and an input only scores high when
both put their mass away from its label. ``cleanlab.Datalab`` then reads these probabilities
and the kNN graph (computed once, passed in) for label issues, outliers, near duplicates and
underperforming groups.

A label issue becomes a *mislabel* only when the neighbours and the model both disagree with
the given label (:attr:`LabelIssues.mislabelled`): an input the model predicts as its label
is never called mislabelled.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from ..store import schema
from .common import class_names
from .shortcut import atlas_shortcut_causes, shortcut_victims
from .systematic import systematic_disagreements

if TYPE_CHECKING:
    from ..store import Atlas

#: neighbours per input: Datalab's own default k, for the class votes and every issue type
NEIGHBOURS = 10
#: the features are PCA-reduced to at most this many dimensions before the neighbour search
FEATURE_DIMS = 50
#: a layer is the model's logits when it has one neuron per class and its argmax is the
#: stored prediction for at least this share of the inputs (float16 storage may flip a tie)
LOGITS_AGREEMENT = 0.99
#: layers up to this many neurons are PCA-reduced through their covariance matrix, wider ones
#: by a randomized SVD
COVARIANCE_PCA_MAX = 1024
#: fewer labelled inputs than this: the neighbour estimates are too coarse to judge anything
MIN_INPUTS = 3 * NEIGHBOURS
#: numeric attributes are cut into this many quantile bins to test whether they explain a pair
ATTRIBUTE_BINS = 4
#: a held-out input is a mislabel candidate only where the model gives its prediction at least
#: this probability (measured: the demo's held-out test errors that look like label issues reach
#: 0.85, the benchmark's held-out flips on digits mostly 0.9 to 1)
HELD_OUT_CONFIDENCE = 0.9
#: outliers: Datalab's fence on the mean neighbour distance is Q3 + (1/t - 1) IQR; t = 0.25
#: gives Tukey's "far out" fence, Q3 + 3 IQR (Datalab's default, 1.7 IQR, flags about half a
#: percent of plain Gaussian data)
OUTLIER_THRESHOLD = 0.25


@dataclass
class LabelIssues:
    """cleanlab's verdicts on the labelled inputs of one snapshot (arrays aligned by row).

    ``pred``/``model_probs`` are None when the model's outputs are not the data's classes
    (no loss stored): then nothing can be called mislabelled or confused.
    """

    layer: str  # the layer whose activations are the features
    input_ids: np.ndarray
    labels: np.ndarray  # given labels, class indices
    knn_probs: np.ndarray  # (inputs, classes) leave-one-out neighbour votes
    neighbours: np.ndarray  # (inputs, NEIGHBOURS) row indices of each input's voting neighbours
    graph: sparse.csr_matrix  # the neighbours by the layer's own distances: Datalab's knn_graph
    pred: np.ndarray | None
    model_probs: np.ndarray | None
    model_source: str  # where the model's probabilities come from, in words
    probs: np.ndarray  # what cleanlab judged: the mean of the two, or the kNN's alone
    issues: pd.DataFrame  # Datalab's issue table, one row per input
    info: dict  # Datalab's info per issue type that ran
    skipped: dict  # issue type -> why Datalab could not run it
    factors: pd.DataFrame  # the categorical attributes, aligned by row (for systematic.py)
    held_out: np.ndarray  # outside the training split (all False when the data has no split)
    shortcut_victims: np.ndarray  # disagreements a detected shortcut explains (shortcut.py)

    @property
    def n_classes(self) -> int:
        return self.probs.shape[1]

    @property
    def knn_pred(self) -> np.ndarray:
        return self.knn_probs.argmax(axis=1)

    @property
    def suggested(self) -> np.ndarray:
        """The class each input looks like: the argmax of the judged probabilities."""
        return self.probs.argmax(axis=1)

    @property
    def label_score(self) -> np.ndarray:
        """cleanlab's label quality (self-confidence of the judged probabilities), in [0, 1]."""
        if "label_score" in self.issues:
            return self.issues["label_score"].to_numpy(dtype=float)
        return self.probs[np.arange(len(self.labels)), self.labels]

    @cached_property
    def neighbour_share(self) -> np.ndarray:
        """(inputs, classes): the share of each input's neighbours in each class."""
        counts = np.zeros_like(self.knn_probs)
        n, k = self.neighbours.shape
        np.add.at(counts, (np.repeat(np.arange(n), k), self.labels[self.neighbours].ravel()), 1.0)
        return counts / k

    @cached_property
    def candidates(self) -> np.ndarray:
        """cleanlab's label issues on which the neighbours and the model both disagree with the
        given label and agree on the class it looks like: the model predicts that class and
        most of the neighbours (more than half) carry it. Where the data has a split, a
        held-out input also needs the model's confidence in its prediction to reach
        :data:`HELD_OUT_CONFIDENCE`: on a training input the model disagrees although it was
        fitted to the label, while on a held-out input a disagreement may be one of its test
        errors, which the neighbours in its own layer share."""
        if self.pred is None or "is_label_issue" not in self.issues:
            return np.zeros(len(self.labels), dtype=bool)
        rows = np.arange(len(self.labels))
        confident = self.model_probs[rows, self.pred] >= HELD_OUT_CONFIDENCE
        return (self.issues["is_label_issue"].to_numpy(dtype=bool) & (self.pred != self.labels)
                & (self.neighbour_share[rows, self.pred] > 0.5) & (~self.held_out | confident))

    @cached_property
    def _systematic(self) -> tuple[np.ndarray, list[dict]]:
        if self.pred is None:  # no model verdict: nothing was a candidate
            return np.zeros(len(self.labels), dtype=bool), []
        return systematic_disagreements(self.candidates, self.labels, self.pred, self.factors, self.held_out)

    @property
    def systematic(self) -> np.ndarray:
        """Candidates an attribute or the held-out split explains: the model's systematic error
        (a shortcut's victims), not label noise (systematic.py)."""
        return self._systematic[0]

    @property
    def explanations(self) -> list[dict]:
        """Per explained (label, looks-like) pair: the factor, its values, how many, p and q."""
        return self._systematic[1]

    @property
    def mislabelled(self) -> np.ndarray:
        """The inputs a mislabel finding names: candidates that no factor explains, and that a
        detected shortcut does not explain either (its victims are the shortcut's finding)."""
        return self.candidates & ~self.systematic & ~self.shortcut_victims

    def estimated_noise_rate(self) -> float | None:
        """cleanlab's estimate of the share of wrong labels: the off-diagonal mass of its
        estimated joint distribution of (given, true) labels."""
        joint = self.info.get("label", {}).get("confident_joint")
        if joint is None:
            return None
        joint = np.asarray(joint, dtype=float)
        return float(1.0 - np.trace(joint) / max(joint.sum(), 1e-12))


def feature_layer(atlas: Atlas, logits: str | None) -> str | None:
    """The deepest layer with activations per input (or token rows to average) that is not the
    model's logits: late enough to sort inputs by class, and not fitted to the labels
    themselves the way the logits are."""
    for name in reversed(atlas.layer_names):
        if name != logits:
            return name
    return None


def logits_layer(atlas: Atlas, snapshot: str, pred: np.ndarray, row_of_input: pd.Series) -> str | None:
    """The stored layer that is the model's logits: per input, one neuron per output, argmax =
    the stored prediction (:data:`LOGITS_AGREEMENT`)."""
    n_out = int(pred.max()) + 1
    for name in reversed(atlas.layer_names):
        info = atlas.manifest.layer(name)
        if info.rows != "input" or info.kind == "conv" or info.n_neurons < n_out:
            continue
        acts = np.asarray(atlas.activations(name, snapshot)[:], dtype=np.float32)
        if (acts[row_of_input.to_numpy()].argmax(axis=1) == pred).mean() >= LOGITS_AGREEMENT:
            return name
        return None  # only the deepest candidate can be the output
    return None


def layer_features(atlas: Atlas, layer: str, snapshot: str) -> tuple[np.ndarray, np.ndarray]:
    """(input ids, one feature row per input) of ``layer``: conv layers by their spatial mean,
    token layers by the mean of each input's rows (a sparse averaging matrix, chunk by chunk)."""
    acts = atlas.activations(layer, snapshot)
    ids = atlas.row_table(layer, snapshot)[schema.INPUT_ID].to_numpy()
    if atlas.manifest.layer(layer).rows != "token":
        return ids, np.asarray(acts[:], dtype=np.float32)
    inputs, row_input = np.unique(ids, return_inverse=True)
    per_input = np.bincount(row_input, minlength=len(inputs)).astype(np.float32)
    out = np.zeros((len(inputs), acts.shape[1]), dtype=np.float32)
    for start, chunk in acts.iter_chunks():
        rows = np.arange(start, start + len(chunk))
        mean_of = sparse.csr_matrix((1.0 / per_input[row_input[rows]], (row_input[rows], rows - start)),
                                    shape=(len(inputs), len(chunk)))
        out += mean_of @ np.asarray(chunk, dtype=np.float32)
    return inputs, out


def reduce_features(x: np.ndarray, standardise: bool, dims: int = FEATURE_DIMS, seed: int = 0) -> np.ndarray:
    """Centred (and, with ``standardise``, each neuron divided by its spread), then PCA to at
    most ``dims`` dimensions: the neighbour search stays fast and ignores the noise directions.

    Standardised for the class votes: a loud neuron does not outvote the rest (mislabel
    precision 0.98 against 0.95 unstandardised on the demo, 0.95 against 0.82 on the
    benchmark's digits). Not for distances that claim an input is far or a twin: the neurons of
    one layer share a scale, and a nearly dead ReLU unit divided by its tiny spread put the few
    inputs that fire it a hundred times farther from the rest than any other (the clean demo's
    head.relu: 6 "outliers" with ordinary activations)."""
    from sklearn.decomposition import PCA

    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    if standardise:
        sd = x.std(axis=0)
        x = x[:, sd > 0] / sd[sd > 0]
    if x.shape[1] > dims and x.shape[0] > dims:
        if x.shape[1] <= COVARIANCE_PCA_MAX:
            # the covariance's top eigenvectors: exact, and a d x d problem (10,000 x 128: 0.05 s
            # where sklearn's full SVD took 1.6 s and its randomized one 5 s on the loaded 2 cores)
            _, vectors = np.linalg.eigh(x.T @ x)
            x = x @ vectors[:, ::-1][:, :dims]
        else:
            x = PCA(n_components=dims, svd_solver="randomized", random_state=seed).fit_transform(x)
    return x.astype(np.float32)


def neighbour_graph(x: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, sparse.csr_matrix]:
    """Each input's ``k`` nearest other inputs (euclidean): their row indices, and the same as
    the sparse distance graph cleanlab's Datalab takes as ``knn_graph`` (rows sorted by
    distance, exact duplicates kept as explicit zeros)."""
    from sklearn.neighbors import NearestNeighbors

    n = len(x)
    dist, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    # drop the input itself; where exact duplicates tie with it, it may not be listed first
    # (or at all): then the farthest of the k + 1 goes instead
    own = idx == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True
    idx, dist = idx[~own].reshape(n, k), dist[~own].reshape(n, k)
    graph = sparse.csr_matrix((dist.ravel(), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    return idx, graph


def knn_class_probs(neighbour_labels: np.ndarray, n_classes: int, prior: np.ndarray) -> np.ndarray:
    """Class probabilities from the neighbours' labels: votes plus one pseudo-vote spread by the
    class prior (a Dirichlet prior), so no class gets exactly 0 or 1 from ten votes."""
    n, k = neighbour_labels.shape
    votes = np.zeros((n, n_classes))
    np.add.at(votes, (np.repeat(np.arange(n), k), neighbour_labels.ravel()), 1.0)
    return (votes + prior[None, :]) / (k + 1.0)


def model_class_probs(pred: np.ndarray, confidence: np.ndarray, loss: np.ndarray, labels: np.ndarray,
                      n_classes: int) -> np.ndarray:
    """The model's class probabilities rebuilt from the stored outputs: p(pred) = confidence and
    p(label) = exp(-loss) are exact; the rest of the mass is spread evenly over the other
    classes (the stored outputs do not say how it was split)."""
    n = len(pred)
    rows = np.arange(n)
    p_label = np.where(pred == labels, confidence, np.minimum(np.exp(-loss), 1.0 - confidence))
    probs = np.zeros((n, n_classes))
    probs[rows, labels] = p_label
    probs[rows, pred] = confidence
    known = 1 + (pred != labels)
    rest = np.clip(1.0 - probs.sum(axis=1), 0.0, None) / np.maximum(n_classes - known, 1)
    probs += np.where(probs == 0, rest[:, None], 0.0)
    return probs / probs.sum(axis=1, keepdims=True)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _run_datalab(labels: np.ndarray, probs: np.ndarray, graph: sparse.csr_matrix,
                 model_probs: np.ndarray | None) -> tuple[pd.DataFrame, dict, dict]:
    """Datalab's label, outlier and near-duplicate checks on the judged probabilities and the
    neighbour graph, then its underperforming-group check on the model's own probabilities (the
    group the *model* fails on), on one Datalab (building one converts the labels row by row).
    An issue type that cannot run is skipped with Datalab's reason."""
    from cleanlab import Datalab

    # n_jobs=1: cleanlab otherwise forks a multiprocessing pool, and findings also run inside the
    # viewer's server threads (and test workers), where forking a threaded process can hang forever
    label = {"clean_learning_kwargs": {"find_label_issues_kwargs": {"n_jobs": 1}}}
    plan = [({"label": label, "outlier": {"threshold": OUTLIER_THRESHOLD}, "near_duplicate": {}}, probs)]
    if model_probs is not None:
        # DBSCAN's radius on the scale of these features: the median distance to the k-th
        # neighbour, so a typical input is a core point and the groups are the dense regions
        # (Datalab's default, 0.5, is meant for cosine distances)
        eps = max(float(np.median(graph.max(axis=1).toarray())), 1e-9)
        plan.append(({"underperforming_group": {"clustering_kwargs": {"eps": eps}}}, model_probs))
    lab = Datalab({"label": labels}, label_name="label", verbosity=0)
    printed = io.StringIO()
    for issue_types, p in plan:
        # Datalab prints its progress and the issue types that failed (it goes on with the rest)
        with warnings.catch_warnings(), contextlib.redirect_stdout(printed):
            warnings.simplefilter("ignore")  # cleanlab's advice on small data is for notebooks
            lab.find_issues(pred_probs=p, knn_graph=graph, issue_types=issue_types)
    ran = set(lab.issue_summary["issue_type"])
    reasons = dict(line[len("Error in "):].split(": ", 1) for line in printed.getvalue().splitlines()
                   if line.startswith("Error in ") and ": " in line)
    skipped = {name: reasons.get(name, "not run") for types, _ in plan for name in types if name not in ran}
    issues, info = [], {}
    for name in (n for types, _ in plan for n in types if n in ran):
        found = lab.get_issues(name)
        issues.append(found.drop(columns=[c for c in ("given_label", "predicted_label") if c in found]))
        info[name] = lab.get_info(name)
    table = pd.concat(issues, axis=1) if issues else pd.DataFrame(index=np.arange(len(labels)))
    return table.loc[:, ~table.columns.duplicated()], info, skipped


def attribute_factors(atlas: Atlas, table: pd.DataFrame) -> pd.DataFrame:
    """The attributes of ``table``'s inputs as categories for systematic.py: categorical
    attributes as they are, numeric ones with many values cut into ``ATTRIBUTE_BINS`` quantile
    bins (a shape's size explains a confusion of small diamonds with triangles as much as a
    background does)."""
    categorical = [c for c in atlas.categories(include=(schema.ATTRIBUTE,)) if c in table.columns]
    numeric = [c for c, role in atlas.column_roles.items() if role == schema.ATTRIBUTE and c in table.columns
               and c not in categorical and pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])]
    out = {c: table[c].to_numpy() for c in categorical}
    for c in numeric:
        out[c] = pd.qcut(table[c].rank(method="first"), ATTRIBUTE_BINS, labels=False).to_numpy()
    return pd.DataFrame(out, index=np.arange(len(table)))


def find_label_issues(atlas: Atlas, snapshot: str | None = None) -> LabelIssues | None:
    """cleanlab's verdicts on ``atlas``'s labelled inputs, or None when there is nothing to
    judge (no labels, a summary-mode atlas without activations, fewer than
    :data:`MIN_INPUTS` labelled inputs, a single class)."""
    snap = atlas.snapshot_name(snapshot)
    table = atlas.inputs_with_outputs(snap)
    if schema.LABEL not in table or atlas.mode == "summary" or not atlas.layer_names:
        return None
    table = table[table[schema.LABEL].notna() & (table[schema.LABEL] >= 0)]
    labels_all = table[schema.LABEL].to_numpy(dtype=np.int64)
    if len(table) < MIN_INPUTS or len(np.unique(labels_all)) < 2:
        return None
    has_model = (schema.PRED in table and schema.LOSS in table and table[schema.LOSS].notna().all()
                 and table[schema.PRED].notna().all())
    pred_all = table[schema.PRED].to_numpy(dtype=np.int64) if has_model else None
    n_classes = max(len(class_names(atlas)), int(labels_all.max()) + 1,
                    int(pred_all.max()) + 1 if has_model else 0)

    # the rows of every per-input layer follow the stored input table
    row_of_input = pd.Series(np.arange(len(atlas.input_table)), index=atlas.input_table[schema.INPUT_ID])
    logits = logits_layer(atlas, snap, pred_all, row_of_input.loc[table[schema.INPUT_ID]]) if has_model else None
    layer = feature_layer(atlas, logits)
    if layer is None:
        return None
    ids, x = layer_features(atlas, layer, snap)
    keep = np.isin(ids, table[schema.INPUT_ID].to_numpy())
    ids, x = ids[keep], x[keep]
    table = table.set_index(schema.INPUT_ID).loc[ids]
    labels = table[schema.LABEL].to_numpy(dtype=np.int64)

    k = min(NEIGHBOURS, len(ids) - 1)
    neighbours, _ = neighbour_graph(reduce_features(x, standardise=True), k)  # the class votes
    _, graph = neighbour_graph(reduce_features(x, standardise=False), k)  # Datalab's distances
    prior = np.bincount(labels, minlength=n_classes) / len(labels)
    knn_probs = knn_class_probs(labels[neighbours], n_classes, prior)
    pred = model_probs = None
    model_source = "none: the model's outputs are not the data's classes (no loss stored)"
    if has_model:
        pred = table[schema.PRED].to_numpy(dtype=np.int64)
        if logits is not None:
            z = np.asarray(atlas.activations(logits, snap)[:], dtype=np.float32)[row_of_input.loc[ids].to_numpy()]
            model_probs = np.zeros((len(ids), n_classes))
            model_probs[:, :z.shape[1]] = _softmax(z.astype(np.float64))[:, :n_classes]
            model_source = f"the softmax of the logits layer {logits}"
        else:
            model_probs = model_class_probs(pred, table[schema.CONFIDENCE].to_numpy(dtype=float),
                                            table[schema.LOSS].to_numpy(dtype=float), labels, n_classes)
            model_source = "the stored outputs (pred, confidence, loss)"
    probs = knn_probs if model_probs is None else (knn_probs + model_probs) / 2

    # Datalab indexes classes by the labels present: judge only those columns
    present = np.unique(labels)
    local = np.searchsorted(present, labels)
    def restrict(p):  # (a floor, so a model sure of an absent class still gives a distribution)
        return None if p is None else (p[:, present] + 1e-12) / (p[:, present] + 1e-12).sum(axis=1, keepdims=True)
    issues, info, skipped = _run_datalab(local, restrict(probs), graph, restrict(model_probs))
    factors = attribute_factors(atlas, table)
    held_out = np.zeros(len(ids), dtype=bool)
    if schema.SPLIT in table and (table[schema.SPLIT] == "train").any():
        held_out = (table[schema.SPLIT] != "train").to_numpy()
    victims = np.zeros(len(ids), dtype=bool)
    if has_model:
        victims = shortcut_victims(table, atlas_shortcut_causes(atlas, snap))
        if held_out.any():
            # a training input was fitted to its label: the model disagreeing with it there is
            # evidence against the label, not the shortcut's pull, which shows on held-out data
            # (the demo: 20 of the 21 training inputs this would exclude are planted flips)
            victims &= held_out
    return LabelIssues(layer=layer, input_ids=ids, labels=labels, knn_probs=knn_probs, neighbours=neighbours, graph=graph,
                       pred=pred, model_probs=model_probs, model_source=model_source, probs=probs,
                       issues=issues.reset_index(drop=True), info=info, skipped=skipped,
                       factors=factors, held_out=held_out, shortcut_victims=victims)


def label_issue_ranking(atlas: Atlas, snapshot: str | None = None) -> pd.DataFrame:
    """Every labelled input ranked by how likely its label is wrong, most likely first.

    Columns: ``input_id``, ``label`` (given), ``suggested`` (the class it looks like),
    ``score`` (1 - cleanlab's label quality: higher = more likely mislabelled) and ``flagged``
    (in a mislabel finding). Empty when the atlas cannot be judged (see :func:`find_label_issues`).
    """
    columns = ["input_id", "label", "suggested", "score", "flagged"]
    found = find_label_issues(atlas, snapshot)
    if found is None:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(columns, ["int64", "int64", "int64", "float64",
                                                                            "bool"])})
    out = pd.DataFrame({"input_id": found.input_ids, "label": found.labels, "suggested": found.suggested,
                        "score": 1.0 - found.label_score, "flagged": found.mislabelled})
    return out.sort_values(["score", "input_id"], ascending=[False, True], kind="stable").reset_index(drop=True)

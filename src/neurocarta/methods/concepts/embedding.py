"""Neuron embedding of the concept atlas: neurons that share exemplar inputs lie close.

Every neuron has an exemplar set (its top-k inputs), stored as CSR arrays ``indptr`` (int64,
n + 1) and ``indices`` (int64 input ids, unique and sorted per neuron). NeuroCartography
reads each input's list of neurons that have it in their top-k as one "sentence" and trains
skip-gram with negative sampling (SGNS) on those sentences, then projects with UMAP. Its
trainer has a gradient bug and its UMAP is unseeded and never aligned between snapshots.

Here:

- :func:`ppmi_svd` (the default) factorises the positive PMI matrix of neuron co-occurrence
  with a seeded truncated SVD. Levy & Goldberg (2014) showed SGNS implicitly factorises a
  shifted PMI matrix, so this is the same objective solved directly: no learning rate, no
  epochs, deterministic for a seed, and it takes seconds where training took minutes.
- :func:`sgns` is the original's method written correctly (both input and output vectors
  get the gradient of ``log s(u.v) + sum log s(-u.v')``), seeded, in a numba kernel.
- :func:`project_2d` is seeded UMAP with cosine metric, optionally aligned by Procrustes to
  a reference layout, so a slider across training snapshots shows movement, not rotation.
- :func:`nearest_neurons` answers "the 10 nearest neurons" in the embedding space itself,
  not in the 2-D projection, which distorts neighbourhoods.

Memory scales with the non-zeros of the incidence and co-occurrence matrices, never n^2.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from ...errors import UserError

#: Context-distribution smoothing exponent of :func:`ppmi` (Levy, Goldberg & Dagan 2015),
#: the same 0.75 power word2vec uses for its negative-sampling distribution.
CONTEXT_ALPHA = 0.75


# --------------------------------------------------------------------------- input checks

def validate_sets(indptr: np.ndarray, indices: np.ndarray,
                  n_inputs: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Checked int64 copies of a CSR exemplar-set pair, and the number of inputs.

    ``n_inputs`` defaults to the largest input id + 1. Raises :class:`UserError` on any
    inconsistency, because a corrupt set table would otherwise give silently wrong maps.
    """
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    if indptr.ndim != 1 or indices.ndim != 1 or indptr.size < 1:
        raise UserError("exemplar sets must be 1-D CSR arrays: indptr (n + 1) and indices")
    if not (np.issubdtype(indptr.dtype, np.integer) and
            (indices.size == 0 or np.issubdtype(indices.dtype, np.integer))):
        raise UserError("exemplar-set indptr and indices must be integer arrays")
    indptr = indptr.astype(np.int64, copy=False)
    indices = indices.astype(np.int64, copy=False)
    if indptr[0] != 0 or indptr[-1] != indices.size or np.any(np.diff(indptr) < 0):
        raise UserError(f"exemplar-set indptr must rise from 0 to len(indices)={indices.size}")
    top = int(indices.max()) + 1 if indices.size else 0
    if n_inputs is None:
        n_inputs = top
    if indices.size and (indices.min() < 0 or top > n_inputs):
        raise UserError(f"exemplar input ids must lie in 0..{n_inputs - 1}")
    rows = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    same_row = rows[1:] == rows[:-1]
    if np.any(np.diff(indices)[same_row] <= 0):
        raise UserError("exemplar input ids must be unique and sorted within each neuron")
    return indptr, indices, int(n_inputs)


def incidence(indptr: np.ndarray, indices: np.ndarray, n_inputs: int | None = None) -> sp.csr_matrix:
    """Sparse 0/1 matrix A (neurons x inputs): A[i, x] = 1 when input x is in neuron i's set."""
    indptr, indices, n_inputs = validate_sets(indptr, indices, n_inputs)
    data = np.ones(indices.size, dtype=np.float64)
    return sp.csr_matrix((data, indices, indptr), shape=(indptr.size - 1, n_inputs))


def _check_dim(dim: int) -> int:
    if not isinstance(dim, (int, np.integer)) or dim < 1:
        raise UserError(f"embedding dim must be an integer >= 1, got {dim!r}")
    return int(dim)


# --------------------------------------------------------------------------- PPMI + SVD

def cooccurrence(indptr: np.ndarray, indices: np.ndarray, n_inputs: int | None = None) -> sp.csr_matrix:
    """Neuron x neuron counts of shared exemplar inputs, ``A @ A.T`` (float64, sparse).

    The diagonal holds each neuron's set size (a neuron shares all of its inputs with
    itself); :func:`ppmi` drops it. Cost and memory follow the number of co-occurring
    pairs, i.e. the sum over inputs of (neurons holding it)^2, not n^2. With a Dask cluster
    configured (:mod:`neurocarta.compute`) the inputs are split into blocks whose partial
    products are summed on the workers; the counts are the same.
    """
    from ... import compute

    a = incidence(indptr, indices, n_inputs)
    c = compute.sparse_gram(a)
    c.sort_indices()
    return c


def ppmi(cooc: sp.spmatrix) -> sp.csr_matrix:
    """Positive pointwise mutual information of a symmetric co-occurrence count matrix.

    ``ppmi[i, j] = max(0, log(C[i, j] * D / (r_i * q_j)))`` with ``r_i`` the row sums,
    ``D = sum(r)``, and ``q_j = D * r_j^0.75 / sum(r^0.75)`` the context counts with
    context-distribution smoothing (Levy, Goldberg & Dagan 2015): without it, rare neurons
    get inflated PMI with everything they touch. The diagonal is removed first, since a
    neuron's co-occurrence with itself is just its set size and would dominate the
    marginals. Zeros stay zeros (the result is as sparse as the input).
    """
    c = sp.csr_matrix(cooc, dtype=np.float64, copy=True)
    if c.shape[0] != c.shape[1]:
        raise UserError(f"a co-occurrence matrix must be square, got shape {c.shape}")
    c.setdiag(0.0)
    c.eliminate_zeros()
    if c.data.size and (c.data.min() < 0 or not np.isfinite(c.data).all()):
        raise UserError("co-occurrence counts must be finite and non-negative")
    rows = np.asarray(c.sum(axis=1)).ravel()
    total = rows.sum()
    if total <= 0:
        return sp.csr_matrix(c.shape, dtype=np.float64)
    smooth = rows ** CONTEXT_ALPHA
    context = total * smooth / smooth.sum()
    coo = c.tocoo()
    pmi = np.log(coo.data * total / (rows[coo.row] * context[coo.col]))
    keep = pmi > 0
    out = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=c.shape)
    out.sort_indices()
    return out


def ppmi_svd(indptr: np.ndarray, indices: np.ndarray, dim: int = 30, seed: int = 0,
             n_inputs: int | None = None) -> np.ndarray:
    """(n, min(dim, n)) float32 neuron embedding: truncated SVD of the PPMI matrix.

    Rows are ``U * sqrt(S)``: the symmetric split of the singular values (eigenvalue weight
    0.5), which Levy, Goldberg & Dagan found better for similarity than ``U * S`` and which
    is the split SGNS's input/output factorisation approximates. The SVD is seeded
    (scikit-learn's randomized_svd with sign flipping), so a seed gives the same array on
    every call. ``dim`` larger than the number of neurons is clipped to it. Neurons whose
    PPMI row is empty (an empty set, no input shared with another neuron, or only
    co-occurrences below chance) get zero rows.
    """
    from sklearn.utils.extmath import randomized_svd

    dim = _check_dim(dim)
    m = ppmi(cooccurrence(indptr, indices, n_inputs))
    n = m.shape[0]
    k = min(dim, n)
    out = np.zeros((n, k), dtype=np.float32)
    if m.nnz == 0 or k == 0:
        return out
    u, s, _ = randomized_svd(m, n_components=k, n_oversamples=max(10, k), n_iter=7,
                             random_state=seed)
    emb = u * np.sqrt(s)[None, :]
    emb[np.diff(m.indptr) == 0] = 0.0  # rows with no PMI mass carry only rounding noise
    out[:] = emb
    return out


# --------------------------------------------------------------------------- SGNS

def sentences(indptr: np.ndarray, indices: np.ndarray,
              n_inputs: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per input, the neurons whose set holds it, as CSR (``sent_ptr``, ``neurons``)."""
    at = incidence(indptr, indices, n_inputs).T.tocsr()
    at.sort_indices()
    return at.indptr.astype(np.int64), at.indices.astype(np.int64)


def sgns(indptr: np.ndarray, indices: np.ndarray, dim: int = 30, negatives: int = 10,
         epochs: int = 5, window: int = 1, lr: float = 0.025, seed: int = 0,
         n_inputs: int | None = None) -> np.ndarray:
    """(n, dim) float32 neuron embedding by skip-gram with negative sampling.

    The original's recipe: each input's list of neurons is a sentence, shuffled afresh each
    epoch (the order inside a sentence means nothing, so a short window over a shuffled list
    samples pairs of co-holders at random); ``window`` neighbours each side are positive
    contexts and ``negatives`` noise neurons are drawn from the unigram^0.75 distribution.
    The learning rate decays linearly to 1e-4 * lr as in word2vec. The result is the input
    vectors; neurons in no sentence of length >= 2 keep zero rows. Deterministic for a seed
    (single-threaded kernel with numba's seeded generator). The original's 5 epochs suit its
    ~700k tokens (6.9k neurons x top-100); on a few thousand tokens they under-train, so
    small sets need more epochs (or :func:`ppmi_svd`, which has no such knob).
    """
    dim = _check_dim(dim)
    for name, value, low in (("negatives", negatives, 0), ("epochs", epochs, 1), ("window", window, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise UserError(f"sgns {name} must be an integer >= {low}, got {value!r}")
    if not isinstance(lr, (int, float, np.number)) or not np.isfinite(lr) or lr <= 0:
        raise UserError(f"sgns lr must be a positive number, got {lr!r}")
    ptr, neurons = sentences(indptr, indices, n_inputs)
    n = len(indptr) - 1
    counts = np.bincount(neurons, minlength=n).astype(np.float64)
    noise = np.cumsum(counts ** CONTEXT_ALPHA)
    if noise.size == 0 or noise[-1] <= 0:
        return np.zeros((n, dim), dtype=np.float32)
    noise /= noise[-1]
    w_in, _ = _sgns_kernel(ptr, neurons.copy(), noise, n, dim, int(negatives), int(epochs),
                           int(window), float(lr), int(seed) % (2 ** 32))
    lengths = np.diff(ptr)
    trained = np.zeros(n, dtype=bool)
    trained[neurons[np.repeat(lengths >= 2, lengths)]] = True
    w_in[~trained] = 0.0
    return w_in.astype(np.float32)


@njit(cache=True)
def _sigmoid(x: float) -> float:
    if x > 30.0:
        return 1.0
    if x < -30.0:
        return 0.0
    return 1.0 / (1.0 + np.exp(-x))


@njit(cache=True)
def _sgns_kernel(ptr, tokens, noise, n, dim, negatives, epochs, window, lr, seed):
    """Plain SGD over all (centre, context) pairs; ``tokens`` is shuffled in place."""
    np.random.seed(seed)
    w_in = (np.random.random((n, dim)) - 0.5) / dim
    w_out = np.zeros((n, dim))
    grad = np.zeros(dim)
    n_sent = ptr.size - 1
    total = max(1, epochs * tokens.size)
    done = 0
    order = np.arange(n_sent)
    for _ in range(epochs):
        np.random.shuffle(order)
        for s in order:
            lo, hi = ptr[s], ptr[s + 1]
            np.random.shuffle(tokens[lo:hi])
            for i in range(lo, hi):
                alpha = lr * max(1e-4, 1.0 - done / total)
                done += 1
                centre = tokens[i]
                for j in range(max(lo, i - window), min(hi, i + window + 1)):
                    if j != i:
                        _pair(w_in, w_out, grad, centre, tokens[j], noise, negatives, alpha)
    return w_in, w_out


@njit(cache=True)
def _pair(w_in, w_out, grad, centre, context, noise, negatives, alpha):
    """One SGD step on ``log s(u.v) + sum_neg log s(-u.v')`` for u = w_in[centre].

    d/dv of log s(label * u.v) is (label - s(u.v)) * u, and symmetrically for u; the input
    vector's step is accumulated in ``grad`` and applied after all output vectors moved,
    as word2vec does, so every term sees the same u.
    """
    dim = w_in.shape[1]
    grad[:] = 0.0
    for d in range(negatives + 1):
        if d == 0:
            target, label = context, 1.0
        else:
            target = np.searchsorted(noise, np.random.random(), side="right")
            if target >= noise.size:
                target = noise.size - 1
            if target == context:
                continue
            label = 0.0
        dot = 0.0
        for f in range(dim):
            dot += w_in[centre, f] * w_out[target, f]
        g = (label - _sigmoid(dot)) * alpha
        for f in range(dim):
            grad[f] += g * w_out[target, f]
            w_out[target, f] += g * w_in[centre, f]
    for f in range(dim):
        w_in[centre, f] += grad[f]


# --------------------------------------------------------------------------- 2-D projection

def unit_square(points: np.ndarray) -> np.ndarray:
    """Centre and scale uniformly (aspect kept) into [0, 1] x [0, 1]."""
    y = np.asarray(points, dtype=np.float64)
    if y.shape[0] == 0:
        return y
    lo, hi = y.min(axis=0), y.max(axis=0)
    span = float((hi - lo).max()) or 1.0
    return (y - (lo + hi) / 2) / span + 0.5


def align_procrustes(points: np.ndarray, reference: np.ndarray, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """``points`` moved onto ``reference`` by the similarity transform that minimises the
    summed squared distance: rotation or reflection, uniform scale and translation.
    ``fit_rows`` (a boolean mask or indices): fit the transform on those rows only (e.g.
    neurons alive in both snapshots) and apply it to every row; other reference rows may
    be NaN.

    Orthogonal Procrustes on centred points: R = U V^T from the SVD of X^T Y (no
    determinant fix, so reflections are allowed, since UMAP's mirror images are equally
    valid), scale = trace(S) / |X|^2. Works in any dimension; rows must correspond.
    """
    x_all = np.asarray(points, dtype=np.float64)
    y_all = np.asarray(reference, dtype=np.float64)
    if x_all.ndim != 2 or x_all.shape != y_all.shape:
        raise UserError(f"Procrustes needs two arrays of the same (n, d) shape, got {x_all.shape} and {y_all.shape}")
    x, y = (x_all, y_all) if fit_rows is None else (x_all[fit_rows], y_all[fit_rows])
    if not (np.isfinite(x_all).all() and np.isfinite(y).all()):
        raise UserError("Procrustes inputs hold NaN or Inf")
    if x.shape[0] == 0:
        return x_all.copy()
    cx, cy = x.mean(axis=0), y.mean(axis=0)
    x0, y0 = x - cx, y - cy
    norm = float((x0 ** 2).sum())
    if norm == 0.0:
        return np.broadcast_to(cy, x_all.shape).copy()
    u, s, vt = np.linalg.svd(x0.T @ y0)
    return (s.sum() / norm) * ((x_all - cx) @ (u @ vt)) + cy


def project_2d(embedding: np.ndarray, seed: int = 0, reference: np.ndarray | None = None,
               n_neighbors: int = 15) -> np.ndarray:
    """(n, 2) seeded projection of an embedding for the Neuron Projection View.

    UMAP (umap-learn, cosine metric, ``random_state=seed``, single thread so the seed
    holds); for fewer than 5 neurons, where UMAP's neighbour graph is meaningless, the
    first two principal components of the unit rows. The result is scaled into the unit
    square. With ``reference`` (a previous snapshot's (n, 2) layout of the same neurons)
    it is then Procrustes-aligned to it and lives in the reference's frame instead.
    """
    x = np.asarray(embedding, dtype=np.float64)
    if x.ndim != 2:
        raise UserError(f"an embedding must be a 2-D (neurons, dims) array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise UserError("the embedding holds NaN or Inf")
    if not isinstance(n_neighbors, (int, np.integer)) or n_neighbors < 2:
        raise UserError(f"n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    n = x.shape[0]
    if reference is not None and np.shape(reference) != (n, 2):
        raise UserError(f"reference layout must have shape ({n}, 2), got {np.shape(reference)}")
    y = unit_square(_umap(x, seed, n_neighbors) if n >= 5 else _pca_2d(x))
    return y if reference is None else align_procrustes(y, reference)


def _umap(x: np.ndarray, seed: int, n_neighbors: int) -> np.ndarray:
    import warnings

    from ..umap_kernels import umap_module

    umap = umap_module()  # its kernels from numba's cache: no recompiling in every process
    n = x.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs=1 with random_state, and small-n spectral notes
        reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), metric="cosine",
                            random_state=seed, n_jobs=1, init="spectral" if n >= 10 else "random")
        return reducer.fit_transform(x)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """First two principal axes of the unit rows (cosine geometry); zero-padded if fewer."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.where(norm > 0, norm, 1.0)
    u = u - u.mean(axis=0) if u.shape[0] else u
    out = np.zeros((x.shape[0], 2))
    if u.size:
        left, s, _ = np.linalg.svd(u, full_matrices=False)
        k = min(2, s.size)
        out[:, :k] = left[:, :k] * s[:k]
    return out


# --------------------------------------------------------------------------- neighbours

def nearest_neurons(embedding: np.ndarray, index: int | np.ndarray, k: int = 10,
                    block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` cosine-nearest neurons to ``index`` in the embedding, itself excluded.

    Returns ``(indices, similarities)``, most similar first; shapes
    (k,) for one index, (m, k) for an array of m indices. ``k`` is clipped to n - 1. Zero
    rows (neurons without exemplars) have similarity 0 to everything. Queries run in blocks
    of ``block`` rows, so memory is block x n.
    """
    e = np.asarray(embedding, dtype=np.float64)
    if e.ndim != 2:
        raise UserError(f"an embedding must be a 2-D (neurons, dims) array, got shape {e.shape}")
    n = e.shape[0]
    idx = np.asarray(index)
    if not np.issubdtype(idx.dtype, np.integer) or idx.ndim > 1:
        raise UserError("index must be an integer or a 1-D array of integers")
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise UserError(f"neuron index out of range 0..{n - 1}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise UserError(f"k must be an integer >= 1, got {k!r}")
    k = min(int(k), n - 1)
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    unit = e / np.where(norm > 0, norm, 1.0)
    queries = np.atleast_1d(idx) % max(n, 1)
    out_i = np.zeros((queries.size, k), dtype=np.int64)
    out_s = np.zeros((queries.size, k), dtype=np.float64)
    for lo in range(0, queries.size, block):
        q = queries[lo:lo + block]
        sims = unit[q] @ unit.T
        sims[np.arange(q.size), q] = -np.inf
        out_i[lo:lo + q.size], out_s[lo:lo + q.size] = _top_k(sims, k)
    return (out_i[0], out_s[0]) if idx.ndim == 0 else (out_i, out_s)


def _top_k(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k largest entries sorted descending; equal values in the result are
    ordered by column (which of several equal values at the k-th place is kept is not fixed)."""
    if k == 0:
        return np.zeros((sims.shape[0], 0), np.int64), np.zeros((sims.shape[0], 0))
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # k <= n - 1 < n columns
    vals = np.take_along_axis(sims, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    return top, np.take_along_axis(sims, top, axis=1)

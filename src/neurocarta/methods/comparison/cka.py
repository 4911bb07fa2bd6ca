"""Linear CKA (centred kernel alignment) between representations of the same inputs.

CKA compares two representations X (n x p) and Y (n x q) of the same n inputs through their
Gram matrices K = X X^T and L = Y Y^T: CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)). With
the linear kernel it is invariant to orthogonal transforms and isotropic scaling of either
side (Kornblith et al. 2019), so layers of different widths, or of two models, compare.

Why the unbiased, minibatch form (Nguyen, Raghu & Kornblith 2021): the textbook (biased) HSIC
needs all n inputs in one n x n Gram matrix, and its bias pushes CKA up for small n. The
unbiased estimator of Song et al. (2012), HSIC_1, is unbiased on any minibatch of 4 or more
inputs, so sums of per-minibatch HSIC_1 converge to the population HSIC and CKA streams over
inputs in b x b Grams. HSIC_1 is computed here through U-centring (Szekely & Rizzo 2014): with
K~ the Gram with a zero diagonal, U(K)_ij = K~_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2)) for
i != j (r the row sums, s the total) and 0 on the diagonal; then HSIC_1(K, L) = <U(K), U(L)> /
(n (n - 3)). One flattened U(K) per representation turns every pair's HSIC on a minibatch into
one matrix product (R x b^2 times b^2 x R) for R representations.

Pure numpy, float64 accumulation.
"""

from __future__ import annotations

import numpy as np

from ...errors import UserError

MIN_BATCH = 4  # HSIC_1 divides by n - 3


def u_centred(gram: np.ndarray) -> np.ndarray:
    """The U-centred Gram matrix (float64, zero diagonal) of an n x n Gram, n >= 4."""
    k = np.array(gram, dtype=np.float64)
    n = k.shape[0]
    if n < MIN_BATCH:
        raise UserError(f"unbiased HSIC needs at least {MIN_BATCH} inputs, got {n}")
    np.fill_diagonal(k, 0.0)
    rows = k.sum(axis=1)
    k -= rows[:, None] / (n - 2)
    k -= rows[None, :] / (n - 2)
    k += rows.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(k, 0.0)
    return k


def _centred_gram(x: np.ndarray) -> np.ndarray:
    """The linear Gram of the column-centred rows (float64). Centring the features first does not
    change HSIC (H K H is the same) but keeps the Gram's entries small, so large activation
    offsets lose no precision."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    return x @ x.T


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise UserError(f"CKA compares two (inputs x features) arrays of the same inputs, got shapes "
                        f"{x.shape} and {y.shape}")
    return x, y


def linear_cka(x: np.ndarray, y: np.ndarray, unbiased: bool = True) -> float:
    """Linear CKA of two representations of the same inputs (rows), in one batch.

    ``unbiased``: HSIC_1 (Song et al.); else the textbook biased HSIC, tr(K H L H). NaN when
    either side is constant (no variance to align).
    """
    x, y = _check_pair(x, y)
    kx, ky = _centred_gram(x), _centred_gram(y)
    if unbiased:
        kx, ky = u_centred(kx), u_centred(ky)
    xy, xx, yy = float((kx * ky).sum()), float((kx * kx).sum()), float((ky * ky).sum())
    return xy / np.sqrt(xx * yy) if xx > 0 and yy > 0 else float("nan")


class MinibatchCKA:
    """Unbiased linear CKA between every pair of ``n_representations`` representations,
    accumulated over minibatches of the same inputs (Nguyen et al. 2021):

        CKA(i, j) = sum_b HSIC_1(K_i^b, K_j^b) / sqrt(sum_b HSIC_1(K_i^b, K_i^b) sum_b HSIC_1(K_j^b, K_j^b))

    Feed each minibatch as one (b x features) array per representation, rows the same inputs
    in the same order. Minibatches should be random draws of the inputs (``batches`` in
    ``layers.py`` shuffles them): HSIC_1 is unbiased for a random batch, not for one sorted by
    class.
    """

    def __init__(self, n_representations: int):
        self.hsic = np.zeros((n_representations, n_representations))
        self.n_batches = 0
        self.n_inputs = 0

    def update(self, blocks: list[np.ndarray]) -> None:
        """Add one minibatch: ``blocks[i]`` is representation i's rows for the batch's inputs."""
        if len(blocks) != len(self.hsic):
            raise UserError(f"expected {len(self.hsic)} representations, got {len(blocks)}")
        n = blocks[0].shape[0]
        if any(b.shape[0] != n for b in blocks):
            raise UserError("every representation of a minibatch needs the same inputs (rows)")
        u = np.stack([u_centred(_centred_gram(b)).ravel() for b in blocks])
        self.hsic += (u @ u.T) / (n * (n - 3))
        self.n_batches += 1
        self.n_inputs += n

    def matrix(self) -> np.ndarray:
        """The (R x R) CKA matrix; NaN for a representation without variance."""
        d = np.diag(self.hsic).copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.sqrt(np.where(d > 0, d, np.nan))
            return self.hsic / np.outer(scale, scale)

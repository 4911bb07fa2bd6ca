"""How faithfully a 2-D neuron layout keeps the neurons' distances.

Smoothness of the rendered map alone rewards blur, so neurocarta measures faithfulness:

- **trustworthiness@k**: are a neuron's neighbours on the map also its neighbours in
  profile space? Map neighbours that are far in profile space are penalised by their rank
  (Venna and Kaski, 2001). 1 is perfect; a random layout scores about 0.5.
- **continuity@k**: the converse: are profile-space neighbours kept together on the map?
- **neighbourhood preservation@k**: the mean share of the k nearest profile-space
  neighbours that are also among the k nearest map neighbours.
- **distance Spearman**: rank correlation of all (or a seeded sample of) pairwise distances.

Everything is computed on float arrays, block by block: memory is O(block x n), not n^2.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

METRICS = ("cosine", "correlation", "euclidean")


def _check(high: np.ndarray, low: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    high = np.asarray(high, dtype=np.float64)
    low = np.asarray(low, dtype=np.float64)
    if high.ndim != 2 or low.ndim != 2 or high.shape[0] != low.shape[0]:
        raise ValueError(f"need (n, d) profiles and an (n, 2) layout with the same n, got {high.shape} and {low.shape}")
    n = high.shape[0]
    if not 1 <= k < n / 2:
        raise ValueError(f"k must be at least 1 and below n/2 = {n / 2:g}, got {k}")
    if not (np.isfinite(high).all() and np.isfinite(low).all()):
        raise ValueError("profiles and layout must be finite (no NaN or Inf)")
    return high, low


def distance_rows(x: np.ndarray, metric: str, block: int = 512) -> Iterator[tuple[int, np.ndarray]]:
    """Distance rows ``x[s:s+block]`` to every point, self-distance set to +inf.

    Cosine and correlation come from one matrix product of unit rows (BLAS), as does
    euclidean beyond 3 dimensions; a constant profile is at distance 1 from everything.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    x = np.asarray(x, dtype=np.float64)
    if metric in ("cosine", "correlation"):
        u = x - x.mean(axis=1, keepdims=True) if metric == "correlation" else x
        norm = np.linalg.norm(u, axis=1)
        dead = norm == 0
        u = u / np.where(dead, 1.0, norm)[:, None]
    elif x.shape[1] > 3:
        sq = (x * x).sum(axis=1)
    for s in range(0, x.shape[0], block):
        if metric in ("cosine", "correlation"):
            d = 1.0 - u[s:s + block] @ u.T
            np.maximum(d, 0.0, out=d)
            d[dead[s:s + block]] = 1.0
            d[:, dead] = 1.0
        elif x.shape[1] > 3:
            d = np.sqrt(np.maximum(sq[s:s + block, None] + sq[None, :] - 2.0 * (x[s:s + block] @ x.T), 0.0))
        else:
            d = cdist(x[s:s + block], x)
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = np.inf
        yield s, d


def _knn(d: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of each row's k nearest points, ties broken by index (as a stable sort
    would), in O(n) per row with a partition instead of a sort."""
    kth = np.partition(d, k - 1, axis=1)[:, k - 1:k]
    mask = d <= kth
    over = np.flatnonzero(np.count_nonzero(mask, axis=1) > k)  # rows with ties at the k-th distance
    if over.size:
        sub = d[over]
        equal = sub == kth[over]
        need = k - np.count_nonzero(sub < kth[over], axis=1)[:, None]
        mask[over] = (sub < kth[over]) | (equal & (np.cumsum(equal, axis=1) <= need))
    return mask


def _penalty(d: np.ndarray, missed: np.ndarray, k: int) -> float:
    """Sum of (rank - k) over the (row, column) pairs in ``missed``, ranks taken in ``d``.

    A rank is counted, not sorted: 1 + #{l: d(i,l) < d(i,j)} + #{l < j: d(i,l) = d(i,j)} (ties
    by index, as a stable sort), so a block costs O(pairs x n) comparisons and no sort.
    """
    rows, cols = np.nonzero(missed)
    total = 0.0
    index = np.arange(d.shape[1])[None, :]
    for lo in range(0, rows.size, 1024):
        r, c = rows[lo:lo + 1024], cols[lo:lo + 1024]
        row_d = d[r]
        target = row_d[np.arange(len(r)), c][:, None]
        rank = 1 + np.count_nonzero(row_d < target, axis=1)
        equal = row_d == target
        tied = np.flatnonzero(np.count_nonzero(equal, axis=1) > 1)  # more than j itself
        if tied.size:
            rank[tied] += np.count_nonzero(equal[tied] & (index < c[tied, None]), axis=1)
        total += float(np.clip(rank - k, 0, None).sum())
    return total


def _neighbourhood_scores(high: np.ndarray, low: np.ndarray, k: int, metric: str, block: int) -> dict[str, float]:
    """Trustworthiness, continuity and neighbourhood preservation in one pass over row blocks."""
    trust = cont = 0.0
    kept = 0
    for (_, dh), (_, dl) in zip(distance_rows(high, metric, block), distance_rows(low, "euclidean", block)):
        near_h, near_l = _knn(dh, k), _knn(dl, k)
        both = near_h & near_l
        kept += int(both.sum())
        trust += _penalty(dh, near_l & ~both, k)  # map neighbours that are far in profile space
        cont += _penalty(dl, near_h & ~both, k)  # profile neighbours torn apart on the map
    n = high.shape[0]
    return {"trustworthiness": _normalise(trust, n, k), "continuity": _normalise(cont, n, k),
            "neighbourhood_preservation": kept / (n * k)}


def _normalise(total: float, n: int, k: int) -> float:
    return float(1.0 - 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0)) * total)


def trustworthiness(high: np.ndarray, low: np.ndarray, k: int = 5, metric: str = "cosine",
                    block: int = 512) -> float:
    """Trustworthiness@k of layout ``low`` (n x 2, euclidean) for profiles ``high`` (n x d)."""
    high, low = _check(high, low, k)
    return _neighbourhood_scores(high, low, k, metric, block)["trustworthiness"]


def continuity(high: np.ndarray, low: np.ndarray, k: int = 5, metric: str = "cosine", block: int = 512) -> float:
    """Continuity@k: trustworthiness with the two spaces' roles swapped."""
    high, low = _check(high, low, k)
    return _neighbourhood_scores(high, low, k, metric, block)["continuity"]


def neighbourhood_preservation(high: np.ndarray, low: np.ndarray, k: int = 5, metric: str = "cosine",
                               block: int = 512) -> float:
    """Mean share of each neuron's k nearest profile neighbours that are k-nearest on the map."""
    high, low = _check(high, low, k)
    return _neighbourhood_scores(high, low, k, metric, block)["neighbourhood_preservation"]


def distance_spearman(high: np.ndarray, low: np.ndarray, metric: str = "cosine", max_pairs: int = 200_000,
                      seed: int = 0) -> float:
    """Spearman correlation of pairwise distances: all pairs, or a seeded sample of them."""
    high, low = _check(high, low, 1)
    n = high.shape[0]
    n_pairs = n * (n - 1) // 2
    if n_pairs <= max_pairs:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(seed)
        i = rng.integers(0, n, max_pairs)
        j = (i + rng.integers(1, n, max_pairs)) % n  # never equal to i
    dh = _pair_distance(high, i, j, metric)
    dl = np.linalg.norm(low[i] - low[j], axis=1)
    rho = spearmanr(dh, dl).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def _pair_distance(x: np.ndarray, i: np.ndarray, j: np.ndarray, metric: str) -> np.ndarray:
    if metric == "euclidean":
        return np.linalg.norm(x[i] - x[j], axis=1)
    if metric == "correlation":
        x = x - x.mean(axis=1, keepdims=True)
    elif metric != "cosine":
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, not {metric!r}")
    norm = np.linalg.norm(x, axis=1)
    norm[norm == 0] = 1.0
    u = x / norm[:, None]
    return 1.0 - np.einsum("ij,ij->i", u[i], u[j])


def layout_quality(high: np.ndarray, low: np.ndarray, k: int = 5, metric: str = "cosine") -> dict[str, float]:
    """All faithfulness metrics of one layout, as a dict (what ``--json`` reports)."""
    high, low = _check(high, low, k)
    scores = _neighbourhood_scores(high, low, k, metric, 512)
    return {**scores, "spearman": distance_spearman(high, low, metric), "k": k}


def diverging_rgb(images: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Float RGB of value images under the blue-white-red map symmetric around 0 (NaN: white)."""
    v = np.nan_to_num(np.asarray(images, dtype=np.float64), nan=0.0)
    scale = vmax if vmax is not None else float(np.abs(v).max())
    t = np.clip(v / (scale or 1.0), -1.0, 1.0)
    r = np.where(t < 0, 1.0 + t, 1.0)
    b = np.where(t > 0, 1.0 - t, 1.0)
    return np.stack([r, np.minimum(r, b), b], axis=-1)


def smoothness_auc(images: np.ndarray, kind: str = "blur", steps: int = 10, vmax: float | None = None) -> float:
    """The original's smoothness score, computed on float images so nothing wraps around.

    Each map (``images``: groups x h x w values) is coloured with the symmetric diverging
    map, then compared with copies of itself that are blurred (Gaussian radius
    0.5 p + 0.5) or shrunk and re-enlarged (to ``(55 - 5 p) / 100`` of the side), for
    p = 0 .. steps-1. The error of one copy is sum |map - copy| / sum map; the score is the
    area under the mean error curve over p. Lower means smoother. Smoothness alone rewards
    blur, which is why neurocarta reports the faithfulness metrics above as well.
    """
    from scipy.ndimage import gaussian_filter, zoom

    if kind not in ("blur", "resize"):
        raise ValueError(f"kind must be 'blur' or 'resize', not {kind!r}")
    rgb = diverging_rgb(images, vmax)
    if rgb.ndim == 3:
        rgb = rgb[None]
    h, w = rgb.shape[1:3]
    errors = np.zeros((rgb.shape[0], steps))
    for g, img in enumerate(rgb):
        total = img.sum() or 1.0
        for p in range(steps):
            if kind == "blur":
                changed = gaussian_filter(img, sigma=(0.5 * p + 0.5, 0.5 * p + 0.5, 0), mode="nearest")
            else:
                side = max(2, int(round(min(h, w) * (55 - 5 * p) / 100)))
                small = zoom(img, (side / h, side / w, 1), order=1, grid_mode=True, mode="nearest")
                changed = zoom(small, (h / small.shape[0], w / small.shape[1], 1), order=1, grid_mode=True,
                               mode="nearest")
            errors[g, p] = np.abs(img - changed).sum() / total
    curve = errors.mean(axis=0)
    return float(np.trapezoid(curve, dx=1.0)) if steps > 1 else float(curve[0])

"""mclust's start: model-based agglomerative hierarchical clustering (mclust's ``hc``).

``Mclust`` and ``mclustBIC`` start EM for every structure and K from one tree: the rows,
standardised and rotated onto their principal axes with each axis divided by the root of
its singular value (``hcUse = "SVD"``), are merged two clusters at a time, each merge the
one that costs the classification likelihood of the VVV model least (``hcVVV``, with
mclust's regularisation alpha = trace of the transformed data's scatter / (n p), beta = 1),
and the tree's partition into K clusters (``hclass``) is the classification EM's first
M-step starts from. Every row starts alone, duplicates too: ``hc`` hands ``hcVVV`` its
``partition`` (duplicate rows grouped, by default) only when the caller gives one, and
``Mclust`` does not. It is deterministic, and it reaches optima that random restarts can
miss (issue 31).

This is a port of mclust 6.0's Fortran (``hcvvv``, ``vvvtij`` in ``src/mclust.f``) in NumPy:
the same merge costs and the same choice among equal costs (the last in mclust's order of
pairs: duplicate rows, whose merges cost the same, fall as mclust's do), with the costs of
two single rows computed in mclust's arithmetic. The scatter of larger clusters is kept as
a matrix, not as mclust's triangular factor updated by rotations: the same numbers to
rounding, so a tie between merged clusters (symmetric or rounded data) may fall otherwise
than in mclust. ``tests/test_hc.py`` checks every merge and the classification for
K = 1..9 against mclust's own on Old Faithful and the diabetes data (``tests/mclust/hc.json``,
from ``tests/mclust/hc.R``).

It needs O(n^2) memory, as mclust's; above ``MAX_ROWS`` rows the tree is grown on an evenly
spaced subset and every other row joins the cluster with the nearest mean (in the
transformed coordinates).
"""

from __future__ import annotations

import hashlib

import numpy as np

# Rows the tree is grown on (see the module docstring): 2000 rows take about 2 s.
MAX_ROWS = 2000
# mclust's constant for sqrt(1/2) (hcvvv's rthalf).
_RTHALF = 0.7071067811865476


def svd_transform(x: np.ndarray) -> np.ndarray:
    """The rows as mclust's ``hc(use = "SVD")`` transforms them: centred, scaled to unit
    standard deviation (columns that are constant are left out, as mclust's ``dropCols``
    drops their NaNs), rotated onto the right singular vectors and divided by the root
    singular values. Directions of a zero singular value (columns that are linear
    combinations of others) are left out too, where mclust would divide by zero."""
    x = np.asarray(x, np.float64)
    spread = x.std(axis=0, ddof=1)
    keep = spread > 0
    z = (x[:, keep] - x[:, keep].mean(axis=0)) / spread[keep]
    _, values, vt = np.linalg.svd(z, full_matrices=False)
    rank = int(np.sum(values > values[0] * max(z.shape) * np.finfo(np.float64).eps)) if values.size else 0
    return z @ vt[:rank].T / np.sqrt(values[:rank])


def _sequential_sum(terms: np.ndarray) -> np.ndarray:
    """Sums along the last axis added one term after another, as reference BLAS's ``ddot``
    and ``daxpy`` add (numpy's sum adds in pairs, which rounds differently)."""
    total = np.zeros(terms.shape[:-1])
    for k in range(terms.shape[-1]):
        total = total + terms[..., k]
    return total


def _alpha(z: np.ndarray) -> float:
    """mclust's alpha: ``traceW(z / sqrt(n p))`` (Fortran ``mcltrw``) in its arithmetic."""
    n, p = z.shape
    x = z / np.sqrt(float(n * p))
    fac = 1.0 / np.sqrt(float(n))
    u = np.zeros(p)
    for i in range(n):
        u = u + fac * x[i]
    centred = x - fac * u
    ss = 0.0
    for j in range(p):
        ss = ss + float(_sequential_sum(centred[:, j] * centred[:, j]))
    return max(ss, np.finfo(np.float64).eps)


def _term(size, trace, scatter, p: int, alpha: float, beta: float):
    """mclust's ``vvvtij``: a cluster's share of the classification criterion, from its
    row count, the trace of its scatter and the scatter (leading axes: many clusters)."""
    size = np.asarray(size, np.float64)
    flat = np.log(beta * (trace + alpha) / size)
    if p == 0:
        return size * flat
    sign, logdet = np.linalg.slogdet(scatter)
    # log det(scatter / n): twice log |R_kk / sqrt(n)| summed, R the scatter's triangular
    # factor (det2mc)
    detlog = np.where(sign > 0, logdet - p * np.log(size), -np.inf)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        small = np.log(np.exp(detlog) + beta * (trace + alpha) / size)
        large = np.log(1.0 + np.exp(-detlog) * (beta * (trace + alpha) / size)) + detlog
        full = np.where(detlog == -np.inf, flat, np.where(detlog <= 0, small, large))
    full = np.where(trace == 0, np.log(alpha * beta / size), full)
    return size * np.where(size <= p, flat, full)


def merges(z: np.ndarray, alpha: float = 1.0, beta: float = 1.0) -> list[tuple[int, int]]:
    """The tree of ``z`` (rows already transformed): the n - 1 merges, each as the positions
    (i, j), i < j, of the two clusters merged, as mclust numbers them: the merged cluster
    takes position i and the last cluster moves into position j (``cut`` replays them)."""
    z = np.asarray(z, np.float64)
    n, p = z.shape
    alpha = max(alpha * _alpha(z), np.finfo(np.float64).eps)
    ablog = np.log(beta * alpha)

    size = np.ones(n)
    scaled_sum = z.copy()  # sum of a cluster's rows / sqrt(size), as mclust keeps it
    trace = np.zeros(n)
    scatter = np.zeros((n, p, p))
    term = np.full(n, ablog)

    # Every pair of single rows, in mclust's arithmetic (hcvvv's first loop).
    pair_trace = np.zeros((n, n))
    for k in range(p):  # feature by feature, as ddot adds them (an (n, n, p) array is too large)
        v = (z[:, None, k] - z[None, :, k]) * _RTHALF
        pair_trace = pair_trace + v * v
    cost = 2.0 * np.log(beta * (pair_trace + alpha) / 2.0) - (ablog + ablog)
    cost[np.tril_indices(n)] = np.inf  # cost[i, j] for i < j only

    # Each column's least cost and the last row that has it, kept up to date, so that a
    # merge does not search all n^2 / 2 pairs (mclust does; so done, 1000 rows took 2.0 s
    # instead of 0.67 s).
    least = cost.min(axis=0)
    least_row = n - 1 - np.argmax(cost[::-1] == least, axis=0)

    def recompute(column):
        values = cost[:column, column]
        least[column] = values.min()
        least_row[column] = np.flatnonzero(values == least[column])[-1]

    tree = []
    for lg in range(n, 1, -1):
        # The least cost; among equal ones the last in mclust's order of pairs (by j, then i).
        best = least[:lg].min()
        j = int(np.flatnonzero(least[:lg] == best)[-1])
        i = int(least_row[j])
        total = size[i] + size[j]
        diff = np.sqrt(size[j] / total) * scaled_sum[i] - np.sqrt(size[i] / total) * scaled_sum[j]
        merged_sum = np.sqrt(size[i] / total) * scaled_sum[i] + np.sqrt(size[j] / total) * scaled_sum[j]
        merged_trace = (trace[i] + trace[j]) + diff @ diff
        merged_scatter = scatter[i] + scatter[j] + np.outer(diff, diff)
        merged_term = best + (term[i] + term[j])

        last = lg - 1
        tree.append((i, j))
        if j != last:  # the last cluster moves into position j (wardsw)
            for array in (size, scaled_sum, trace, scatter, term):
                array[j] = array[last]
            cost[:j, j] = cost[:j, last]
            cost[j, j + 1 : last] = cost[j + 1 : last, last]
        size[i], scaled_sum[i], trace[i], term[i] = total, merged_sum, merged_trace, merged_term
        scatter[i] = merged_scatter
        if last == 1:
            break

        # The merged cluster's cost with every other (hcvvv after label 200).
        others = np.arange(last) != i
        n_other, other_sum = size[:last][others], scaled_sum[:last][others]
        both = size[i] + n_other
        diff = np.sqrt(n_other / both)[:, None] * scaled_sum[i] - np.sqrt(size[i] / both)[:, None] * other_sum
        pair_trace = (trace[i] + trace[:last][others]) + _sequential_sum(diff * diff)
        pair_scatter = scatter[i] + scatter[:last][others] + diff[:, :, None] * diff[:, None, :]
        pair_cost = _term(both, pair_trace, pair_scatter, p, alpha, beta) - (term[i] + term[:last][others])
        row = np.full(last, np.inf)
        row[others] = pair_cost
        cost[:i, i] = row[:i]
        cost[i, i + 1 : last] = row[i + 1 : last]

        # The columns' least costs: columns i and j are new; in the others rows i and j
        # changed, so a column whose least was in one of them is searched again, and any
        # other can only have gained a smaller cost there.
        changed = [(i, np.arange(i + 1, last))]
        if j < last:
            changed.append((j, np.arange(j + 1, last)))
        columns = np.arange(i + 1, last)
        stale = columns[np.isin(least_row[columns], [i, j])]
        for column in (c for c in (i, j) if 0 < c < last):
            recompute(column)
        for column in stale:
            recompute(column)
        for r, columns in changed:
            columns = columns[~np.isin(columns, stale) & (columns != j)]
            values = cost[r, columns]
            better = (values < least[columns]) | ((values == least[columns]) & (r > least_row[columns]))
            least[columns[better]] = values[better]
            least_row[columns[better]] = r
    return tree


def classifications(x: np.ndarray, ks) -> dict[int, np.ndarray]:
    """mclust's start for each K in ``ks``: {K: labels (n,) in 0..K-1, numbered by first
    appearance, as ``hclass``}, from the tree of the SVD-transformed rows (see the module
    docstring; rows beyond ``MAX_ROWS`` join the nearest cluster mean)."""
    z, subset, tree = _grown(np.ascontiguousarray(x, np.float64))
    out = {}
    for k in ks:
        if not 1 <= k <= len(subset):
            raise ValueError(f"mclust's start cannot make {k} clusters of {len(subset)} rows")
        labels = _first_appearance(cut(tree, len(subset), k))
        if len(subset) < z.shape[0]:  # the other rows to the nearest mean; the subset keeps its own
            means = np.stack([z[subset][labels == c].mean(axis=0) for c in range(k)])
            nearest = np.argmin(((z[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
            nearest[subset] = labels
            labels = _first_appearance(nearest)
        out[k] = labels
    return out


# The last trees grown, by data: a notebook fits one data set with several K and
# structures, and select_model fits 14 structures, each from the same tree.
_TREES: dict[bytes, tuple] = {}
_TREES_KEPT = 4


def _grown(x: np.ndarray):
    """(transformed rows, the rows the tree was grown on, the tree's merges) of ``x``."""
    key = hashlib.sha256(x.tobytes() + str((x.shape, MAX_ROWS)).encode()).digest()
    if key not in _TREES:
        z = svd_transform(x)
        n = z.shape[0]
        if z.shape[1] < 2 or n <= z.shape[1]:
            raise ValueError(
                f"init='mclust' needs at least two informative columns and more rows than columns; got {n} rows "
                f"of {z.shape[1]} after dropping constant and collinear columns (mclust starts such data otherwise)"
            )
        subset = np.arange(n) if n <= MAX_ROWS else np.linspace(0, n - 1, MAX_ROWS).round().astype(int)
        tree = merges(z[subset])
        while len(_TREES) >= _TREES_KEPT:
            _TREES.pop(next(iter(_TREES)))
        _TREES[key] = z, subset, tree
    return _TREES[key]


def cut(tree: list[tuple[int, int]], n: int, k: int) -> np.ndarray:
    """The labels (n,) of ``tree``'s partition into ``k`` clusters (positions, as mclust's)."""
    labels = np.arange(n)
    for count, (i, j) in zip(range(n - 1, k - 1, -1), tree, strict=False):
        labels[labels == j] = i
        labels[labels == count] = j  # the last cluster moved into position j
    return labels


def _first_appearance(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in the order they first appear (mclust's ``partconv``)."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return order[inverse]


def starts(x: np.ndarray, w: np.ndarray, ks) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """mclust's start for EM for each K in ``ks``: {K: (labels (N,), their classes' means
    (K, D))}, the tree grown on the rows of positive weight (mclust has no row weights:
    the weights count in the means and in EM, not in the tree); rows of weight 0 get
    label 0."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    used = w > 0
    out = {}
    for k, used_labels in classifications(x[used], ks).items():
        labels = np.zeros(x.shape[0], np.int32)
        labels[used] = used_labels
        onehot = (labels[:, None] == np.arange(k)) * w[:, None]
        means = (onehot.T @ x) / onehot.sum(axis=0)[:, None]
        out[k] = labels, means
    return out

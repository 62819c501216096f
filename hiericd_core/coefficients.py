"""Agreement coefficients from summed counts, under any bootstrap report weights.

:mod:`~hiericd_core.agreement` lays each unit's per-report statistics side by
side in :class:`WeightedColumns`; one matrix product sums them under a chunk
of bootstrap replicates' report weights, and the coefficients below turn the
sums into figures, vectorised over replicates. :func:`two_rater_agreement`
applies the same formulas to a confusion matrix, for hand checks.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import sparse

__all__ = ["WeightedColumns", "bootstrap_draws", "draw_weights", "fleiss_kappa", "krippendorff_alpha", "safe_div",
           "two_rater", "two_rater_agreement"]


class WeightedColumns:
    """Per-report statistics side by side, summed under any report weights in one product."""

    def __init__(self, n_reports: int):
        self.n_reports = n_reports
        self._dense: list[np.ndarray] = []
        self._sparse: list[sparse.csr_matrix] = []
        self._nd = self._ns = 0

    def dense(self, *columns: np.ndarray) -> slice:
        self._dense.extend(np.asarray(c, dtype=float) for c in columns)
        self._nd += len(columns)
        return slice(self._nd - len(columns), self._nd)

    def counts(self, report: np.ndarray, column: np.ndarray, value: np.ndarray, width: int) -> tuple[str, slice]:
        """Register the per-report sums of ``value`` by ``column`` (a ``(reports, width)`` table).

        A single column is kept dense (BLAS sums it); wider tables are sparse.
        """
        value = np.asarray(value, dtype=float)
        if width == 1:
            return "dense", self.dense(np.bincount(report, value, minlength=self.n_reports))
        matrix = sparse.csr_matrix((value, (report, column)), shape=(self.n_reports, width))
        self._sparse.append(matrix)
        self._ns += width
        return "sparse", slice(self._ns - width, self._ns)

    @staticmethod
    def take(handle: tuple[str, slice], d: np.ndarray, s: np.ndarray) -> np.ndarray:
        kind, columns = handle
        return (d if kind == "dense" else s)[:, columns]

    def freeze(self) -> None:
        self._d = np.stack(self._dense, axis=1) if self._dense else np.zeros((self.n_reports, 0))
        self._s = (sparse.hstack(self._sparse).T.tocsr() if self._sparse
                   else sparse.csr_matrix((0, self.n_reports)))
        self._s32 = self._s.astype(np.float32)

    def sums(self, weights: np.ndarray, exact: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Return the weighted sums ``(dense (b, nd), sparse (b, ns))`` for weights ``(reports, b)``.

        ``exact=False`` sums the sparse part in float32, four times faster; its
        values are integer counts, exact in float32 up to 2**24.
        """
        if exact:
            return weights.T @ self._d, np.asarray(self._s @ weights).T
        return weights.T @ self._d, np.asarray(self._s32 @ weights.astype(np.float32)).T.astype(float)


def bootstrap_draws(n_reports: int, n: int, seed: int) -> Iterator[np.ndarray]:
    """Yield the reports each bootstrap replicate draws, as ``(b, n_reports)`` index chunks.

    Replicates come in order, ``n`` in all; chunk sizes depend only on
    ``n_reports`` and ``n``, so a seed fixes every draw.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n, 2_000_000 // max(n_reports, 1)))
    for done in range(0, n, chunk):
        yield rng.integers(0, n_reports, size=(min(chunk, n - done), n_reports))


def draw_weights(draws: np.ndarray) -> np.ndarray:
    b, n_reports = draws.shape
    flat = (draws * b + np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=n_reports * b).reshape(n_reports, b).astype(float)


# --------------------------------------------------------------------------- the statistics


def safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1), np.nan)


def two_rater(n: np.ndarray, agree: np.ndarray, margins_a: np.ndarray, margins_b: np.ndarray,
               k: int) -> dict[str, np.ndarray]:
    """Cohen's kappa, observed agreement, PABAK and AC1 from summed counts.

    Args:
        n: ``(b,)`` items; agree: ``(b,)`` items both raters put in one category.
        margins_a, margins_b: ``(b, k - 1)`` items each rater put in categories 1..k-1.
        k: number of categories.
    """
    pa = np.column_stack((n - margins_a.sum(axis=1), margins_a)) / np.where(n > 0, n, 1)[:, None]
    pb = np.column_stack((n - margins_b.sum(axis=1), margins_b)) / np.where(n > 0, n, 1)[:, None]
    observed = safe_div(agree, n)
    expected = (pa * pb).sum(axis=1)
    mean = (pa + pb) / 2
    others = np.full_like(observed, k - 1)  # k = 1 (nothing coded): PABAK and AC1 are undefined
    chance_ac1 = safe_div((mean * (1 - mean)).sum(axis=1), others)
    return {
        "kappa": safe_div(observed - expected, 1 - expected),
        "observed": observed,
        "pabak": safe_div(k * observed - 1, others),
        "ac1": safe_div(observed - chance_ac1, 1 - chance_ac1),
    }


def two_rater_agreement(confusion: np.ndarray) -> dict[str, float]:
    """Cohen's kappa, observed agreement, PABAK and Gwet's AC1 of a ``k × k`` confusion matrix.

    ``confusion[i, j]`` counts the items rater A put in category ``i`` and
    rater B in ``j``. The same formulas as the round report, for hand checks.
    """
    table = np.asarray(confusion, dtype=float)
    k = table.shape[0]
    one = np.ones(1)
    out = two_rater(table.sum() * one, np.trace(table) * one, table.sum(axis=1)[None, 1:],
                     table.sum(axis=0)[None, 1:], k)
    return {name: float(v[0]) for name, v in out.items()}


def fleiss_kappa(n_items, sum_p, counts, raters: int) -> np.ndarray:
    """Fleiss' kappa from summed per-item agreement ``sum_p`` and category counts ``(b, k - 1)``."""
    p = counts / np.where(n_items > 0, n_items * raters, 1)[:, None]
    expected = (1 - p.sum(axis=1)) ** 2 + (p**2).sum(axis=1)
    return safe_div(safe_div(sum_p, n_items) - expected, 1 - expected)


def krippendorff_alpha(n, within, counts) -> np.ndarray:
    """Krippendorff's alpha (nominal) from pairable values ``n``, within-unit coincidences and counts."""
    zero = n - counts.sum(axis=1)
    return 1 - safe_div((n - 1) * (n - within), n**2 - zero**2 - (counts**2).sum(axis=1))

"""Information criteria of a fitted mixture: the one place where BIC, AIC and ICL are computed.

Sign convention of the library: mclust's, **larger is better**:

  BIC = 2 log L - p log N,   AIC = 2 log L - 2 p,   ICL = BIC + 2 sum_i log max_k r_ik,

with log L the total (weighted) log-likelihood of the N rows, p the free parameters and r_ik
the responsibilities. Every table, plot and report a person reads speaks this sign and says
so in its header (``label``, ``SIGN_LINE``). The other sign (smaller is better) is kept only
where an API promises it: scikit-learn's ``GaussianMixture.bic``/``aic``, which negate the
value here and say so. (``gp.compare``'s ``em_*_bic`` rows are in this sign, beside elpd_loo,
also larger is better.)

``math.log(N)``, not ``np.log(N)``: for every integer N from 1 to 10^8 the two give the same
float64 (checked on x86-64, NumPy 2.4), and math.log's is C's correctly rounded log, the same
on every machine, where NumPy may dispatch to a vectorised approximation on some CPUs.
"""

from __future__ import annotations

import math

DIRECTION = "larger is better"
FORMULAS = {
    "bic": "2 log L - p log N",
    "aic": "2 log L - 2 p",
    "icl": "BIC + 2 sum_i log max_k r_ik",
}
# The header line of a table of criteria, in the terminal and in report.md.
SIGN_LINE = f"mclust's sign, {DIRECTION}: BIC = {FORMULAS['bic']}, AIC = {FORMULAS['aic']}, ICL = {FORMULAS['icl']}"


def label(name: str) -> str:
    """A criterion's column or axis label, naming the direction: 'BIC (larger is better)'."""
    return f"{name.upper()} ({DIRECTION})"


def bic(total_log_likelihood: float, n_parameters: int, n_rows: float) -> float:
    """Bayesian information criterion, larger is better: 2 log L - p log N."""
    return 2 * total_log_likelihood - n_parameters * math.log(n_rows)


def aic(total_log_likelihood: float, n_parameters: int) -> float:
    """Akaike information criterion, larger is better: 2 log L - 2 p."""
    return 2 * total_log_likelihood - 2 * n_parameters


def icl(total_log_likelihood: float, n_parameters: int, n_rows: float, classification_term: float) -> float:
    """Integrated completed likelihood (Biernacki, Celeux and Govaert 2000), larger is better:
    BIC + 2 sum_i log max_k r_ik; ``classification_term`` is that sum (<= 0)."""
    return bic(total_log_likelihood, n_parameters, n_rows) + 2 * classification_term

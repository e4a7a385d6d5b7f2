"""Information criteria of a fitted mixture: the one place where BIC, AIC and ICL are computed.

Sign convention of the library: mclust's, **larger is better**:

  BIC = 2 log L - p log N,   AIC = 2 log L - 2 p,   ICL = BIC + 2 sum_i log max_k r_ik,

with log L the total (weighted) log-likelihood of the N rows, p the free parameters and r_ik
the responsibilities. Where an outside convention asks for the other sign (scikit-learn's
``GaussianMixture.bic``, or a column beside ArviZ's looic, smaller is better), the caller
negates the value here and says so.

``math.log(N)``, not ``np.log(N)``: for every integer N from 1 to 10^8 the two give the same
float64 (checked on x86-64, NumPy 2.4), and math.log's is C's correctly rounded log, the same
on every machine, where NumPy may dispatch to a vectorised approximation on some CPUs.
"""

from __future__ import annotations

import math


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

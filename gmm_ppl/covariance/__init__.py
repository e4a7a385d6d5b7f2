"""The covariance structures: everything that depends on the shape of the covariances.

Each structure is a record of small pure functions grouped by role, looked up by name at
trace time (``COVARIANCE_TYPES[name]``), so the EM loop never branches on the structure.
Shapes follow scikit-learn: full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
mclust's codes name them too (VVV, EEE, VVI, VII), and the other ten of mclust's 14
parameterisations are here: EII (one variance for all, stored (K,)), EEI (one diagonal for
all, stored (K, D)), EVI (equal volume, varying diagonal shape, (K, D)), EVV (equal volume,
varying shape and orientation, (K, D, D)) and EEV (equal volume and shape, varying
orientation, (K, D, D)), with closed-form M-steps; VEI (varying volume, one diagonal shape,
(K, D)), VEE (varying volume, one shape and orientation), VEV (varying volume and
orientation, one shape), EVE (equal volume, varying diagonal shape, one orientation) and
VVE (varying volume and diagonal shape, one orientation), all (K, D, D) but VEI, whose
M-steps are inner iterations.

The subpackage, by concern:
  table       the one table: per structure its name, mclust code, words for people,
              family, free-parameter count and capabilities ('map': MAP-EM under the
              conjugate prior; 'nuts': the NumPyro model; 'vb': variational Bayes); ``supports(name, capability)``
              is the one question the rest of gmm_ppl asks about what a structure can do
  estep       the E-step's forms per family (``EStep``): precision factor, half
              log-determinant, Mahalanobis distances and second moments, in three layouts
  _linalg     the Cholesky factor of a precision, made by XLA on a CPU
  mstep       the M-step per structure (``MStep``): ``outer``, the maximum-likelihood
              covariances from the scatter and the previous covariances, ``add_to_diagonal``
  priors      the conjugate prior of each structure (``ConjugatePrior``): its log density,
              the pseudo-statistics MAP-EM adds, and NumPyro sites for the four that have them
  charts      unconstrained charts (``Chart``), for gradients such as ``check_stationarity``'s
  structures  the records (``CovarianceType``), assembled from the table and the parts;
              ``chosen(names, index)``, one record for several structures with the M-step
              picked at run time (one program for a model selection grid's structures,
              and for small fits of scikit-learn's types of one storage family)

A record (``CovarianceType``): ``name``, ``family``, ``shape(K, D)``, ``to_full(cov, K, D)``,
``unit(K, D, dtype)`` (identity covariances in its storage),
``n_parameters(K, D)``, ``estep`` (``EStep``), ``mstep`` (``MStep``), ``prior``
(``ConjugatePrior``; its ``sample`` None without NumPyro sites) and ``chart`` (``Chart``).

To add a structure (say mclust's VEI, stored (K, D) like diag):
  1. table.py: its row (name, code, family, free-parameter count, capabilities, words);
     select_model's default grid, the command line's help and its messages follow;
  2. mstep.py: its ``MStep``. ``ml_covariance(scatter, n, D, previous)`` gets the previous
     covariances, from which an iterative M-step (VEI, VEE, EVE, VVE, VEV) warm-starts its
     inner iteration;
  3. charts.py: its ``Chart`` of free parameters;
  4. priors.py nothing: its prior follows from its family and code (shared where no
     letter is V), and its MAP step is its M-step on the augmented statistics;
  5. structures.py: one line, ``VEI = _structure("VEI", mstep.VEI, charts.VEI)``, and
     its place in ``COVARIANCE_TYPES``;
  6. estep.py only for a new family (a storage shape none of the four has), with its
     storage in structures.py's ``STORAGE``.
Nothing outside gmm_ppl/covariance/ changes: the fitters call the records, and every other
question (codes, words, capabilities, default grid) is asked of the table. Tests that list
structures by name, and the documentation, are the exceptions.
"""

from __future__ import annotations

import jax.numpy as jnp

from gmm_ppl.covariance.charts import Chart
from gmm_ppl.covariance.estep import EStep
from gmm_ppl.covariance.mstep import MStep
from gmm_ppl.covariance.priors import ConjugatePrior
from gmm_ppl.covariance.structures import (
    COVARIANCE_TYPES,
    DIAG,
    EEI,
    EEV,
    EII,
    EVE,
    EVI,
    EVV,
    FULL,
    SPHERICAL,
    TIED,
    VEE,
    VEI,
    VEV,
    VVE,
    CovarianceType,
    chosen,
    from_shared,
    shared,
    shared_family,
    to_shared,
)
from gmm_ppl.covariance.table import (
    ALIASES,
    CAPABILITIES,
    DEFAULT_SELECTION,
    TABLE,
    Entry,
    canonical,
    code,
    entry,
    format_table,
    supporting,
    supports,
    words,
)

__all__ = [
    "ALIASES",
    "CAPABILITIES",
    "COVARIANCE_TYPES",
    "DEFAULT_SELECTION",
    "DIAG",
    "EEI",
    "EEV",
    "EII",
    "EVE",
    "EVI",
    "EVV",
    "FULL",
    "SPHERICAL",
    "TABLE",
    "TIED",
    "VEE",
    "VEI",
    "VEV",
    "VVE",
    "Chart",
    "ConjugatePrior",
    "CovarianceType",
    "EStep",
    "Entry",
    "MStep",
    "canonical",
    "chosen",
    "code",
    "entry",
    "format_table",
    "from_shared",
    "get",
    "infer_covariance_type",
    "n_free_parameters",
    "shared",
    "shared_family",
    "supporting",
    "supports",
    "to_shared",
    "words",
]


def get(name: str) -> CovarianceType:
    """The record of a covariance type (a name or mclust code); ValueError if unknown."""
    return COVARIANCE_TYPES[canonical(name)]


def n_free_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Free parameters of the mixture: weights (K - 1), means (K D) and covariances."""
    K, D = n_components, n_features
    return (K - 1) + K * D + get(covariance_type).n_parameters(K, D)


def infer_covariance_type(params) -> str:
    """The covariance type implied by the shapes of ``params``; ambiguous shapes raise."""
    K, D = params.means.shape[-2:]
    ndim = jnp.ndim(params.covariances) - (jnp.ndim(params.means) - 2)
    if ndim == 3:
        return "full"
    if ndim == 1:
        return "spherical"
    if K == D:
        raise ValueError(
            "covariances of shape (K, D) with K == D could be 'diag' or 'tied'; pass covariance_type explicitly"
        )
    return "diag" if params.covariances.shape[-2] == K else "tied"

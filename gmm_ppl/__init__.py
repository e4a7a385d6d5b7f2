"""gmm_ppl: Gaussian mixture models, fitted by EM in JAX and sampled by NUTS in NumPyro.

The public API, re-exported from small private-by-convention modules:

  fit_em, EMResult                  EM (maximum likelihood or MAP), batched restarts
  row_mesh                          devices to split the rows over: fit_em(mesh=row_mesh())
  fit_em_blocks, npy_blocks         the same EM over blocks read from disk on every pass
  GaussianMixture                   the same EM as a scikit-learn estimator
  select_model, SelectionResult     BIC/AIC/ICL over a grid of K and covariance structures
  kmeans, KMeansResult              Lloyd's k-means as hard-assignment EM
  log_likelihood, component_log_prob, responsibilities
  check_stationarity                gradient norm of the objective at a fit
  marginal, conditional, density_grid   the fitted mixture as a density estimator
  sample_posterior, relabel         NUTS over the same model (z summed out) as ArviZ InferenceData
  SamplingInterrupted               Ctrl-C while NUTS samples; ``.idata`` holds the draws so far
  assignment_probabilities, log_predictive_density   what the posterior says per row
  compare, Comparison, plot_ellipses    EM beside the posterior
  GMMParams, Prior, default_prior   the core types and the conjugate prior
  gmm_model, mixture_likelihood     the NumPyro model (enumerated or marginal)
  datasets                          Old Faithful and the diabetes bio-assay data; simulate
  load                              a fit saved by the gmm-ppl command line, as a GaussianMixture
  enable_compilation_cache          keep compiled programs on disk for later processes
"""

import warnings

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor on import, to every user of gmm_ppl; the
    # project pins arviz < 1, so the notice asks nothing of them.
    warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)
    import arviz  # noqa: F401

from gmm_ppl import datasets  # noqa: E402
from gmm_ppl.compare import Comparison, compare, plot_ellipses
from gmm_ppl.compilation_cache import enable_compilation_cache
from gmm_ppl.covariance import COVARIANCE_TYPES, n_free_parameters
from gmm_ppl.density import conditional, density_grid, marginal
from gmm_ppl.diagnostics import check_stationarity
from gmm_ppl.em import EMResult, fit_em, row_mesh
from gmm_ppl.estimator import GaussianMixture
from gmm_ppl.kmeans import KMeansResult, kmeans
from gmm_ppl.likelihood import component_log_prob, log_likelihood, responsibilities
from gmm_ppl.model import default_prior, gmm_model, log_prior, mixture_likelihood, sample_params
from gmm_ppl.params import GMMParams, Prior, SuffStats
from gmm_ppl.posterior import (
    SamplingInterrupted,
    assignment_probabilities,
    log_predictive_density,
    posterior_params,
    relabel,
    sample_posterior,
)
from gmm_ppl.saved import load
from gmm_ppl.selection import SelectionResult, select_model
from gmm_ppl.streaming import array_blocks, fit_em_blocks, npy_blocks

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES",
    "Comparison",
    "EMResult",
    "GMMParams",
    "GaussianMixture",
    "KMeansResult",
    "Prior",
    "SamplingInterrupted",
    "SelectionResult",
    "SuffStats",
    "assignment_probabilities",
    "check_stationarity",
    "compare",
    "component_log_prob",
    "conditional",
    "density_grid",
    "datasets",
    "default_prior",
    "enable_compilation_cache",
    "fit_em",
    "fit_em_blocks",
    "array_blocks",
    "npy_blocks",
    "row_mesh",
    "gmm_model",
    "kmeans",
    "load",
    "log_likelihood",
    "log_predictive_density",
    "log_prior",
    "marginal",
    "mixture_likelihood",
    "n_free_parameters",
    "plot_ellipses",
    "posterior_params",
    "relabel",
    "responsibilities",
    "sample_params",
    "sample_posterior",
    "select_model",
]

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
  em_standard_errors, StandardErrors   EM's standard errors from the observed information
  bootstrap_em, Bootstrap           EM's bootstrap: nonparametric, weighted, parametric
  fit_vb, VBResult                  variational Bayes (mean-field), draws from q as InferenceData
  fit_vb_blocks                     the same VB over blocks read from disk on every pass
  BayesianGaussianMixture           the same VB as scikit-learn's estimator of that name
  marginal, conditional, density_grid   the fitted mixture as a density estimator
  sample_posterior, relabel         NUTS over the same model (z summed out) as ArviZ InferenceData
  find_modes, Modes                 the posterior's modes: MAP-EM's optima, their Laplace masses
  modes, select_mode, plot_modes    sample_posterior's modes: table and weights, one mode, figure
  SamplingInterrupted               Ctrl-C while NUTS samples; ``.idata`` holds the draws so far
  assignment_probabilities, log_predictive_density   what the posterior says per row
  compare, Comparison, plot_ellipses    EM beside the posterior
  GMMParams, Prior, default_prior   the core types and the conjugate prior
  gmm_model, mixture_likelihood     the NumPyro model (enumerated or marginal)
  datasets                          Old Faithful and the diabetes bio-assay data; simulate
  load                              a fit saved by the gmm-ppl command line, as a GaussianMixture
  enable_compilation_cache, disable_compilation_cache   compiled programs on disk (on by default)
"""

import importlib
import importlib.util
import sys
import types

# Every public name and the module that defines it. Nothing is imported until a name is first
# used (PEP 562): JAX alone takes most of a second to import, and ArviZ, xarray, pandas,
# scikit-learn, funsor and matplotlib more, so ``import gmm_ppl`` (and ``gmm-ppl --help``)
# stays quick and a program pays only for what it uses.
_MODULE_OF = {
    "COVARIANCE_TYPES": "covariance",
    "n_free_parameters": "covariance",
    "Comparison": "compare",
    "compare": "compare",
    "plot_ellipses": "compare",
    "enable_compilation_cache": "compilation_cache",
    "disable_compilation_cache": "compilation_cache",
    "conditional": "density",
    "density_grid": "density",
    "marginal": "density",
    "check_stationarity": "diagnostics",
    "em_standard_errors": "uncertainty",
    "bootstrap_em": "uncertainty",
    "Bootstrap": "uncertainty",
    "StandardErrors": "uncertainty",
    "EMResult": "em",
    "fit_em": "em",
    "row_mesh": "em",
    "GaussianMixture": "estimator",
    "BayesianGaussianMixture": "bayesian_estimator",
    "fit_vb": "vb",
    "find_modes": "multimodal",
    "Modes": "multimodal",
    "modes": "multimodal",
    "plot_modes": "multimodal",
    "select_mode": "multimodal",
    "VBResult": "vb",
    "KMeansResult": "kmeans",
    "kmeans": "kmeans",
    "component_log_prob": "likelihood",
    "log_likelihood": "likelihood",
    "responsibilities": "likelihood",
    "default_prior": "model",
    "gmm_model": "model",
    "log_prior": "model",
    "mixture_likelihood": "model",
    "sample_params": "model",
    "GMMParams": "params",
    "Prior": "params",
    "SuffStats": "params",
    "SamplingInterrupted": "posterior",
    "assignment_probabilities": "posterior",
    "log_predictive_density": "posterior",
    "posterior_params": "posterior",
    "relabel": "posterior",
    "sample_posterior": "sampling",
    "load": "saved",
    "SelectionResult": "selection",
    "select_model": "selection",
    "array_blocks": "streaming",
    "fit_em_blocks": "streaming",
    "fit_vb_blocks": "streaming",
    "npy_blocks": "streaming",
}
_SUBPACKAGES = {"datasets"}  # public names that are modules themselves
_ARVIZ_USERS = {"compare", "multimodal", "posterior", "sampling"}  # modules that import ArviZ (see _arviz.py)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")  # binds it here as it loads
    module_name = _MODULE_OF.get(name)
    if module_name is None:
        # A module of the package (``gp.covariance``), as when every module was imported here.
        if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module_name in _ARVIZ_USERS:
        importlib.import_module(f"{__name__}._arviz")
    value = getattr(importlib.import_module(f"{__name__}.{module_name}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _Package(types.ModuleType):
    """This package, keeping ``gmm_ppl.compare`` and ``gmm_ppl.kmeans`` the functions.

    The first import of a submodule binds it on its package under its own name; for the two
    modules named after the function they define, that would put the module where the
    function belongs whenever the module is first imported directly (``from gmm_ppl.compare
    import Comparison``, or ``gmm_ppl.em`` importing ``gmm_ppl.kmeans``).
    """

    def __setattr__(self, name, value):
        if name in ("compare", "kmeans") and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__version__ = "0.1.0"

__all__ = [
    "BayesianGaussianMixture",
    "Bootstrap",
    "COVARIANCE_TYPES",
    "Comparison",
    "EMResult",
    "GMMParams",
    "GaussianMixture",
    "Modes",
    "KMeansResult",
    "Prior",
    "SamplingInterrupted",
    "SelectionResult",
    "StandardErrors",
    "SuffStats",
    "VBResult",
    "assignment_probabilities",
    "bootstrap_em",
    "check_stationarity",
    "compare",
    "em_standard_errors",
    "component_log_prob",
    "conditional",
    "density_grid",
    "datasets",
    "default_prior",
    "disable_compilation_cache",
    "enable_compilation_cache",
    "fit_em",
    "fit_em_blocks",
    "fit_vb",
    "fit_vb_blocks",
    "find_modes",
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
    "modes",
    "mixture_likelihood",
    "n_free_parameters",
    "plot_ellipses",
    "plot_modes",
    "posterior_params",
    "relabel",
    "responsibilities",
    "sample_params",
    "sample_posterior",
    "select_mode",
    "select_model",
]

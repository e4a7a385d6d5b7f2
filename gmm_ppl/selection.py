"""Model selection over the number of components K and the covariance structure.

``select_model`` fits every (covariance type, K) of a grid with restarts and returns a
table of log-likelihood, free parameters, BIC, AIC and ICL, and the best model.

Sign convention: mclust's, **larger is better**: BIC = 2 log L - p log N,
AIC = 2 log L - 2 p, ICL = BIC + 2 sum_i log max_k p(z_i = k | x_i). (scikit-learn's
``GaussianMixture.bic`` is -BIC: smaller is better there.)

Speed: one compiled program fits the whole K grid of a structure. Every K is fitted with
the largest K's shapes, the components beyond K held at weight 0 (``fit_body``'s
``n_active``; under MAP they have no prior either), all K in one program (see
``_grid_program``). This trades compute (a K=1 fit costs as much as a K=9 one) for
compilation (one program instead of nine), which is what dominates on data of a few
thousand rows; ``padded=False`` compiles one program per K instead. The structure is also
chosen at run time (``covariance.chosen``), under a prior too: the six diagonal and
spherical structures share one program (spherical covariances held as diagonal ones), the
eight full and tied ones another, each program switching to the chosen structure's M-step
and prior. Most of a program's compile time is its skeleton (the starts,
the loop, the E-step: about 140 of EII's kernels), so mclust's 14 structures on Old
Faithful compiled in about 8 s instead of 45 s, each fit the same as its own program's
(tests/test_selection.py). ``benchmarks/selection.py`` measures the grid against a loop of
scikit-learn fits.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gmm_ppl import _validate, covariance, criteria, programs
from gmm_ppl.density import full_covariances
from gmm_ppl.em import (
    FIT_STATIC,
    EMResult,
    as_structure,
    check_em_options,
    complete,
    first_components,
    fit_body,
    fit_em,
)
from gmm_ppl.init import DETERMINISTIC_STARTS, deterministic_starts
from gmm_ppl.likelihood import joint_log_prob
from gmm_ppl.model import default_prior
from gmm_ppl.params import GMMParams, with_components
from gmm_ppl.progress import check_progress, grid_bar, reporting
from gmm_ppl.stats import default_chunk_size, map_rows, to_chunks

# Every structure of the covariance table, by its mclust code, in mclust's order.
DEFAULT_COVARIANCE_TYPES = covariance.DEFAULT_SELECTION
CRITERIA = ("bic", "aic", "icl")


def _classification_term(x, w, params, cov_type, chunk_size):
    """sum_i w_i log max_k p(z_i = k | x_i): ICL's entropy penalty (<= 0)."""
    data = to_chunks(x, w, chunk_size)

    def per_row(rows):
        log_joint = joint_log_prob(params, rows, cov_type)
        return jnp.max(log_joint, axis=1) - jax.nn.logsumexp(log_joint, axis=1)

    return jnp.sum(w * map_rows(per_row, data, x.shape[0]))


def _grid_body(x, w, key, type_index, given, prior, tol, reg_covar, n_active, choice, labels, batched, **static):
    """Every K of the grid for one covariance type (or for ``choice``, traced, of a tuple of
    them: ``fit_body``); components beyond K held at weight 0. Returns the EMResults stacked
    along the grid and each fit's ICL term. The i-th K's restarts start from the i-th key of
    ``split(key)``, after ``fold_in(key, type_index)`` where ``type_index`` (traced) is given.
    ``labels`` (len(K), N): mclust's start for each K (``fit_body``), or None. ``prior``: a
    ``Prior`` per K, stacked (MAP-EM, one structure), or None.

    ``batched``: the K values run together (``vmap``), or one after another (``lax.map``).
    A batch runs until its slowest fit has converged and compiles a larger program, so on
    a CPU one after another is faster: Old Faithful's nine structures x K=1..9 took 7.2 s
    against 11.5 s batched, 46 s against 57 s with compilation (2 cores). On an
    accelerator many small fits at once use it better than one at a time.
    """

    def one(key, start, k, labels, prior):
        fit = fit_body(x, w, key, start, prior, tol, reg_covar, k, None, choice, labels, **static)
        structures = static["covariance_type"]
        cov_type = covariance.shared(structures) if isinstance(structures, tuple) else covariance.get(structures)
        return fit, _classification_term(x, w, fit.params, cov_type, static["chunk_size"])

    # The restarts' keys made here, not on the host: eagerly, fold_in and split compiled a
    # small program each, 0.3 s of every new process's first call.
    if type_index is not None:
        key = jax.random.fold_in(key, type_index)
    keys = jax.random.split(key, n_active.shape[0])
    if batched:
        return jax.vmap(one)(keys, given, n_active, labels, prior)
    return jax.lax.map(lambda args: one(*args), (keys, given, n_active, labels, prior))


_grid_program = programs.program("select_model_grid", _grid_body, static_argnames=FIT_STATIC + ("batched",))
_classification_program = programs.program(
    "classification_term",
    lambda x, w, params, covariance_type, chunk_size: _classification_term(
        x, w, params, covariance.get(covariance_type), chunk_size
    ),
    static_argnames=("covariance_type", "chunk_size"),
)


@dataclasses.dataclass(frozen=True)
class SelectionResult:
    """What ``select_model`` returns.

    Attributes:
      table: pandas DataFrame, one row per (covariance_type, n_components): log_likelihood
        (total), n_parameters, bic, aic, icl (mclust's sign: larger is better; -inf for a
        singular fit), singular, n_iter, converged, best_restart.
      fits: {(covariance_type, n_components): EMResult}, types by mclust code.
      criterion: the column the best model maximises.
      best: (covariance_type, n_components) of the best model.

    ``wide_table()`` gives a criterion in mclust's layout (K by structure).
    """

    table: object
    fits: dict
    criterion: str
    best: tuple

    @property
    def best_fit(self) -> EMResult:
        return self.fits[self.best]

    def wide_table(self, criterion: str | None = None):
        """The criterion as mclust prints its BIC table: K as rows, the structures as
        columns in the grid's order, NaN (mclust's NA) where the fit is singular. The
        columns' name says which criterion and which way is better ('BIC (larger is
        better)'), so the printed frame does."""
        criterion = criterion or self.criterion
        values = self.table[criterion].where(~self.table["singular"].astype(bool))
        wide = self.table.assign(value=values).pivot(index="n_components", columns="covariance_type", values="value")
        wide = wide[list(dict.fromkeys(self.table["covariance_type"]))]
        wide.columns.name, wide.index.name = criteria.label(criterion), "K"
        return wide

    def plot(self, ax=None, criterion: str | None = None):
        """Criterion against K, one curve per covariance type, the best model marked."""
        import matplotlib.pyplot as plt

        criterion = criterion or self.criterion
        ax = ax or plt.subplots(figsize=(6, 4))[1]
        for code, rows in self.table.groupby("covariance_type", sort=False):
            ax.plot(rows["n_components"], rows[criterion], marker="o", label=code)
        best = self.table.loc[self.table[criterion].idxmax()]
        ax.scatter([best["n_components"]], [best[criterion]], s=160, facecolors="none", edgecolors="black", zorder=3)
        ax.set_xlabel("number of components K")
        ax.set_ylabel(criteria.label(criterion))
        ax.set_title(f"best: {best['covariance_type']}, K={int(best['n_components'])}")
        ax.legend(title="covariance", fontsize="small")
        return ax


def select_model(
    x,
    n_components=range(1, 10),
    covariance_types=DEFAULT_COVARIANCE_TYPES,
    *,
    key=None,
    n_init: int = 5,
    init: str = "kmeans++",
    prior=None,
    tol: float = 1e-5,
    reg_covar: float = 1e-6,
    max_iter: int = 1000,
    criterion: str = "bic",
    padded: bool = True,
    singular_tol: float = 1e-6,
    dtype="float64",
    progress=True,
) -> SelectionResult:
    """Fit a grid of K by covariance structure and pick the best model.

    Args:
      x: (N, D) data.
      n_components: the K values to try (default 1..9, mclust's).
      covariance_types: names or mclust codes (default: every structure of the covariance
        table, in mclust's order: ``DEFAULT_COVARIANCE_TYPES``).
      key: JAX PRNG key or int seed; each (type, K) gets its own restarts from it.
      n_init: restarts per model; the 'hierarchical' and 'mclust' inits give one deterministic
        start.
      init, tol, reg_covar, max_iter, dtype: as ``fit_em`` (tol defaults to 1e-5 here, near
        mclust's: a loose tol stops EM before near-ties between models are settled).
      prior: None (maximum likelihood), 'default' or a ``Prior`` (MAP-EM, every structure
        under its conjugate prior, ``covariance.priors``; 'default' is
        ``default_prior(x, K)`` for each K, mclust's ``priorControl()``).
      criterion: 'bic' (default), 'aic' or 'icl', all larger-is-better.
      padded: one compiled program per covariance type for the whole K grid (see the
        module docstring), under a prior too; False fits K by K.
      singular_tol: a fit is marked ``singular`` and its criteria set to -inf (mclust
        reports NA) when a component covariance has an eigenvalue below 2 * reg_covar (the
        regulariser, not the data, sets that variance) or, in units of the data's column
        variances, below ``singular_tol``. A component collapsed onto a lower-dimensional
        set (repeated values, say) has an unbounded likelihood that ``reg_covar`` only caps,
        and would otherwise win the selection.
      progress: True (default): a progress bar on stderr once the grid has taken
        ``gmm_ppl.progress.SHOW_AFTER`` (2) seconds, so a short grid prints nothing: models
        fitted of the grid's (covariance types x K) and the time taken, after each compiled
        call (one per covariance type; with ``padded=False`` one per model). False or None:
        nothing. A ``gmm_ppl.progress.ProgressBar``: that bar. Or a function called as
        ``progress("models", done, total)`` after each call. The fits are the same whatever
        ``progress`` is: it is reported on the host between the calls.

    Returns:
      A ``SelectionResult``: the table, every fit, and the best (covariance_type, K).

    Example:
      >>> sel = gp.select_model(gp.datasets.load("old_faithful"), key=0)
      >>> sel.best, sel.table.sort_values("bic", ascending=False).head()
    """
    import pandas as pd

    x = _validate.as_data(x)
    N, D = x.shape
    ks = sorted({_validate.check_int(k, "n_components") for k in n_components})
    if not ks:
        raise ValueError("n_components is empty")
    _validate.check_rows(x, ks[-1])
    codes = [covariance.code(c) for c in covariance_types]
    if not codes:
        raise ValueError("covariance_types is empty")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}; got {criterion!r}")
    n_init, max_iter, tol, reg_covar = check_em_options(n_init, max_iter, tol, reg_covar, init)
    singular_tol = _validate.check_float(singular_tol, "singular_tol")
    dtype = _validate.check_dtype(dtype)
    key = _validate.as_key(key)
    check_progress(progress)
    w = np.ones(N)

    fits, icl_terms = {}, {}
    starts = deterministic_starts(x, w, ks, init) if init in DETERMINISTIC_STARTS else None
    families = {}
    for code in codes:
        families.setdefault(covariance.shared_family(code), []).append(covariance.canonical(code))
    priors = None
    if prior is not None:  # checked once, for every K
        priors = [
            _validate.check_prior(default_prior(x, k) if isinstance(prior, str) and prior == "default" else prior, k, D)
            for k in ks
        ]
    total = len(codes) * len(ks)
    with reporting(progress, grid_bar) as report:
        for t, code in enumerate(codes):
            if padded:
                family = tuple(families[covariance.shared_family(code)])
                grid = _fit_grid(
                    x, w, key, ks, code, n_init, init, tol, reg_covar, max_iter, dtype, family=family, type_index=t,
                    starts=starts, priors=priors,
                )  # fmt: skip
                for k, (fit, term) in zip(ks, grid, strict=True):
                    fits[code, k], icl_terms[code, k] = fit, term
                report("models", (t + 1) * len(ks), total)
            else:
                type_key = jax.random.fold_in(key, t)
                for i, k in enumerate(ks):
                    try:
                        fit = fit_em(
                            x, k, covariance_type=code, key=jax.random.fold_in(type_key, k), n_init=n_init, init=init,
                            prior=None if priors is None else priors[i], tol=tol, reg_covar=reg_covar,
                            max_iter=max_iter, dtype=dtype,
                        )  # fmt: skip
                    except FloatingPointError:  # every restart failed: the model cannot win
                        report("models", t * len(ks) + i + 1, total)
                        continue
                    chunk = default_chunk_size(N, k, D)
                    with _validate.precision(dtype):
                        term = _classification_program(
                            _validate.to_device(x, dtype),
                            _validate.to_device(w, dtype),
                            fit.params,
                            fit.covariance_type,
                            chunk,
                        )
                    fits[code, k], icl_terms[code, k] = fit, float(term)
                    report("models", t * len(ks) + i + 1, total)

    rows = []
    spread = np.sqrt(x.var(axis=0))
    spread = np.where(spread > 0, spread, 1.0)
    for (code, k), fit in fits.items():
        log_l = float(fit.log_likelihood) * N
        p = covariance.n_free_parameters(k, D, code)
        bic, aic = criteria.bic(log_l, p, N), criteria.aic(log_l, p)
        icl = criteria.icl(log_l, p, N, icl_terms[code, k])
        singular = False
        if np.isfinite(log_l):
            smallest, smallest_scaled = _smallest_eigenvalues(fit, spread)
            singular = smallest < 2 * reg_covar or smallest_scaled < singular_tol
        if singular or not np.isfinite(log_l):  # cannot win, as mclust's NA
            bic = aic = icl = -np.inf
        rows.append(
            dict(
                covariance_type=code,
                n_components=k,
                log_likelihood=log_l,
                n_parameters=p,
                bic=bic,
                aic=aic,
                icl=icl,
                singular=bool(singular),
                n_iter=int(fit.n_iter),
                converged=bool(fit.converged),
                best_restart=int(fit.best_restart),
            )
        )
    table = pd.DataFrame(rows)
    if not np.isfinite(table[criterion]).any():
        raise FloatingPointError("every model of the grid is singular or failed; try a larger reg_covar")
    best = table.loc[table[criterion].idxmax()]
    return SelectionResult(table, fits, criterion, (best["covariance_type"], int(best["n_components"])))


def _fit_grid(
    x,
    w,
    key,
    ks,
    code,
    n_init,
    init,
    tol,
    reg_covar,
    max_iter,
    dtype,
    batched=None,
    family=None,
    type_index=None,
    starts=None,
    priors=None,
):
    """[(EMResult, ICL term)] for every K in ``ks``, from one compiled program; ``batched``
    (default: on any device but a CPU) as in ``_grid_program``. ``family``: the structures
    (registry names) that share the program, ``code`` among them (None: its own program).
    The fit of the i-th K takes the i-th key of ``jax.random.split(key)``, after
    ``jax.random.fold_in(key, type_index)`` when that is given (select_model's per-type key).
    ``starts``: ``deterministic_starts(x, w, ks, init)``, made once for every structure.
    ``priors``: MAP-EM's ``Prior`` for each K (checked), or None."""
    if batched is None:
        batched = jax.default_backend() != "cpu"
    N, D = x.shape
    k_max = ks[-1]
    covariance_type = covariance.canonical(code)
    structures, choice = covariance_type, None
    if family is not None and len(family) > 1:
        structures, choice = family, np.int32(family.index(covariance_type))
    stacked = None
    if priors is not None:  # one Prior per K, for k_max components
        stacked = jax.tree.map(lambda *parts: np.stack(parts), *(with_components(p, k_max) for p in priors))
    given, labels = GMMParams(None, None, None), None
    if init in DETERMINISTIC_STARTS:
        means, labels = starts if starts is not None else deterministic_starts(x, w, ks, init)
        given = GMMParams(None, means, None)
        n_init = 1
    with _validate.precision(dtype):
        cast = functools.partial(_validate.to_device, dtype=dtype)
        fits, terms = _grid_program(
            cast(x),
            cast(w),
            key,
            None if type_index is None else np.int32(type_index),
            cast(given),
            cast(stacked),
            cast(tol),
            cast(reg_covar),
            np.asarray(ks),  # NumPy: jnp.asarray would compile a conversion
            choice,
            labels,
            batched=batched,
            n_components=k_max,
            covariance_type=structures,
            n_init=n_init,
            init="given" if init in DETERMINISTIC_STARTS else init,
            max_iter=max_iter,
            chunk_size=default_chunk_size(N, k_max, D, n_init * len(ks)),
        )
        fits, terms = jax.device_get((fits, terms))
    out = []
    for i, k in enumerate(ks):
        fit = complete(jax.tree.map(lambda a, i=i: a[i], fits), max_iter)
        fit = first_components(as_structure(fit, covariance_type), k)
        if priors is not None:  # the prior of the K components, as given
            fit = dataclasses.replace(fit, prior=with_components(fit.prior, k))
        out.append((fit, float(terms[i])))
    return out


def _smallest_eigenvalues(fit: EMResult, spread) -> tuple[float, float]:
    """Smallest eigenvalue of any component covariance, as it is and in units of the
    data's column variances."""
    K, D = fit.params.means.shape
    full = full_covariances(fit.params.covariances, fit.covariance_type, K, D)
    return float(np.linalg.eigvalsh(full).min()), float(np.linalg.eigvalsh(full / np.outer(spread, spread)).min())

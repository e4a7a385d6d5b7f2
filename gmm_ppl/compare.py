"""EM set beside the posterior: estimates, uncertainty, assignments and model choice.

``compare(fits, idata)`` answers "what does EM miss that the posterior shows?" for one
model: per parameter entry, the ML-EM and/or MAP-EM estimates (with EM's own intervals, and
variational Bayes' q when given) beside the posterior mean, sd, HDI, r_hat and ESS; per row,
EM's hard assignment and responsibilities beside the posterior assignment probabilities;
and per model, BIC beside PSIS-LOO, with held-out predictive log densities when test rows
are given. It fits nothing: the caller passes the EM fits to set beside the posterior.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import arviz as az
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from gmm_ppl import _validate, covariance, criteria
from gmm_ppl._text import markdown_table
from gmm_ppl.em import EMResult
from gmm_ppl.likelihood import log_likelihood, responsibilities
from gmm_ppl.params import GMMParams
from gmm_ppl.posterior import (
    PARAMETERS,
    assignment_probabilities,
    flat_draws,
    full_covariances_of_draws,
    log_predictive_density,
    posterior_mean,
    relabel,
)


@dataclasses.dataclass
class Comparison:
    """What ``compare`` returns.

    Attributes:
      parameters: one row per parameter entry ('weights[0]', 'means[1, waiting]', ...):
        em_ml, em_map (EM estimates, aligned to the posterior's labelling; each only when
        that fit was given), em_se, wald_low, wald_high (the first fit's observed-information
        standard error and Wald interval, with ``wald``), boot_sd, boot_low, boot_high (its
        bootstrap's, with ``bootstrap``), vb_mean, vb_sd, vb_low, vb_high (variational Bayes'
        q, with ``vb``), mean, sd, hdi_low, hdi_high (``hdi_prob`` interval), ml_in_hdi,
        map_in_hdi, r_hat, ess_bulk, ess_tail.
      assignments: one row per data row: em_label, em_probability (EM's responsibility of
        its label), posterior_label, posterior_probability, posterior_sd, entropy.
      summary: one row per model-level quantity, with a 'value' column: log-likelihoods,
        BIC, elpd_loo, p_loo, the adjusted Rand index of the two labellings, and held-out
        log predictive densities when ``x_test`` was given. Its em_ml_bic and em_map_bic are
        in the library's one sign (mclust's: 2 log L - p log N, larger is better), as
        elpd_loo beside them. (Before issue 34 they were -2 log L + p log N, beside ArviZ's
        looic, which is no longer a row: ``az.loo(idata)`` gives it.)
      hdi_prob: the HDI's probability.
    """

    parameters: pd.DataFrame
    assignments: pd.DataFrame
    summary: pd.DataFrame
    hdi_prob: float

    def readable_summary(self) -> pd.DataFrame:
        """``summary`` as a person reads it: the criteria's rows say which way is better
        (em_ml_bic as 'BIC em_ml (larger is better)', elpd_loo as 'elpd_loo (larger is
        better)'); every other row (and any a caller appended) is kept as it is."""
        rows = {}
        for name, value in self.summary["value"].items():
            kind = _bic_kind(name)
            if kind is not None:
                rows[f"BIC {kind} ({criteria.DIRECTION})"] = value
            elif name == "elpd_loo":
                rows[f"elpd_loo ({criteria.DIRECTION})"] = value
            else:
                rows[name] = value
        frame = pd.DataFrame({"value": pd.Series(rows, dtype=object)})
        frame.index.name = "quantity"
        return frame

    def to_markdown(self) -> str:
        """Both tables as Markdown, parameters first; the model table is ``readable_summary``."""
        return (
            f"## Parameters (HDI {self.hdi_prob:.0%})\n\n"
            + _frame_table(self.parameters)
            + f"\n\n## Model\n\n{SUMMARY_HEADER}\n\n"
            + _frame_table(self.readable_summary())
            + "\n"
        )

    def __str__(self) -> str:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            parameters = self.parameters.to_string(float_format="{:.4g}".format)
            return f"{parameters}\n\n{SUMMARY_HEADER}\n{self.readable_summary().to_string()}"


# The line above a comparison's model table, wherever it is printed.
SUMMARY_HEADER = (
    f"Both criteria: {criteria.DIRECTION}. BIC = {criteria.FORMULAS['bic']} (mclust's sign); "
    "elpd_loo, PSIS-LOO's expected log predictive density."
)


def _bic_kind(name: str) -> str | None:
    """'em_ml' for the summary's row 'em_ml_bic', else None."""
    if name.startswith("em_") and name.endswith("_bic"):
        return name[: -len("_bic")]
    return None


def _cell(v) -> str:
    """A table value as Markdown: yes/no, numbers to 4 significant digits."""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _frame_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table, its index the first column."""
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    return markdown_table(header, ([str(name), *row] for name, row in frame.iterrows()), _cell)


def _align(params: GMMParams, reference: GMMParams, covariance_type: str) -> tuple[GMMParams, np.ndarray]:
    """(``params`` with its components permuted to ``reference``'s labelling, the permutation)."""
    draws = {n: np.asarray(v)[None] for n, v in zip(PARAMETERS, params, strict=True)}
    aligned, perm = relabel(draws, reference, covariance_type)
    return GMMParams(*(aligned[n][0] for n in PARAMETERS)), perm[0]


def _permuted(params: GMMParams, perm, covariance_type: str) -> GMMParams:
    """``params`` with components ``perm``: entry k takes component perm[k]; a tied
    covariance has none."""
    tied = covariance.get(covariance_type).family == "tied"
    take = lambda a: np.take(np.asarray(a), perm, axis=0)  # noqa: E731
    return GMMParams(take(params.weights), take(params.means), params.covariances if tied else take(params.covariances))


def _entries(values, da) -> np.ndarray:
    """``values`` of one parameter as the posterior's entries (C order): a tied covariance
    (D, D) is the posterior's shape already."""
    return np.broadcast_to(np.asarray(values, np.float64), da.shape[2:]).ravel()


def _entry_labels(da) -> list[str]:
    """'name[c1, c2]' for every entry of a (chain, draw, ...) DataArray, in C order."""
    dims = da.dims[2:]
    coords = [da.coords[d].values for d in dims]
    return [
        f"{da.name}[{', '.join(str(c[i]) for c, i in zip(coords, idx, strict=True))}]" if dims else da.name
        for idx in np.ndindex(*da.shape[2:])
    ]


def compare(
    fits: EMResult | Sequence[EMResult],
    idata: az.InferenceData,
    *,
    x_test=None,
    hdi_prob: float = 0.94,
    wald: bool = False,
    bootstrap=None,
    vb=None,
) -> Comparison:
    """Set EM fits beside a posterior of the same model.

    Args:
      fits: an ``EMResult``, or a sequence of them: at most one maximum-likelihood fit
        (``prior`` None) and at most one MAP fit, on the data ``idata`` observed, with the
        posterior's covariance type and number of components. Each gives its own columns
        (em_ml, em_map) and rows; the first one's responsibilities give the assignments
        table, and the summary lists the fits in the order given. Nothing is fitted here:
        for both columns, fit the other one yourself, e.g. MAP-EM under the posterior's
        prior (possible when its Dirichlet alpha are all >= 1), started from an ML fit ``ml``::

          from gmm_ppl.posterior import prior_of
          map_fit = gp.fit_em(x, K, covariance_type=ml.covariance_type, init_params=ml.params,
                              prior=prior_of(idata), tol=1e-6, max_iter=500, dtype="float64")
          table = gp.compare([ml, map_fit], idata)

      idata: from ``sample_posterior``.
      x_test: held-out rows; adds the mean log density per row under EM's plug-in
        parameters and under the posterior predictive.
      hdi_prob: probability of the highest-density interval, and of the Wald and
        bootstrap intervals.
      wald: add the first fit's standard errors from the observed information
        (``em_standard_errors``) and its Wald interval: columns em_se, wald_low, wald_high.
      bootstrap: a ``Bootstrap`` of the first fit (``bootstrap_em``): columns boot_sd,
        boot_low, boot_high (percentile interval).
      vb: a ``VBResult`` of the same model (``fit_vb``, with draws): columns vb_mean, vb_sd,
        vb_low, vb_high (its draws' HDI at ``hdi_prob``), in the posterior's labelling, and
        its ELBO in the summary.

    Returns:
      A ``Comparison`` (pandas tables; ``str()`` or ``to_markdown()`` to read them).
    """
    given = [fits] if isinstance(fits, EMResult) else fits
    # A NamedTuple (GMMParams, say) is a sequence too, but not of fits.
    if not isinstance(given, Sequence) or isinstance(given, str) or hasattr(given, "_fields"):
        raise ValueError(f"fits must be an EMResult from gmm_ppl.fit_em, or a list of them; got {type(fits).__name__}")
    if not given:
        raise ValueError("fits is empty; give an ML fit, a MAP fit or both")
    for i, fit in enumerate(given):
        if not isinstance(fit, EMResult):
            raise ValueError(f"fits[{i}] must be an EMResult from gmm_ppl.fit_em; got {type(fit).__name__}")
    hdi_prob = _validate.check_float(hdi_prob, "hdi_prob")
    if not 0 < hdi_prob < 1:
        raise ValueError(f"hdi_prob must lie in (0, 1); got {hdi_prob}")
    cov_name = idata.attrs["covariance_type"]
    x = idata.observed_data["x"].values
    N, D = x.shape
    post = idata.posterior
    K = post.sizes["component"]
    fits = {}  # "ml" / "map" -> EMResult, in the order given
    for fit in given:
        if covariance.canonical(fit.covariance_type) != cov_name:
            raise ValueError(f"fit has covariance_type {fit.covariance_type!r}; the posterior has {cov_name!r}")
        if np.shape(fit.params.means) != (K, D):
            raise ValueError(f"fit has means of shape {np.shape(fit.params.means)}; the posterior has ({K}, {D})")
        kind = "ml" if fit.prior is None else "map"
        if kind in fits:
            what = "maximum-likelihood (prior None)" if kind == "ml" else "MAP"
            raise ValueError(f"fits holds two {what} fits; give at most one ML and one MAP fit")
        fits[kind] = fit
    mean = posterior_mean(idata)
    aligned, perms = {}, {}
    for kind, f in fits.items():
        aligned[kind], perms[kind] = _align(f.params, mean, cov_name)
    main = next(iter(fits))
    spread = {}  # column -> GMMParams of the first fit's uncertainty, in the posterior's labelling
    if wald:
        from gmm_ppl.uncertainty import em_standard_errors

        errors = em_standard_errors(fits[main], x)
        spread["em_se"] = errors.params
        spread["wald_low"], spread["wald_high"] = errors.intervals(fits[main], hdi_prob)
    if bootstrap is not None:
        spread["boot_sd"] = bootstrap.standard_errors
        spread["boot_low"], spread["boot_high"] = bootstrap.intervals(hdi_prob)
    spread = {column: _permuted(p, perms[main], cov_name) for column, p in spread.items()}
    variational = None if vb is None else _variational(vb, mean, cov_name, K, D, hdi_prob)

    # Parameters.
    hdi = az.hdi(post[list(PARAMETERS)], hdi_prob=hdi_prob)
    rhat = az.rhat(post[list(PARAMETERS)])
    ess_bulk = az.ess(post[list(PARAMETERS)], method="bulk")
    ess_tail = az.ess(post[list(PARAMETERS)], method="tail")
    columns: dict[str, list] = {}
    index: list[str] = []
    flat = flat_draws(idata)
    for n in PARAMETERS:
        index += _entry_labels(post[n])
        draws = flat[n]
        low = hdi[n].sel(hdi="lower").values.ravel()
        high = hdi[n].sel(hdi="higher").values.ravel()
        values = {
            **{f"em_{kind}": np.asarray(getattr(p, n), np.float64).ravel() for kind, p in aligned.items()},
            **{column: _entries(getattr(p, n), post[n]) for column, p in spread.items()},
            **({} if variational is None else {column: v[n] for column, v in variational.items()}),
            "mean": draws.mean(axis=0).ravel(),
            "sd": draws.std(axis=0, ddof=1).ravel(),
            "hdi_low": low,
            "hdi_high": high,
            **{
                f"{kind}_in_hdi": (low <= np.ravel(getattr(p, n))) & (np.ravel(getattr(p, n)) <= high)
                for kind, p in aligned.items()
            },
            "r_hat": rhat[n].values.ravel(),
            "ess_bulk": ess_bulk[n].values.ravel(),
            "ess_tail": ess_tail[n].values.ravel(),
        }
        for column, v in values.items():
            columns.setdefault(column, []).extend(np.asarray(v).tolist())
    order = ["em_ml", "em_map", "em_se", "wald_low", "wald_high", "boot_sd", "boot_low", "boot_high"]
    order += ["vb_mean", "vb_sd", "vb_low", "vb_high", "mean", "sd", "hdi_low", "hdi_high", "ml_in_hdi", "map_in_hdi"]
    order = [c for c in order if c in columns] + ["r_hat", "ess_bulk", "ess_tail"]
    parameters = pd.DataFrame(columns, index=pd.Index(index, name="parameter"))[order]

    # Assignments: the first fit's responsibilities at its labelling aligned to the posterior's.
    em_resp = responsibilities(aligned[main], x, cov_name)
    assign = assignment_probabilities(idata)
    post_prob = assign["probability"].values
    post_label = post_prob.argmax(axis=1)
    em_label = em_resp.argmax(axis=1)
    assignments = pd.DataFrame(
        {
            "em_label": em_label,
            "em_probability": em_resp[np.arange(N), em_label],
            "posterior_label": post_label,
            "posterior_probability": post_prob[np.arange(N), post_label],
            "posterior_sd": assign["sd"].values[np.arange(N), post_label],
            "entropy": assign["entropy"].values,
        },
        index=pd.RangeIndex(N, name="row"),
    )

    # Model level.
    n_params = covariance.n_free_parameters(K, D, cov_name)
    rows = {}
    for kind, f in fits.items():
        total = float(np.sum(log_likelihood(f.params, x, cov_name)))
        rows[f"em_{kind}_log_likelihood"] = total
        rows[f"em_{kind}_bic"] = criteria.bic(total, n_params, N)
    rows["n_parameters"] = n_params
    if vb is not None:
        rows["vb_elbo"] = float(vb.elbo)
    if "log_likelihood" in idata.groups():
        loo = az.loo(idata, pointwise=True)
        rows["elpd_loo"] = float(loo["elpd_loo"])
        rows["elpd_loo_se"] = float(loo["se"])
        rows["p_loo"] = float(loo["p_loo"])
        rows["pareto_k_above_0.7"] = int(np.sum(loo.pareto_k.values > 0.7))
    rows["adjusted_rand_index"] = float(adjusted_rand_score(em_label, post_label))
    rows["same_label_fraction"] = float(np.mean(em_label == post_label))
    if x_test is not None:
        x_test = _validate.as_data(x_test, name="x_test", n_features=D)
        for kind, f in fits.items():
            rows[f"heldout_lpd_em_{kind}"] = float(np.mean(log_likelihood(f.params, x_test, cov_name)))
        rows["heldout_lpd_posterior"] = float(np.mean(log_predictive_density(idata, x_test)))
    summary = pd.DataFrame({"value": pd.Series(rows, dtype=object)})
    summary.index.name = "quantity"
    return Comparison(parameters, assignments, summary, hdi_prob)


def _variational(vb, mean: GMMParams, cov_name: str, K: int, D: int, hdi_prob: float) -> dict:
    """vb_mean, vb_sd, vb_low, vb_high: per parameter name, q's draws' entries (C order) in
    the posterior's labelling (q's components matched to the posterior mean's)."""
    if vb.idata is None:
        raise ValueError("vb has no draws from q: fit it with fit_vb(..., n_draws > 0)")
    if vb.covariance_type != cov_name or np.shape(vb.params.means) != (K, D):
        raise ValueError(
            f"vb fits {vb.covariance_type!r} with means of shape {np.shape(vb.params.means)}; "
            f"the posterior has {cov_name!r} and ({K}, {D})"
        )
    _, perm = _align(vb.params, mean, cov_name)
    q = vb.idata.posterior[list(PARAMETERS)].isel(component=perm).assign_coords(component=np.arange(K))
    hdi = az.hdi(q, hdi_prob=hdi_prob)
    return {
        "vb_mean": {n: q[n].mean(("chain", "draw")).values.ravel() for n in PARAMETERS},
        "vb_sd": {n: q[n].std(("chain", "draw"), ddof=1).values.ravel() for n in PARAMETERS},
        "vb_low": {n: hdi[n].sel(hdi="lower").values.ravel() for n in PARAMETERS},
        "vb_high": {n: hdi[n].sel(hdi="higher").values.ravel() for n in PARAMETERS},
    }


def plot_ellipses(
    idata: az.InferenceData,
    fit: EMResult | None = None,
    *,
    dims=(0, 1),
    n_draws: int = 40,
    ax=None,
    seed: int = 0,
):
    """Data, the 2-sd ellipses of ``n_draws`` posterior draws (thin) and of the EM fit (bold).

    Each component has one colour, the same in the draws and the fit (the posterior is
    relabelled; the fit is aligned to it), so the spread of the thin ellipses is the
    posterior uncertainty the single EM ellipse does not show.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse

    x = idata.observed_data["x"].values
    names = idata.observed_data["feature"].values
    cov_name = idata.attrs["covariance_type"]
    post = idata.posterior
    K = post.sizes["component"]
    D = x.shape[1]
    dims = list(dims)
    if len(dims) != 2 or not all(0 <= d < D for d in dims):
        raise ValueError(f"dims must be two feature indices in [0, {D}); got {dims}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(x[:, dims[0]], x[:, dims[1]], s=8, c="0.6", lw=0)
    colours = plt.get_cmap("tab10")

    def draw(means, full, label=None, **style):
        """The 2-sd ellipse of every component, from (K, D) means and (K, D, D) covariances."""
        for k in range(K):
            values, vectors = np.linalg.eigh(full[k][np.ix_(dims, dims)])
            angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
            width, height = 2 * 2 * np.sqrt(np.maximum(values[::-1], 0))
            ax.add_patch(
                Ellipse(
                    means[k][dims],
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    color=colours(k % 10),
                    label=f"{label} {k}" if label else None,
                    **style,
                )
            )

    rng = np.random.default_rng(seed)
    flat = flat_draws(idata)
    picks = rng.choice(flat["weights"].shape[0], size=min(n_draws, flat["weights"].shape[0]), replace=False)
    for means, full in zip(
        flat["means"][picks], full_covariances_of_draws(flat["covariances"][picks], cov_name, K, D), strict=True
    ):
        draw(means, full, lw=0.6, alpha=0.35)
    if fit is not None:
        aligned, _ = _align(fit.params, posterior_mean(idata), cov_name)
        full = full_covariances_of_draws(np.asarray(aligned.covariances)[None], cov_name, K, D)[0]
        draw(np.asarray(aligned.means), full, label="EM component", lw=2.2)
    ax.set_xlabel(str(names[dims[0]]))
    ax.set_ylabel(str(names[dims[1]]))
    ax.autoscale_view()
    if fit is not None:
        ax.legend(loc="best", fontsize="small")
    return ax

"""One run of the command line or of a model card: data, fit (EM, k-means or a model
grid), optionally NUTS and the comparison, then the results folder.

``run(spec, out=...)`` does the stages in order, reporting each on stderr
("[2/4] NUTS: 4 chains x (500 warm-up + 500 draws)"), and returns an ``Outcome`` that the
command line prints as tables or JSON. With ``out`` the results are written by
``gmm_ppl.app.report.write_results`` into a temporary folder renamed into place at the end
(``gmm_ppl.app.folder.OutputFolder``).

Ctrl-C during NUTS sampling, after warm-up, does not lose the draws: the run goes on with
the draws made so far (``gmm_ppl.SamplingInterrupted``), writes a complete results
folder marked as interrupted (``Outcome.interrupted``, summary.json, report.md), and the
command line exits with status 130. Ctrl-C anywhere else writes nothing.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import numpy as np

import gmm_ppl as gp
from gmm_ppl import GMMParams, _validate
from gmm_ppl.app import report, tabular
from gmm_ppl.app.cards import RunSpec
from gmm_ppl.app.folder import OutputFolder
from gmm_ppl.app.outcome import Fitted, Outcome
from gmm_ppl.app.words import code_of
from gmm_ppl.density import full_covariances
from gmm_ppl.posterior import prior_of
from gmm_ppl.progress import grid_bar


class Progress:
    """'[i/n] message' lines on stderr, one per stage; silent when ``enabled`` is false."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled, self.done = total, enabled, 0
        self.started = time.perf_counter()

    def stage(self, message: str):
        self.done += 1
        self.note(f"[{self.done}/{self.total}] {message}")

    def note(self, message: str):
        if self.enabled:
            print(message, file=sys.stderr, flush=True)


# -- stages -------------------------------------------------------------------------------


def load_data(spec: RunSpec) -> tabular.Table:
    d = spec.data
    if d.dataset is not None:
        table = tabular.dataset_table(d.dataset, d.columns)
    elif d.path is not None:
        table = tabular.read_file(d.path, d.columns, drop_na=d.drop_na)
    else:
        s = d.simulate
        table = tabular.simulated_table(
            GMMParams(s.weights, s.means, s.covariances), s.n_rows, s.seed, s.covariance_type, d.columns
        )
    if d.standardize:
        table = tabular.standardize(table)
    return table


def check_rows(spec: RunSpec, table: tabular.Table):
    """Refuse more components than rows before anything is compiled."""
    m = spec.model
    k = m.n_components if m.select is None else max(m.select.k)
    n = table.x.shape[0]
    if k > n:
        what = f"K={k} components" if m.select is None else f"the grid's largest K={k}"
        raise ValueError(
            f"{table.source} has {n} row{'s' if n != 1 else ''}, fewer than {what}; "
            "a mixture needs at least one row per component"
        )


def _em_key(spec: RunSpec):
    return _validate.seed_key(spec.em.seed)


def fit_model(spec: RunSpec, table: tabular.Table, progress: Progress | None = None):
    """(Fitted, SelectionResult or None) by EM, k-means or the model grid; a grid shows its
    progress bar on stderr (``_grid_progress``) unless ``progress`` is None or silent."""
    x = table.x
    m, e = spec.model, spec.em
    prior = "default" if m.prior == "default" else None
    if m.method == "kmeans":
        K = m.n_components
        km = gp.kmeans(x, K, key=_em_key(spec), n_init=e.n_init, max_iter=e.max_iter, dtype="float64")
        N, D = x.shape
        variance = max(float(km.inertia) / (N * D), 1e-12)
        params = GMMParams(np.full(K, 1.0 / K), np.asarray(km.centers, np.float64), np.full(K, variance))
        log_l = float(np.mean(gp.log_likelihood(params, x, "EII")))
        fitted = Fitted(
            method="kmeans",
            params=params,
            covariance_type="EII",
            prior=None,
            log_likelihood=log_l,
            objective=log_l,
            n_iter=int(km.n_iter),
            converged=bool(km.converged),
            trace=np.empty(0),
            restart_objectives=-np.asarray(km.restart_inertias, np.float64),
            best_restart=int(np.argmin(km.restart_inertias)),
            labels=np.asarray(km.labels),
            extra={"inertia": float(km.inertia), "cluster_sizes": np.bincount(np.asarray(km.labels), minlength=K)},
        )
        return fitted, None
    if m.select is not None:
        sel = gp.select_model(
            x,
            n_components=m.select.k,
            covariance_types=m.select.covariance_types,
            key=_em_key(spec),
            n_init=e.n_init,
            init=e.init,
            prior=prior,
            tol=e.tol,
            max_iter=e.max_iter,
            criterion=m.select.criterion,
            progress=_grid_progress(progress),
        )
        fitted = _from_em(sel.best_fit, x, "em")
        fitted.extra = {"selected_by": m.select.criterion}
        return fitted, sel
    fit = gp.fit_em(
        x,
        m.n_components,
        covariance_type=m.covariance_type,
        key=_em_key(spec),
        n_init=e.n_init,
        init=e.init,
        prior=prior,
        tol=e.tol,
        max_iter=e.max_iter,
        dtype="float64",
    )
    return _from_em(fit, x, "em"), None


def _from_em(fit, x, method: str) -> Fitted:
    params = GMMParams(*(np.asarray(a, np.float64) for a in fit.params))
    return Fitted(
        method=method,
        params=params,
        covariance_type=fit.covariance_type,
        prior=fit.prior,
        log_likelihood=float(fit.log_likelihood),
        objective=float(fit.objective),
        n_iter=int(fit.n_iter),
        converged=bool(fit.converged),
        trace=np.asarray(fit.trace, np.float64),
        restart_objectives=np.asarray(fit.restart_objectives, np.float64),
        best_restart=int(fit.best_restart),
        labels=np.argmax(gp.responsibilities(params, x, fit.covariance_type), axis=1),
        em_result=fit,
    )


def sample(spec: RunSpec, table: tabular.Table, fitted: Fitted, progress: Progress | None = None):
    """NUTS under the default conjugate prior, draws relabelled to the EM fit.

    Raises ``SamplingInterrupted`` (holding the draws so far) on Ctrl-C after warm-up.
    """
    c = spec.mcmc
    return gp.sample_posterior(
        table.x,
        fitted.n_components,
        covariance_type=fitted.covariance_type,
        prior=fitted.prior,  # None: the default prior (a MAP fit's prior is that one too)
        num_warmup=c.num_warmup,
        num_samples=c.num_samples,
        num_chains=c.num_chains,
        key=_validate.fold_in(_validate.seed_key(c.seed), 1),
        reference=fitted.em_result,
        feature_names=table.columns,
        progress=False if progress is None or not progress.enabled else _nuts_progress(progress),
    )


def _grid_progress(progress: Progress | None):
    """``select_model``'s progress: the library's bar (models fitted of the grid's, once the
    grid has taken a few seconds), indented under the stage's line; False when quiet."""
    if progress is None or not progress.enabled:
        return False
    return grid_bar("      model grid")


# Seconds between two 'draws so far' lines while NUTS samples.
PROGRESS_EVERY = 10.0


def _nuts_progress(progress: Progress):
    """A ``sample_posterior`` progress function: a line when warm-up ends (from then on
    Ctrl-C keeps the draws), then one every PROGRESS_EVERY seconds of sampling, with the
    divergences among the draws so far."""
    started = time.perf_counter()
    last = [started]

    def report(phase: str, done: int, total: int, divergences: int | None = None):
        now = time.perf_counter()
        if phase == "warmup" and done == total:
            progress.note(
                f"      warm-up done ({now - started:.1f} s); sampling (Ctrl-C now keeps the draws made so far)"
            )
            last[0] = now
        elif phase == "sampling" and now - last[0] >= PROGRESS_EVERY and done < total:
            diverged = "" if divergences is None else f", {divergences} divergence{'' if divergences == 1 else 's'}"
            progress.note(f"      {done} of {total} draws per chain ({now - started:.0f} s{diverged})")
            last[0] = now

    return report


def posterior_modes(spec: RunSpec, idata, progress: Progress):
    """The posterior's modes beside the run's draws (``multimodal.modes_of_run``): their table
    and each mode's MAP-EM parameters, with a note when there are several of some weight."""
    from gmm_ppl import multimodal

    found, table = multimodal.modes_of_run(idata, key=spec.mcmc.seed)
    heavy = table[table.laplace_weight >= multimodal.MIN_WEIGHT]
    if len(heavy) > 1:
        weights = ", ".join(f"{w:.2f}" for w in heavy.laplace_weight)
        figure = " and modes.png" if idata.posterior.sizes["feature"] >= 2 else ""  # drawn for 2+ columns
        progress.note(
            f"      the posterior has {len(heavy)} modes beyond label switching (Laplace weights {weights}): "
            f"see the report's Modes section{figure}"
        )
    return table, found


def posterior_summary(idata):
    import arviz as az

    return az.summary(idata, var_names=["weights", "means"], hdi_prob=0.94)


def compare(spec: RunSpec, fitted: Fitted, idata, seconds: dict):
    """The run's EM fit beside the posterior, with what ``spec.methods`` names: the other of
    ML-EM and MAP-EM under the posterior's prior, started from the run's fit (MAP only where
    every Dirichlet alpha is at least 1); variational Bayes under that prior; EM's own
    uncertainty about the run's fit ('bootstrap': its Wald and bootstrap intervals, from the
    fit converged further first, to tol 1e-10, since the observed information needs a
    stationary point). The summary gets the seconds each took (seconds_em_ml, seconds_nuts,
    ...; the run's own fit and NUTS from ``seconds``; a run that chose its model by a grid
    reports the grid's seconds as seconds_model_selection)."""
    import pandas as pd

    methods = spec.methods
    fit = fitted.em_result
    x = idata.observed_data["x"].values
    K, cov_name = idata.posterior.sizes["component"], idata.attrs["covariance_type"]
    prior = prior_of(idata)
    own = "ml" if fit.prior is None else "map"
    other = "map" if own == "ml" else "ml"
    grid = spec.model.select is not None
    timings = {"seconds_model_selection" if grid else f"seconds_em_{own}": seconds.get("fit")}

    def timed(name, f, *args, **kwargs):
        start = time.perf_counter()
        result = f(*args, **kwargs)
        timings[name] = timings.get(name, 0.0) + round(time.perf_counter() - start, 3)
        return result

    em_options = dict(covariance_type=cov_name, max_iter=max(spec.em.max_iter, 500), dtype="float64")
    boot = None
    if "bootstrap" in methods:
        fit = timed("seconds_bootstrap", gp.fit_em, x, K, init_params=fit.params, prior=fit.prior, tol=1e-10,
                    **em_options)  # fmt: skip
        boot = timed("seconds_bootstrap", gp.bootstrap_em, fit, x, BOOTSTRAP_REPLICATES, key=spec.em.seed)
    fits = [fit]
    if other in methods and (other == "ml" or bool(np.all(prior.alpha >= 1))):
        fits.append(
            timed(
                f"seconds_em_{other}",
                gp.fit_em,
                x,
                K,
                init_params=fit.params,
                prior=prior if other == "map" else None,
                tol=1e-6,
                **em_options,
            )  # fmt: skip
        )
    vb = None
    if "vb" in methods:
        vb = timed(
            "seconds_vb",
            gp.fit_vb,
            x,
            K,
            covariance_type=cov_name,
            prior=prior,
            n_init=spec.em.n_init,
            key=spec.em.seed,
            tol=spec.em.tol * x.shape[0],  # EM's tol is per row; VB's is on the ELBO, a sum over rows
            max_iter=spec.em.max_iter,
            n_draws=idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"],
            feature_names=list(idata.posterior["feature"].values),
        )
    table = gp.compare(fits, idata, wald="bootstrap" in methods, bootstrap=boot, vb=vb)
    timings["seconds_nuts"] = seconds.get("nuts")
    extra = pd.DataFrame({"value": pd.Series(timings, dtype=object)})
    table.summary = pd.concat([table.summary, extra])
    table.summary.index.name = "quantity"
    return table


# Replicates of the bootstrap a comparison asks for ('bootstrap' in its methods).
BOOTSTRAP_REPLICATES = 200


def comparison_words(spec: RunSpec) -> str:
    """The comparison stage's line: what is set beside the posterior (the run's own EM fit
    always, and what ``spec.methods`` adds)."""
    own = "map" if spec.model.prior == "default" else "ml"
    words = {
        "ml": "ML-EM",
        "map": "MAP-EM",
        "vb": "variational Bayes",
        "bootstrap": "EM's Wald and bootstrap intervals",
    }
    named = [words[m] for m in words if m == own or m in spec.methods]
    return f"comparison: {', '.join(named)} beside the posterior, PSIS-LOO"


def recovery(table: tabular.Table, fitted: Fitted, idata=None):
    """True against estimated weights and means of a simulation, labels matched by the
    Hungarian algorithm on the Kullback-Leibler divergence (``gp.relabel``)."""
    import pandas as pd

    truth = table.truth
    K, D = np.shape(truth.means)
    if fitted.n_components != K:
        return None
    truth_full = GMMParams(
        truth.weights, truth.means, full_covariances(truth.covariances, table.truth_covariance_type, K, D)
    )
    est_full = full_covariances(fitted.params.covariances, fitted.covariance_type, K, D)
    draws = {"weights": fitted.params.weights[None], "means": fitted.params.means[None], "covariances": est_full[None]}
    aligned, perm = gp.relabel(draws, truth_full, "full")
    perm = perm[0]  # aligned component k is fitted component perm[k]
    rows = []
    hdi = mean = None
    if idata is not None:
        import arviz as az

        post = idata.posterior[["weights", "means"]]
        hdi = az.hdi(post, hdi_prob=0.94)
        mean = post.mean(dim=("chain", "draw"))
    for k in range(K):
        entries = [("weights", f"weights[{k}]", truth.weights[k], aligned["weights"][0][k], (perm[k],))]
        entries += [
            ("means", f"means[{k}, {table.columns[j]}]", truth.means[k, j], aligned["means"][0][k, j], (perm[k], j))
            for j in range(D)
        ]
        for var, label, true, est, idx in entries:
            row = {"parameter": label, "true": float(true), "em": float(est), "em_error": float(est - true)}
            if idata is not None:
                low = float(hdi[var].sel(hdi="lower").values[idx])
                high = float(hdi[var].sel(hdi="higher").values[idx])
                row.update(
                    posterior_mean=float(mean[var].values[idx]),
                    hdi_low=low,
                    hdi_high=high,
                    true_in_hdi=bool(low <= true <= high),
                )
            rows.append(row)
    return pd.DataFrame(rows).set_index("parameter")


def agreement(table: tabular.Table, fitted: Fitted):
    """(crosstab of known labels against fitted clusters, adjusted Rand index), or (None, None)."""
    if table.labels is None:
        return None, None
    import pandas as pd
    from sklearn.metrics import adjusted_rand_score

    known = pd.Series(np.asarray(table.labels), name=table.label_name)
    found = pd.Series(fitted.labels, name="cluster")
    return pd.crosstab(known, found), float(adjusted_rand_score(known, found))


# -- the run ------------------------------------------------------------------------------


def run(
    spec: RunSpec,
    *,
    out=None,
    force: bool = False,
    progress: Progress | None = None,
    quiet: bool = False,
    command: str | None = None,
) -> Outcome:
    """Do every stage ``spec`` asks for; write the results folder when ``out`` is given.

    An existing ``out`` is refused (ValueError) before anything runs, unless ``force``.
    Nothing is left behind on failure or KeyboardInterrupt: the results are written to a
    temporary sibling folder and renamed to ``out`` at the very end. The one exception:
    Ctrl-C while NUTS samples (after warm-up) ends sampling, and the run finishes with the
    draws made so far, ``Outcome.interrupted`` saying so.
    """
    spec.check()
    folder = OutputFolder(out, force) if out is not None else None
    nuts = spec.mcmc.enabled
    total = 2 + nuts + (nuts and spec.compare) + (folder is not None)
    progress = progress or Progress(total, enabled=not quiet)
    seconds = {}

    def timed(name, f, *args):
        start = time.perf_counter()
        try:
            return f(*args)
        finally:  # an interrupted NUTS run keeps its time too
            seconds[name] = round(time.perf_counter() - start, 3)

    with folder if folder is not None else contextlib.nullcontext():
        # Bad data stops the run before the first progress line: the error is then all stderr says.
        table = timed("data", load_data, spec)
        check_rows(spec, table)
        N, D = table.x.shape
        progress.stage(f"data: {_data_words(spec)}: {N} rows x {D} columns ({', '.join(table.columns)})")
        progress.stage(_fit_words(spec))
        fitted, selection = timed("fit", fit_model, spec, table, progress)
        outcome = Outcome(spec=spec, table=table, fitted=fitted, selection=selection, command=command)
        if nuts:
            c = spec.mcmc
            progress.stage(f"NUTS: {c.num_chains} chains x ({c.num_warmup} warm-up + {c.num_samples} draws)")
            try:
                outcome.idata = timed("nuts", sample, spec, table, fitted, progress)
            except gp.SamplingInterrupted as stop:
                outcome.idata = stop.idata
                outcome.interrupted = {
                    "stage": "nuts",
                    "draws": stop.num_samples_done,
                    "draws_requested": stop.num_samples,
                }
                progress.note(
                    f"interrupted after {stop.num_samples_done} of {stop.num_samples} draws per chain: "
                    "finishing the run with those draws (Ctrl-C again to stop at once, writing nothing)"
                )
            outcome.posterior_summary = posterior_summary(outcome.idata)
            outcome.modes, outcome.modes_found = timed("modes", posterior_modes, spec, outcome.idata, progress)
            if spec.compare:
                progress.stage(comparison_words(spec))
                outcome.comparison = timed("compare", compare, spec, fitted, outcome.idata, seconds)
        if table.truth is not None:
            outcome.recovery = recovery(table, fitted, outcome.idata)
        outcome.crosstab, outcome.adjusted_rand_index = agreement(table, fitted)
        outcome.seconds = seconds
        if folder is not None:
            progress.stage(f"writing {out}: report, parameters, figures")
            outcome.out = Path(out)
            outcome.files = timed("write", report.write_results, outcome, folder.path)
            folder.commit()
    seconds["total"] = round(time.perf_counter() - progress.started, 3)
    return outcome


def _data_words(spec: RunSpec) -> str:
    d = spec.data
    if d.dataset is not None:
        words = f"dataset {d.dataset!r}"
    elif d.path is not None:
        words = str(d.path)
    else:
        words = f"simulated from the model ({d.simulate.n_rows} rows, seed {d.simulate.seed})"
    extras = [w for w, on in (("standardized", d.standardize), ("rows with missing values dropped", d.drop_na)) if on]
    return words + (f" ({', '.join(extras)})" if extras else "")


def _fit_words(spec: RunSpec) -> str:
    m, e = spec.model, spec.em
    restarts = f"{e.n_init} restart{'s' if e.n_init != 1 else ''}"
    if e.init in ("hierarchical", "mclust"):
        restarts = f"one {e.init} start"
    if m.method == "kmeans":
        return f"k-means: K={m.n_components}, {restarts}"
    kind = "MAP under the default prior" if m.prior == "default" else "maximum likelihood"
    if m.select is not None:
        s = m.select
        ks = s.k
        k_words = f"{ks[0]}..{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1)) else ",".join(map(str, ks))
        return (
            f"model grid: K in {k_words} x {len(s.covariance_types)} covariance structures "
            f"({', '.join(s.covariance_types)}), {kind}, {restarts} each, by {s.criterion.upper()}"
        )
    return f"EM: K={m.n_components}, {code_of(m.covariance_type)} covariances, {kind}, {restarts}"

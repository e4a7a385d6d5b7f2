"""What a run produced: the point estimate (``Fitted``) and everything else (``Outcome``).

``gmm_ppl.app.pipeline`` makes them, ``gmm_ppl.app.report`` writes them to the results folder
and ``gmm_ppl.app.cli`` prints them; they live here so that neither of those imports another
for them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from gmm_ppl import GMMParams, covariance, criteria
from gmm_ppl.app import tabular
from gmm_ppl.app.cards import RunSpec
from gmm_ppl.app.words import code_of


@dataclasses.dataclass
class Fitted:
    """The point estimate a run ends with, whatever produced it (EM, k-means, a grid).

    ``params`` are NumPy float64 in ``covariance_type``'s shape; ``labels`` the most probable
    component of every row; ``em_result`` the ``EMResult`` (None for k-means).
    """

    method: str
    params: GMMParams
    covariance_type: str
    prior: object
    log_likelihood: float
    objective: float
    n_iter: int
    converged: bool
    trace: np.ndarray
    restart_objectives: np.ndarray
    best_restart: int
    labels: np.ndarray
    em_result: object = None
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def n_components(self) -> int:
        return int(np.shape(self.params.means)[0])

    def n_parameters(self, n_features: int) -> int:
        if self.method == "kmeans":  # K centres and one variance; the weights are fixed
            return self.n_components * n_features + 1
        return covariance.n_free_parameters(self.n_components, n_features, self.covariance_type)

    def bic(self, n_rows: int, n_features: int) -> float:
        """mclust's sign, larger is better: 2 log L - p log N."""
        return criteria.bic(self.log_likelihood * n_rows, self.n_parameters(n_features), n_rows)


@dataclasses.dataclass
class Outcome:
    """Everything a run produced; ``summary()`` is the JSON the command line prints."""

    spec: RunSpec
    table: tabular.Table
    fitted: Fitted
    command: str | None = None
    selection: object = None
    idata: object = None
    posterior_summary: object = None
    # The posterior's modes beside the draws (``multimodal.modes_of_run``): a DataFrame, and
    # the ``Modes`` it describes, row for row (each mode's MAP-EM parameters and weights).
    modes: object = None
    modes_found: object = None
    comparison: object = None
    recovery: object = None
    crosstab: object = None
    adjusted_rand_index: float | None = None
    out: Path | None = None
    files: list[str] = dataclasses.field(default_factory=list)
    seconds: dict = dataclasses.field(default_factory=dict)
    # Set when Ctrl-C stopped NUTS after warm-up: {"stage": "nuts", "draws": kept per chain,
    # "draws_requested": asked for}; the run then holds (and writes) the draws made so far.
    interrupted: dict | None = None

    def diagnostics(self) -> dict | None:
        """NUTS in numbers: divergences, largest r_hat, smallest bulk and tail ESS."""
        if self.idata is None:
            return None
        import arviz as az

        post = self.idata.posterior[["weights", "means", "covariances"]]
        rhat = az.rhat(post)
        ess = az.ess(post, method="bulk")
        ess_tail = az.ess(post, method="tail")
        return {
            "num_chains": int(self.idata.posterior.sizes["chain"]),
            "num_warmup": int(self.spec.mcmc.num_warmup),
            "num_samples": int(self.idata.posterior.sizes["draw"]),
            "num_samples_requested": int(self.spec.mcmc.num_samples),
            "divergences": int(self.idata.sample_stats["diverging"].values.sum()),
            "max_r_hat": float(max(float(rhat[v].max()) for v in rhat.data_vars)),
            "min_ess_bulk": float(min(float(ess[v].min()) for v in ess.data_vars)),
            "min_ess_tail": float(min(float(ess_tail[v].min()) for v in ess_tail.data_vars)),
        }

    def summary(self) -> dict:
        """The run as one JSON-ready dictionary (what ``--json`` prints)."""
        from gmm_ppl.saved import jsonable

        t, f, spec = self.table, self.fitted, self.spec
        N, D = t.x.shape
        out = {
            "name": spec.name,
            "card": spec.card,
            "command": self.command,
            "data": {
                "source": t.source,
                "n_rows": N,
                "n_rows_read": t.n_rows_read,
                "n_rows_dropped": t.n_dropped,
                "columns": t.columns,
                "skipped_columns": t.skipped_columns,
                "standardized": t.mean is not None,
                "standardize_mean": t.mean,
                "standardize_scale": t.scale,
            },
            "model": {
                "method": f.method,
                "n_components": f.n_components,
                "covariance_type": f.covariance_type,
                "mclust_code": code_of(f.covariance_type),
                "prior": spec.model.prior,
            },
            "fit": {
                "weights": f.params.weights,
                "means": f.params.means,
                "covariances": f.params.covariances,
                "log_likelihood": f.log_likelihood,
                "log_likelihood_total": f.log_likelihood * N,
                "objective": f.objective,
                "bic": f.bic(N, D),
                "n_parameters": f.n_parameters(D),
                "n_iter": f.n_iter,
                "converged": f.converged,
                "n_init": len(f.restart_objectives),
                **f.extra,
            },
            "selection": None,
            "posterior": None,
            "comparison": None,
            "recovery": None,
            "agreement": None,
            "interrupted": self.interrupted,
            "out": None if self.out is None else str(self.out),
            "files": self.files,
            "seconds": self.seconds,
        }
        if self.selection is not None:
            sel = self.selection
            out["selection"] = {
                "criterion": sel.criterion,
                "best": {"covariance_type": sel.best[0], "n_components": sel.best[1]},
                "table": sel.table.to_dict(orient="records"),
            }
        if self.idata is not None:
            out["posterior"] = {
                **self.diagnostics(),
                "summary": self.posterior_summary.reset_index(names="parameter").to_dict(orient="records"),
            }
        if self.modes is not None:
            out["posterior"]["modes"] = self.modes.reset_index().to_dict(orient="records")
        if self.comparison is not None:
            c = self.comparison
            out["comparison"] = {
                "hdi_prob": c.hdi_prob,
                "parameters": c.parameters.reset_index().to_dict(orient="records"),
                "summary": {k: v for k, v in c.summary["value"].items()},
            }
        if self.recovery is not None:
            out["recovery"] = self.recovery.to_dict(orient="records")
        if self.adjusted_rand_index is not None:
            out["agreement"] = {
                "labels": t.label_name,
                "adjusted_rand_index": self.adjusted_rand_index,
                "crosstab": {str(k): v for k, v in self.crosstab.to_dict(orient="index").items()},
            }
        return jsonable(out)

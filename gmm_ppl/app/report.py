"""The results folder of a run: parameters, tables, figures and one ``report.md``.

``write_results(outcome, folder)`` writes, as they apply:

  params.json            the fitted model (``gmm_ppl.load`` reads it back)
  assignments.csv        the fitted component of every row and its responsibility
  em_trace.csv           EM's objective after every iteration
  selection.csv          the K x covariance-structure grid (criteria, singular fits)
  posterior.nc           the NUTS draws as ArviZ InferenceData (NetCDF)
  posterior_summary.csv  ArviZ's summary of the weights and means
  comparison.csv/.md     EM beside the posterior (``gp.compare``)
  recovery.csv           true against estimated parameters of a simulation
  ellipses.png           data and 2-sd ellipses (posterior draws and EM, or EM alone)
  density.png            contours of the fitted density (first two columns)
  bic.png                the criterion against K, one curve per structure
  trace.png              ArviZ trace plot of the weights and means
  modes.csv              the posterior's modes beside the draws (Laplace weights, draw shares)
  modes.png              each mode of some weight, its MAP-EM fit's ellipses (several modes, 2+ columns)
  summary.json           what ``--json`` prints
  report.md              the story of the run, figures linked relatively

Every criterion a person reads here (report.md, comparison.md, the bic.png axis) is in one
sign, mclust's (larger is better: ``gmm_ppl.criteria``), and each table that shows one names
the direction in its header; selection.csv keeps ``select_model``'s column names (bic, aic,
icl), in that sign too.

Figures use matplotlib's object API (no pyplot state) at 100 dpi, except ArviZ's trace plot,
whose figure is closed once saved.
"""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np

import gmm_ppl as gp
from gmm_ppl import criteria, saved
from gmm_ppl._text import markdown_table as _markdown_table
from gmm_ppl.app.outcome import Outcome
from gmm_ppl.app.words import describe_covariance, interrupted_words
from gmm_ppl.density import full_covariances

DPI = 100


def modes_markdown(table) -> str:
    """The report's Modes section: the posterior's modes beside the draws."""
    from gmm_ppl.multimodal import MIN_WEIGHT

    heavy = int((table.laplace_weight >= MIN_WEIGHT).sum())
    text = "## Modes\n\n"
    text += (
        "MAP-EM from 50 starts under the posterior's prior lands in the modes below (`gp.find_modes`), the same "
        "mode up to the components' labels counted once. Laplace weight: each mode's mass by a Laplace "
        "approximation, normalised; draw share: the share of the NUTS draws above that lie nearest the mode "
        "([modes.csv](modes.csv)).\n\n"
    )
    if heavy > 1:
        text += (
            f"**The posterior has {heavy} modes of Laplace weight at least {MIN_WEIGHT}.** The draws above were "
            "relabelled to the EM fit as one mode; where they lie nearest another mode their components mean "
            "something else, and their summaries mix the modes. `gp.sample_posterior(x, K)` (modes='auto') "
            "starts chains in every such mode, relabels each to its own, and weighs the modes by stacking too; "
            "`gp.modes(idata)` is its table.\n\n"
        )
    elif heavy == 1:
        text += f"One mode holds the posterior's mass: no other has a Laplace weight of {MIN_WEIGHT} or more.\n\n"
    else:
        text += "Newton's search from MAP-EM's ends found no mode of the posterior's density to weigh.\n\n"
    shown = table.copy()
    for column in ("log_posterior",):
        shown[column] = shown[column].map(lambda v: f"{v:.2f}")
    for column in ("laplace_weight", "draw_share"):
        shown[column] = shown[column].map(lambda v: f"{v:.3g}")
    return text + frame_markdown(shown, "mode") + "\n"


def write_results(outcome: Outcome, folder: Path) -> list[str]:
    """Write every file of the run into ``folder``; returns their names, report.md last."""
    folder = Path(folder)
    files: list[str] = []

    def put(name: str, text: str):
        (folder / name).write_text(text, encoding="utf-8")
        files.append(name)

    f = outcome.fitted
    put("params.json", saved.dumps(params_json(outcome)))
    if len(f.trace):
        n = f.n_iter
        lines = ["iteration,objective"] + [f"{i},{v!r}" for i, v in enumerate(f.trace[: n + 1].tolist())]
        put("em_trace.csv", "\n".join(lines) + "\n")
    put("assignments.csv", assignments_csv(outcome))
    if outcome.selection is not None:
        put("selection.csv", outcome.selection.table.to_csv(index=False))
    if outcome.idata is not None:
        outcome.idata.to_netcdf(str(folder / "posterior.nc"))
        files.append("posterior.nc")
        put("posterior_summary.csv", outcome.posterior_summary.to_csv(index_label="parameter"))
    if outcome.modes is not None:
        put("modes.csv", outcome.modes.to_csv())
    if outcome.comparison is not None:
        put("comparison.csv", outcome.comparison.parameters.to_csv())
        put("comparison.md", outcome.comparison.to_markdown())
    if outcome.recovery is not None:
        put("recovery.csv", outcome.recovery.to_csv())
    files += write_figures(outcome, folder)
    listed = files + ["summary.json", "report.md"]
    outcome.files = listed
    put("summary.json", saved.dumps(outcome.summary()))
    put("report.md", report_markdown(outcome, listed))
    return files


def assignments_csv(outcome: Outcome) -> str:
    """Per data row (in the order of the rows used, after any dropped ones): the fitted
    component and its responsibility."""
    f = outcome.fitted
    resp = gp.responsibilities(f.params, outcome.table.x, f.covariance_type)
    best = resp[np.arange(len(f.labels)), f.labels]
    lines = ["row,component,probability"] + [
        f"{i},{k},{p:.6g}" for i, (k, p) in enumerate(zip(f.labels, best, strict=True))
    ]
    return "\n".join(lines) + "\n"


def params_json(outcome: Outcome) -> dict:
    t, f = outcome.table, outcome.fitted
    return saved.params_record(
        params=f.params,
        covariance_type=f.covariance_type,
        columns=t.columns,
        method=f.method,
        prior=f.prior,
        log_likelihood=f.log_likelihood,
        objective=f.objective,
        n_iter=f.n_iter,
        converged=f.converged,
        trace=f.trace,
        restart_objectives=f.restart_objectives,
        best_restart=f.best_restart,
        n_rows=t.x.shape[0],
        mean=t.mean,
        scale=t.scale,
        extra={"source": t.source, "n_rows_dropped": t.n_dropped, **f.extra},
    )


# -- figures ------------------------------------------------------------------------------


def _figure(width=6.0, height=5.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    return fig, fig.add_subplot()


def _save(fig, path: Path):
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def write_figures(outcome: Outcome, folder: Path) -> list[str]:
    """The PNG figures that apply to the run; returns their names."""
    t, f = outcome.table, outcome.fitted
    D = t.x.shape[1]
    names = []
    if D >= 2:
        fig, ax = _figure()
        if outcome.idata is not None:
            gp.plot_ellipses(outcome.idata, f.em_result, ax=ax)
            ax.set_title("posterior draws (thin) and EM (bold): 2-sd ellipses")
        else:
            _em_ellipses(ax, t, f)
        _save(fig, folder / "ellipses.png")
        names.append("ellipses.png")
    fig, ax = _figure()
    _density(ax, t, f)
    _save(fig, folder / "density.png")
    names.append("density.png")
    if outcome.selection is not None:
        fig, ax = _figure(6.5, 4.5)
        sel = outcome.selection
        finite = sel.table.replace([np.inf, -np.inf], np.nan)
        type(sel)(finite, sel.fits, sel.criterion, sel.best).plot(ax=ax)
        _save(fig, folder / "bic.png")
        names.append("bic.png")
    if outcome.idata is not None:
        import arviz as az
        import matplotlib.pyplot as plt

        K, D = f.n_components, t.x.shape[1]
        # One panel per entry when there are few: compact panels put columns of different
        # scales on one axis.
        axes = az.plot_trace(outcome.idata, var_names=["weights", "means"], compact=K * (D + 1) > 12)
        fig = np.ravel(axes)[0].figure
        try:
            fig.tight_layout()
            fig.savefig(folder / "trace.png", dpi=DPI)
        finally:
            plt.close(fig)
        names.append("trace.png")
    if D >= 2 and len(_shown_modes(outcome)) > 1:
        _save(modes_figure(outcome), folder / "modes.png")
        names.append("modes.png")
    return names


def _shown_modes(outcome: Outcome) -> list[int]:
    """The modes a person is shown: those ``sample_posterior`` would sample
    (``multimodal.modes_to_sample``: Laplace weight at least MIN_WEIGHT, the heaviest
    MAX_MODES); none without a search."""
    from gmm_ppl.multimodal import modes_to_sample

    return [] if outcome.modes_found is None else modes_to_sample(outcome.modes_found)


def modes_figure(outcome: Outcome):
    """One panel per mode of some weight (``_shown_modes``): the data coloured by that mode's
    MAP-EM components and their 2-sd ellipses, titled with its Laplace weight and the share
    of the run's draws nearest it."""
    from matplotlib.figure import Figure

    t, f = outcome.table, outcome.fitted
    shown = _shown_modes(outcome)
    fig = Figure(figsize=(4.5 * len(shown), 4.2), dpi=DPI)
    for i, m in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), i + 1)
        params = outcome.modes_found.params[m]
        labels = np.argmax(gp.responsibilities(params, t.x, f.covariance_type), axis=1)
        _ellipses(ax, t, params, f.covariance_type, labels)
        row = outcome.modes.iloc[m]
        ax.set_title(f"mode {m}: Laplace weight {row.laplace_weight:.2f}, draws {row.draw_share:.2f}", fontsize=9)
    return fig


def _em_ellipses(ax, t, f):
    """Data coloured by fitted component and the 2-sd ellipse of every component."""
    _ellipses(ax, t, f.params, f.covariance_type, f.labels)
    what = "k-means clusters" if f.method == "kmeans" else "EM fit"
    ax.set_title(f"{what}: 2-sd ellipses")


def _ellipses(ax, t, params, covariance_type: str, labels):
    """Data (first two columns) coloured by ``labels`` and the 2-sd ellipse of every
    component of ``params``, with the columns' names on the axes."""
    import matplotlib as mpl
    from matplotlib.patches import Ellipse

    K = len(params.weights)
    full = full_covariances(params.covariances, covariance_type, K, t.x.shape[1])
    colours = mpl.colormaps["tab10"]
    ax.scatter(t.x[:, 0], t.x[:, 1], s=8, c=[colours(k % 10) for k in labels], alpha=0.5, lw=0)
    for k in range(K):
        values, vectors = np.linalg.eigh(full[k][:2, :2])
        angle = math.degrees(math.atan2(vectors[1, 1], vectors[0, 1]))
        width, height = 4 * np.sqrt(np.maximum(values[::-1], 0))
        ax.add_patch(
            Ellipse(
                params.means[k][:2],
                width,
                height,
                angle=angle,
                fill=False,
                color=colours(k % 10),
                lw=2.2,
                label=f"component {k} (weight {params.weights[k]:.2f})",
            )
        )
    ax.set_xlabel(t.columns[0])
    ax.set_ylabel(t.columns[1])
    ax.legend(loc="best", fontsize="small")
    ax.autoscale_view()


def _bounds(v):
    low, high = float(v.min()), float(v.max())
    pad = 0.08 * (high - low) if high > low else 1.0
    return low - pad, high + pad


def _density(ax, t, f):
    x = t.x
    if x.shape[1] >= 2:
        xs, ys, log_density = gp.density_grid(
            f.params, bounds=(_bounds(x[:, 0]), _bounds(x[:, 1])), resolution=120, covariance_type=f.covariance_type
        )
        top = float(log_density.max())
        levels = np.linspace(top - 8, top, 12)
        ax.contourf(xs, ys, log_density, levels=levels, cmap="viridis", alpha=0.8, extend="min")
        ax.contour(xs, ys, log_density, levels=levels, colors="k", linewidths=0.3)
        ax.scatter(x[:, 0], x[:, 1], s=6, c="white", edgecolors="k", linewidths=0.3)
        ax.set_xlabel(t.columns[0])
        ax.set_ylabel(t.columns[1])
        extra = "" if x.shape[1] == 2 else f" (marginal of {x.shape[1]} columns)"
        ax.set_title(f"log density of the fit{extra}")
    else:
        grid = np.linspace(*_bounds(x[:, 0]), 400)
        density = np.exp(gp.log_likelihood(f.params, grid[:, None], f.covariance_type))
        ax.hist(x[:, 0], bins=40, density=True, color="0.8")
        ax.plot(grid, density, color="C0", lw=2)
        ax.set_xlabel(t.columns[0])
        ax.set_ylabel("density")
        ax.set_title("data and fitted density")


# -- report.md ----------------------------------------------------------------------------


def _number(v, digits=4):
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    if not math.isfinite(v):
        return "—"
    if 1e3 <= abs(v) < 1e7:  # log-likelihoods, criteria, ESS: keep the units digit and one more
        return f"{v:.0f}" if v == round(v) else f"{v:.1f}"
    return f"{v:.{digits}g}"


def markdown_table(header: list[str], rows: list[list]) -> str:
    """The library's Markdown table, numbers written by ``_number``."""
    return _markdown_table(header, rows, _number)


def frame_markdown(frame, index_name: str | None = None, digits=4) -> str:
    header = [index_name if index_name is not None else (frame.index.name or "")] + [str(c) for c in frame.columns]
    rows = [[str(i)] + [v if isinstance(v, str) else _number(v, digits) for v in row] for i, row in frame.iterrows()]
    return markdown_table(header, rows)


def component_table(outcome: Outcome) -> tuple[list[str], list[list]]:
    """Component, weight, mean per column, sd per column: the fit at a glance."""
    t, f = outcome.table, outcome.fitted
    K, D = f.n_components, t.x.shape[1]
    sd = np.sqrt(np.diagonal(full_covariances(f.params.covariances, f.covariance_type, K, D), axis1=1, axis2=2))
    counts = np.bincount(f.labels, minlength=K)
    header = ["component", "weight", "rows"] + [f"mean {c}" for c in t.columns] + [f"sd {c}" for c in t.columns]
    rows = [
        [str(k), float(f.params.weights[k]), int(counts[k])] + list(f.params.means[k]) + list(sd[k]) for k in range(K)
    ]
    return header, rows


def report_markdown(outcome: Outcome, files: list[str]) -> str:
    spec, t, f = outcome.spec, outcome.table, outcome.fitted
    N, D = t.x.shape
    out: list[str] = []
    add = out.append
    add(f"# {spec.name}\n")
    if outcome.interrupted is not None:
        add(
            f"**Interrupted:** {interrupted_words(outcome.interrupted)}; everything below that uses the "
            "posterior uses the draws made until then.\n"
        )
    add(f"{spec.description}\n")
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    run_line = f"Run: `{outcome.command}`" if outcome.command else "Run from Python"
    card = f" from card `{spec.card}`" if spec.card else ""
    add(f"{run_line}{card}; gmm_ppl {gp.__version__}; EM seed {spec.em.seed}; {when}.\n")

    # Data.
    add("## Data\n")
    add(f"- source: {t.source}" + (f" — {t.description}" if t.description else ""))
    if spec.data.dataset is not None:
        add(f"- reference: {gp.datasets.info(spec.data.dataset).source}")
    add(f"- {N} rows x {D} columns: {', '.join(t.columns)}")
    if t.n_dropped:
        add(f"- {t.n_dropped} of {t.n_rows_read} rows had missing values and were dropped (`--drop-na`)")
    if t.skipped_columns:
        add(f"- non-numeric columns left out: {', '.join(t.skipped_columns)}")
    if t.mean is not None:
        add(
            "- standardised: every column centred and divided by its standard deviation; all parameters below "
            "(and in params.json) are in these standardised units"
        )
    add("")
    raw = t.x if t.mean is None else t.x * t.scale + t.mean
    rows = [[c, raw[:, j].mean(), raw[:, j].std(ddof=1) if N > 1 else 0.0, raw[:, j].min(), raw[:, j].max()]
            for j, c in enumerate(t.columns)]  # fmt: skip
    add(markdown_table(["column", "mean", "sd", "min", "max"], rows) + "\n")

    # Model.
    add("## Model\n")
    m, e = spec.model, spec.em
    if f.method == "kmeans":
        add(
            f"k-means with K={f.n_components} ({e.n_init} k-means++ restarts): the hard-assignment limit of EM "
            "with equal weights and one shared spherical variance. It is saved as that mixture (covariance type "
            "EII, equal weights, the variance = inertia / (N D)), so `gmm_ppl.load` predicts the nearest centre.\n"
        )
    else:
        kind = (
            "MAP-EM under the default conjugate prior (Dirichlet(1) on the weights; inverse-Wishart or, for "
            "diagonal and spherical structures, inverse-gamma covariances with normal means: mclust's defaults)"
            if m.prior == "default"
            else "maximum-likelihood EM"
        )
        if outcome.selection is not None:
            s = m.select
            add(
                f"K and the covariance structure chosen by {s.criterion.upper()} (mclust's sign: {criteria.DIRECTION}) "
                f"over K in {s.k} and the structures {', '.join(s.covariance_types)}; each model by {kind} "
                f"with {e.n_init} {e.init} restart(s), tol {e.tol:g}, at most {e.max_iter} iterations.\n"
            )
        else:
            add(
                f"K={f.n_components}, covariance {describe_covariance(f.covariance_type)}; {kind} with "
                f"{e.n_init} {e.init} restart(s), tol {e.tol:g} (mean per-row objective), at most "
                f"{e.max_iter} iterations.\n"
            )

    # Model selection.
    if outcome.selection is not None:
        sel = outcome.selection
        add("## Model selection\n")
        add(
            f"Best: **{sel.best[0]}, K={sel.best[1]}** by {sel.criterion.upper()}. Top models "
            "(singular fits, whose covariance is set by the regulariser rather than the data, cannot win):\n"
        )
        top = sel.table.sort_values(sel.criterion, ascending=False).head(10)
        cols = ["covariance_type", "n_components", "log_likelihood", "n_parameters", "bic", "aic", "icl", "singular"]
        top = top[cols].set_index("covariance_type").rename(columns={c: criteria.label(c) for c in criteria.FORMULAS})
        add(f"Criteria in {criteria.SIGN_LINE}.\n")
        add(frame_markdown(top, "covariance_type", digits=6) + "\n")
        add(f"{criteria.label(sel.criterion)} by K and structure, as mclust prints it (NA: singular):\n")
        add(frame_markdown(sel.wide_table().map(lambda v: "NA" if v != v else v), "K", digits=6) + "\n")
        add("Full grid: [selection.csv](selection.csv).\n")
        add("![criterion against K](bic.png)\n")

    # The fit.
    add("## EM result\n" if f.method != "kmeans" else "## k-means result\n")
    if f.method == "kmeans":
        add(
            f"Inertia {f.extra['inertia']:.6g} after {f.n_iter} Lloyd iterations"
            f" ({'converged' if f.converged else 'did not converge'}); as the EII mixture, log-likelihood "
            f"{f.log_likelihood:.6f} per row.\n"
        )
    else:
        objective = f"; objective (log joint per row) {f.objective:.6f}" if f.prior is not None else ""
        spread = np.sort(f.restart_objectives)[::-1]
        add(
            f"Log-likelihood **{f.log_likelihood:.6f}** per row (total {f.log_likelihood * N:.3f}){objective}; "
            f"BIC {f.bic(N, D):.2f} ({criteria.FORMULAS['bic']}, {f.n_parameters(D)} free parameters; "
            f"{criteria.DIRECTION}); "
            f"{f.n_iter} iterations, {'converged' if f.converged else '**did not converge**'}; best of "
            f"{len(spread)} restart(s) (restart objectives from {spread[-1]:.6f} to {spread[0]:.6f}). "
            "The objective after every iteration: [em_trace.csv](em_trace.csv).\n"
        )
    header, rows = component_table(outcome)
    add(markdown_table(header, rows) + "\n")
    add("Covariances and everything else: [params.json](params.json).\n")

    # Posterior.
    if outcome.idata is not None:
        d = outcome.diagnostics()
        add("## Posterior (NUTS)\n")
        add(
            f"The same model under the default conjugate prior, sampled by NUTS with the assignments summed out: "
            f"{d['num_chains']} chains x ({d['num_warmup']} warm-up + {d['num_samples']} draws), draws relabelled "
            f"to the EM fit. Divergences: {d['divergences']}; largest r_hat {d['max_r_hat']:.3f}; smallest bulk "
            f"ESS {d['min_ess_bulk']:.0f}, tail ESS {d['min_ess_tail']:.0f}.\n"
        )
        summary = outcome.posterior_summary[["mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail"]]
        add(frame_markdown(summary, "parameter") + "\n")
        add("Draws: [posterior.nc](posterior.nc) (`arviz.from_netcdf`).\n")
        add("![trace plot](trace.png)\n")

    # Modes.
    if outcome.modes is not None:
        add(modes_markdown(outcome.modes))
        if "modes.png" in files:
            add("![each mode's MAP-EM fit: 2-sd ellipses](modes.png)\n")

    # Comparison.
    if outcome.comparison is not None:
        c = outcome.comparison
        add("## EM beside the posterior\n")
        shown = [
            words
            for column, words in (
                ("em_ml", "ML-EM"),
                ("em_map", "MAP-EM"),
                ("wald_low", "EM's Wald interval (observed information)"),
                ("boot_low", "its bootstrap percentile interval"),
                ("vb_mean", "variational Bayes' mean, sd and HDI"),
            )
            if column in c.parameters.columns
        ]
        add(
            "Per parameter entry: "
            + "".join(f"{w}, " for w in shown)
            + f"the posterior mean, sd and {c.hdi_prob:.0%} HDI, whether each EM value lies in it, r_hat and ESS "
            "([comparison.csv](comparison.csv), [comparison.md](comparison.md)); the model table ends with the "
            "seconds each method took.\n"
        )
        add(c.to_markdown().replace("## ", "### ") + "\n")

    # Recovery.
    if outcome.recovery is not None:
        r = outcome.recovery
        add("## Recovery of the true parameters\n")
        add(
            "The data were drawn from the model with the parameters below; the fitted components are matched to "
            "the true ones by the Hungarian algorithm on the Kullback-Leibler divergence "
            "([recovery.csv](recovery.csv))."
        )
        if "true_in_hdi" in r.columns:
            add(f" {int(r['true_in_hdi'].sum())} of {len(r)} true values lie in their 94% HDI.")
        add("\n")
        add(frame_markdown(r, "parameter") + "\n")
    elif t.truth is not None:
        add("## Recovery of the true parameters\n")
        add("Not shown: the fit has a different number of components from the simulation.\n")

    # Known labels.
    if outcome.crosstab is not None:
        add(f"## Clusters against the known {t.label_name}\n")
        add(
            f"Adjusted Rand index {outcome.adjusted_rand_index:.3f} (1: the same partition; about 0: no better "
            "than chance). Rows: the known labels; columns: the fitted component with the largest "
            "responsibility.\n"
        )
        ct = outcome.crosstab
        add(markdown_table([t.label_name] + [str(c) for c in ct.columns],
                           [[str(i)] + [int(v) for v in row] for i, row in ct.iterrows()]) + "\n")  # fmt: skip

    # Figures.
    add("## Figures\n")
    if "ellipses.png" in files:
        add("![data and 2-sd ellipses](ellipses.png)\n")
    add("![fitted density](density.png)\n")

    # Files and loading.
    add("## Files\n")
    descriptions = {
        "params.json": "the fitted model (`gmm_ppl.load` reads it)",
        "assignments.csv": "the fitted component of every row and its responsibility",
        "em_trace.csv": "EM's objective after every iteration",
        "selection.csv": f"the model grid (bic, aic, icl: {criteria.SIGN_LINE})",
        "posterior.nc": "the posterior draws (ArviZ InferenceData, NetCDF)",
        "posterior_summary.csv": "ArviZ's summary of the weights and means",
        "modes.csv": "the posterior's modes: Laplace weights, the share of the draws nearest each",
        "comparison.csv": "EM beside the posterior, per parameter entry",
        "comparison.md": "the comparison as Markdown tables",
        "recovery.csv": "true against estimated parameters",
        "ellipses.png": "data and 2-sd ellipses",
        "density.png": "contours of the fitted density",
        "bic.png": "the selection criterion against K",
        "trace.png": "trace plot of the NUTS draws",
        "modes.png": "each mode of the posterior of some weight: its MAP-EM fit's 2-sd ellipses",
        "summary.json": "this run in numbers (the `--json` output)",
        "report.md": "this report",
    }
    for name in files:
        add(f"- [{name}]({name}): {descriptions.get(name, '')}")
    add("")
    add("Load the fit back in Python:\n")
    add('```python\nimport gmm_ppl\n\ngm = gmm_ppl.load("path/to/this/folder")  # a fitted gmm_ppl.GaussianMixture')
    if t.mean is not None:
        add("labels = gm.predict((x - gm.standardize_mean_) / gm.standardize_scale_)  # standardised units")
    else:
        add(f"labels = gm.predict(x)  # x: rows with the columns {', '.join(t.columns)}")
    add("```")
    return "\n".join(out) + "\n"

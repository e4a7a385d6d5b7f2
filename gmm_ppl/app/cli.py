"""The ``gmm-ppl`` command line (also ``python -m gmm_ppl``).

    gmm-ppl demo --out runs/demo                       EM and NUTS on Old Faithful
    gmm-ppl run models/old_faithful.toml --out DIR     a model card
    gmm-ppl cards                                      the shipped model cards
    gmm-ppl fit data.csv -k 3 --out DIR                EM
    gmm-ppl sample data.csv -k 3 --chains 4            NUTS (EM gives the labelling)
    gmm-ppl compare data.csv -k 3                      EM beside the posterior
    gmm-ppl compare data.csv -k 3 --methods ml,map,vb,nuts,bootstrap   all four ways, EM's intervals
    gmm-ppl select data.csv --k 1..9                   K x covariance structure by BIC
    gmm-ppl datasets list | describe NAME | export NAME FILE.csv

Tables go to stdout (``--json``: one JSON object instead), progress to stderr
(``--quiet`` silences it). Without ``--out`` nothing is written. Exit status: 0 done,
2 bad input or usage (one line on stderr: ``gmm-ppl: error: ...``), 130 interrupted
(Ctrl-C: nothing written, except during NUTS sampling, where the results folder is
written with the draws made so far and marked as interrupted), 1 an internal error
(a bug: the traceback is printed).

``main(argv)`` runs in-process and returns the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path

PROG = "gmm-ppl"
DEMO_CARD = "old_faithful"


class UsageError(Exception):
    """A command line argparse refuses; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


# -- the parser ---------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser, *, out: bool = True, seed_default: int | None = 0):
    g = p.add_argument_group("output")
    if out:
        g.add_argument("--out", metavar="DIR", help="write the results folder DIR (without it nothing is written)")
        g.add_argument("--force", action="store_true", help="replace an existing results folder DIR")
    g.add_argument(
        "--seed",
        type=int,
        default=seed_default,
        metavar="N",
        help="random seed of EM restarts and NUTS (default: "
        + ("the card's em.seed and mcmc.seed" if seed_default is None else "%(default)s")
        + "); the same seed gives the same results",
    )
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress messages on stderr")


def _input(p: argparse.ArgumentParser):
    p.add_argument("data", help="a CSV file (first line: column names) or a .npy array")
    g = p.add_argument_group("input")
    g.add_argument("--columns", metavar="A,B", help="the columns to use (default: every numeric column)")
    g.add_argument("--drop-na", action="store_true", help="drop rows with missing values (default: refuse them)")
    g.add_argument(
        "--standardize",
        action="store_true",
        help="centre and scale every column; the fit is then in standardised units (mean and scale in params.json)",
    )


def _em(p: argparse.ArgumentParser, *, tol: float, n_init: int):
    g = p.add_argument_group("EM")
    g.add_argument("--n-init", type=int, default=n_init, metavar="N", help="EM restarts (default: %(default)s)")
    g.add_argument(
        "--init",
        default="kmeans++",
        help="starts: kmeans++, kmeans, random_from_data, random, hierarchical, mclust (default: %(default)s)",
    )
    g.add_argument(
        "--prior",
        default="none",
        help="none (maximum likelihood) or default (MAP-EM under the conjugate prior) (default: %(default)s)",
    )
    g.add_argument("--max-iter", type=int, default=1000, metavar="N", help="EM iterations per restart (%(default)s)")
    g.add_argument(
        "--tol", type=float, default=tol, help="stop when the mean per-row objective moves less (%(default)g)"
    )


def _model(p: argparse.ArgumentParser):
    from gmm_ppl.app.words import covariance_choices

    g = p.add_argument_group("model")
    g.add_argument("-k", "--n-components", type=int, required=True, metavar="K", help="number of components")
    g.add_argument(
        "--covariance-type",
        default="full",
        metavar="TYPE",
        help=f"{covariance_choices()}; default: %(default)s",
    )


INTERRUPT_HELP = (
    "Ctrl-C during NUTS sampling (after the 'warm-up done' line) stops sampling but keeps its work: the "
    "run finishes with the draws made so far, writes the results folder (marked as interrupted in "
    "report.md and summary.json) and exits with status 130. Ctrl-C before that (EM, compilation, "
    "warm-up) writes nothing."
)


def _mcmc(p: argparse.ArgumentParser):
    g = p.add_argument_group("NUTS", description=INTERRUPT_HELP)
    g.add_argument("--chains", type=int, default=4, help="chains (default: %(default)s)")
    g.add_argument("--warmup", type=int, default=500, help="warm-up iterations per chain (default: %(default)s)")
    g.add_argument("--draws", type=int, default=500, help="kept draws per chain (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Gaussian mixture models: EM in JAX and NUTS in NumPyro, side by side.",
        epilog="Exit status: 0 done, 2 bad input, 130 interrupted (Ctrl-C). `gmm-ppl COMMAND --help` for each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "demo", help="EM and NUTS on Old Faithful (the built-in card old_faithful)", epilog=INTERRUPT_HELP
    )
    p.add_argument("--fast", action="store_true", help="fewer restarts and draws (a quick look, for tests)")
    _common(p, seed_default=None)
    p.set_defaults(handler=cmd_run, card=None)

    p = sub.add_parser(
        "run", help="run a model card (a TOML file, or the name of a built-in card)", epilog=INTERRUPT_HELP
    )
    p.add_argument("card", help="path of a .toml card, or the name of a built-in card (gmm-ppl cards)")
    p.add_argument("--fast", action="store_true", help="fewer restarts, draws and grid points (for tests)")
    _common(p, seed_default=None)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("cards", help="list the built-in model cards")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_cards)

    p = sub.add_parser("fit", help="fit a mixture by EM")
    _input(p)
    _model(p)
    _em(p, tol=1e-6, n_init=10)
    _common(p)
    p.set_defaults(handler=cmd_fit, kind="fit")

    for name, text in (
        ("sample", "sample the posterior by NUTS (EM fit first: it sets the labelling)"),
        ("compare", "EM beside the NUTS posterior: estimates, intervals, BIC and LOO"),
    ):
        p = sub.add_parser(name, help=text)
        _input(p)
        _model(p)
        _mcmc(p)
        if name == "compare":
            p.add_argument(
                "--methods",
                default="ml,map,nuts",  # cards.DEFAULT_COMPARE_METHODS; cards imports JAX, --help does not
                metavar="A,B",
                help="what to set side by side: ml, map (ML- and MAP-EM; the fit's own kind is always there), vb "
                "(variational Bayes), nuts (the posterior, always there), bootstrap (EM's Wald and bootstrap "
                "intervals) (default: %(default)s)",
            )
        _em(p, tol=1e-6, n_init=10)
        _common(p)
        p.set_defaults(handler=cmd_fit, kind=name)

    p = sub.add_parser("select", help="choose K and the covariance structure by BIC, AIC or ICL")
    _input(p)
    g = p.add_argument_group("grid")
    g.add_argument("-k", "--k", dest="k", default="1..9", help="K values: a range 1..9 or a list 1,2,3 (default 1..9)")
    g.add_argument(
        "--covariance-types",
        default=",".join(_all_types()),
        metavar="T1,T2",
        help="structures, mclust codes or names (default: every one, %(default)s)",
    )
    g.add_argument("--criterion", default="bic", help="bic, aic or icl; larger is better (default: %(default)s)")
    _em(p, tol=1e-5, n_init=5)
    _common(p)
    p.set_defaults(handler=cmd_fit, kind="select")

    p = sub.add_parser("datasets", help="the shipped datasets: list, describe NAME, export NAME FILE.csv")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    d = dsub.add_parser("list", help="names, sizes and columns")
    d.add_argument("--json", action="store_true", help="print JSON")
    d = dsub.add_parser("describe", help="description, source and column summaries")
    d.add_argument("name")
    d.add_argument("--json", action="store_true", help="print JSON")
    d = dsub.add_parser("export", help="write the dataset as a CSV file (labels included)")
    d.add_argument("name")
    d.add_argument("file")
    d.add_argument("--force", action="store_true", help="replace an existing file")
    d.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_datasets)
    return parser


def _version() -> str:
    from gmm_ppl import __version__

    return __version__


def _all_types():
    from gmm_ppl.selection import DEFAULT_COVARIANCE_TYPES

    return DEFAULT_COVARIANCE_TYPES


# -- main ---------------------------------------------------------------------------------


def main(argv=None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as err:
        return _fail(str(err))
    except SystemExit as done:  # --help, --version
        return int(done.code or 0)
    if args.command is None:
        parser.print_usage(sys.stderr)
        return _fail("a command is required (see gmm-ppl --help)")
    if args.command == "datasets" and args.action is None:
        return _fail("datasets needs an action: list, describe NAME or export NAME FILE.csv")
    args.argv = argv
    try:
        with _warnings_as_lines():
            status = args.handler(args) or 0
    except KeyboardInterrupt:
        out = getattr(args, "out", None)
        where = f" to {out}" if out else ""
        print(f"interrupted; nothing was written{where}", file=sys.stderr, flush=True)
        status = 130
    except BrokenPipeError:
        # The reader went away (gmm-ppl ... | head): stop quietly, as a program killed by SIGPIPE.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, OSError, FloatingPointError) as err:
        return _fail(_message(err))
    if status == 130 and as_program:
        # Ctrl-C can stop Python while XLA's threads still run a computation; letting the
        # interpreter tear down around them crashed (SIGSEGV) instead of exiting with 130.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    return status


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return 2


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror and err.filename:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


@contextlib.contextmanager
def _warnings_as_lines():
    """Library warnings as single 'gmm-ppl: warning: ...' lines on stderr."""

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _command(args) -> str:
    return shlex.join([PROG, *args.argv])


# -- commands -----------------------------------------------------------------------------


def cmd_run(args) -> int:
    from gmm_ppl.app import cards, pipeline

    name = args.card if args.card is not None else DEMO_CARD
    with contextlib.ExitStack() as stack:
        path = Path(name)
        if args.card is not None and (path.exists() or name.endswith(".toml") or os.sep in name):
            spec = cards.load_card(path)
        else:
            real = stack.enter_context(cards.builtin_path(name))
            spec = cards.load_card(real, display=f"gmm_ppl/app/models/{name}.toml")
        if args.seed is not None:
            spec.em.seed = spec.mcmc.seed = args.seed
        if args.fast:
            spec = cards.fast(spec)
        outcome = pipeline.run(spec, out=args.out, force=args.force, quiet=args.quiet, command=_command(args))
    return _finish(outcome, args)


def cmd_fit(args) -> int:
    from gmm_ppl.app import pipeline

    spec = _spec(args)
    outcome = pipeline.run(spec, out=args.out, force=args.force, quiet=args.quiet, command=_command(args))
    return _finish(outcome, args)


def _finish(outcome, args) -> int:
    """Print the run; 130 if Ctrl-C cut NUTS short (the results then hold the draws made so far)."""
    from gmm_ppl.app.words import interrupted_words

    _print_outcome(outcome, args)
    if outcome.interrupted is None:
        return 0
    written = f"wrote {outcome.out} with them" if outcome.out is not None else "nothing was written (no --out)"
    print(f"interrupted: {interrupted_words(outcome.interrupted)}; {written}", file=sys.stderr, flush=True)
    return 130


def _spec(args):
    """The ``RunSpec`` of fit, sample, compare and select, checked with the options' names."""
    from gmm_ppl import covariance
    from gmm_ppl.app.cards import CRITERIA, PRIORS, DataSpec, EMSpec, MCMCSpec, ModelSpec, RunSpec, SelectSpec, parse_k
    from gmm_ppl.app.tabular import parse_columns
    from gmm_ppl.app.words import supported_words
    from gmm_ppl.init import INIT_METHODS

    kind = args.kind
    if args.prior not in PRIORS:
        raise ValueError(f"--prior must be none or default; got {args.prior!r}")
    if args.init not in INIT_METHODS:
        raise ValueError(f"--init must be one of {', '.join(INIT_METHODS)}; got {args.init!r}")
    for option, value, low in (("--n-init", args.n_init, 1), ("--max-iter", args.max_iter, 1)):
        if value < low:
            raise ValueError(f"{option} must be >= {low}; got {value}")
    if not args.tol >= 0:
        raise ValueError(f"--tol must be >= 0; got {args.tol}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0; got {args.seed}")
    data = DataSpec(
        path=Path(args.data), columns=parse_columns(args.columns), standardize=args.standardize, drop_na=args.drop_na
    )
    model = ModelSpec(prior=args.prior)
    if kind == "select":
        types = [t.strip() for t in args.covariance_types.split(",") if t.strip()]
        if not types:
            raise ValueError("--covariance-types is empty")
        for t in types:
            _covariance_option(covariance, t, "--covariance-types")
        if args.criterion not in CRITERIA:
            raise ValueError(f"--criterion must be bic, aic or icl; got {args.criterion!r}")
        model.select = SelectSpec(k=parse_k(args.k), covariance_types=types, criterion=args.criterion)
    else:
        if args.n_components < 1:
            raise ValueError(f"-k must be >= 1; got {args.n_components}")
        model.n_components = args.n_components
        model.covariance_type = _covariance_option(covariance, args.covariance_type, "--covariance-type")
        if kind in ("sample", "compare") and not covariance.supports(model.covariance_type, "nuts"):
            raise ValueError(
                f"NUTS needs a covariance type the NumPyro model has: {supported_words('nuts', 'or')}; "
                f"got {args.covariance_type!r}"
            )
    em = EMSpec(n_init=args.n_init, init=args.init, max_iter=args.max_iter, tol=args.tol, seed=args.seed)
    mcmc = MCMCSpec(seed=args.seed)
    if kind in ("sample", "compare"):
        for option, value, low in (
            ("--chains", args.chains, 1),
            ("--warmup", args.warmup, 0),
            ("--draws", args.draws, 1),
        ):
            if value < low:
                raise ValueError(f"{option} must be >= {low}; got {value}")
        mcmc = MCMCSpec(
            enabled=True, num_warmup=args.warmup, num_samples=args.draws, num_chains=args.chains, seed=args.seed
        )
    titles = {
        "fit": "EM fit",
        "sample": "Posterior by NUTS",
        "compare": "EM beside the posterior",
        "select": "Model selection",
    }
    methods = {}
    if kind == "compare":
        methods["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    spec = RunSpec(
        name=f"{titles[kind]}: {args.data}",
        description=f"`gmm-ppl {kind}` on {args.data}.",
        data=data,
        model=model,
        em=em,
        mcmc=mcmc,
        compare=kind == "compare",
        **methods,
    )
    return spec.check(names=_OPTION_OF_KEY)  # the user typed options, not card keys


# The card key behind each option of fit, sample, compare and select.
_OPTION_OF_KEY = {
    "em.n_init": "--n-init",
    "em.max_iter": "--max-iter",
    "em.seed": "--seed",
    "mcmc.num_warmup": "--warmup",
    "mcmc.num_samples": "--draws",
    "mcmc.num_chains": "--chains",
    "mcmc.seed": "--seed",
    "compare.methods": "--methods",
}


def _covariance_option(covariance, name: str, option: str) -> str:
    try:
        return covariance.canonical(name)
    except ValueError as err:
        raise ValueError(f"{option}: {err}") from None


def cmd_cards(args) -> int:
    from gmm_ppl.app import cards

    rows = []
    for name in cards.builtin_names():
        with cards.builtin_path(name) as path:
            spec = cards.load_card(path, display=f"gmm_ppl/app/models/{name}.toml")
        rows.append({"name": name, "title": spec.name, "description": spec.description, "summary": _card_words(spec)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(_text_table(["card", "what it runs"], [[r["name"], r["summary"]] for r in rows]))
    print("\nRun one with `gmm-ppl run NAME --out DIR` (or the file: models/NAME.toml).")
    return 0


def _card_words(spec) -> str:
    from gmm_ppl.app.words import code_of

    d, m = spec.data, spec.model
    data = d.dataset or (d.path.name if d.path is not None else f"simulated ({d.simulate.n_rows} rows)")
    if m.method == "kmeans":
        model = f"k-means K={m.n_components}"
    elif m.select is not None:
        s = m.select
        model = f"{s.criterion.upper()} over K {s.k[0]}..{s.k[-1]} x {len(s.covariance_types)} structures"
    else:
        model = f"EM K={m.n_components} {code_of(m.covariance_type)}"
    if m.prior == "default":
        model += " MAP"
    if spec.mcmc.enabled:
        model += f" + NUTS {spec.mcmc.num_chains}x({spec.mcmc.num_warmup}+{spec.mcmc.num_samples})"
    return f"{data}: {model}"


def cmd_datasets(args) -> int:
    import numpy as np

    from gmm_ppl import datasets

    if args.action == "list":
        rows = []
        for name in datasets.names():
            meta = datasets.info(name)
            x = datasets.load(name)
            rows.append(
                {
                    "name": name,
                    "n_rows": int(x.shape[0]),
                    "columns": list(meta.columns),
                    "label_column": meta.label_column,
                }
            )
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(
                _text_table(
                    ["name", "rows", "columns", "labels"],
                    [[r["name"], r["n_rows"], ", ".join(r["columns"]), r["label_column"] or "-"] for r in rows],
                )
            )
        return 0
    meta = datasets.info(args.name)
    if args.action == "describe":
        if meta.label_column is not None:
            x, labels = datasets.load(args.name, return_labels=True)
        else:
            x, labels = datasets.load(args.name), None
        columns = [
            {
                "column": c,
                "mean": float(x[:, j].mean()),
                "sd": float(x[:, j].std(ddof=1)),
                "min": float(x[:, j].min()),
                "max": float(x[:, j].max()),
            }
            for j, c in enumerate(meta.columns)
        ]
        counts = None
        if labels is not None:
            values, n = np.unique(labels, return_counts=True)
            counts = {str(v): int(c) for v, c in zip(values, n, strict=True)}
        record = {
            "name": meta.name,
            "n_rows": int(x.shape[0]),
            "columns": columns,
            "label_column": meta.label_column,
            "label_counts": counts,
            "description": meta.description,
            "source": meta.source,
        }
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        print(f"{meta.name}: {x.shape[0]} rows x {x.shape[1]} columns")
        print(f"\n{meta.description}\n\nSource: {meta.source}\n")
        print(
            _text_table(
                ["column", "mean", "sd", "min", "max"],
                [[c["column"], c["mean"], c["sd"], c["min"], c["max"]] for c in columns],
            )
        )
        if counts:
            print(f"\nlabel column {meta.label_column!r}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return 0
    path = datasets.export(args.name, args.file, overwrite=args.force)
    if args.json:
        print(json.dumps({"name": args.name, "file": str(path)}))
    else:
        print(f"wrote {path} ({meta.name}: columns {', '.join(meta.columns)}" + (
            f", labels {meta.label_column})" if meta.label_column else ")"))  # fmt: skip
    return 0


# -- printing -----------------------------------------------------------------------------


def _cell(v) -> str:
    import numpy as np

    if v is None:
        return "-"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v != v or v in (float("inf"), float("-inf")):
            return "-"
        if 1e3 <= abs(v) < 1e7:  # log-likelihoods, criteria, ESS: the units digit and one more
            return f"{v:.0f}" if v == round(v) else f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def _text_table(header: list[str], rows: list[list], indent: str = "") -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    import numbers

    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [
        all(isinstance(row[j], numbers.Number) and not isinstance(row[j], bool) for row in rows) if rows else False
        for j in range(len(header))
    ]
    widths = [max([len(h)] + [len(r[j]) for r in cells]) for j, h in enumerate(header)]

    def line(values):
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return (indent + "  ".join(parts)).rstrip()

    return "\n".join([line(header)] + [line(r) for r in cells])


def _criterion_grid(wide, indent: str = "  ") -> str:
    """A criterion by K (rows) and structure (columns), one decimal, NA where singular."""
    header = ["K"] + [str(c) for c in wide.columns]
    rows = zip(wide.index, wide.to_numpy(), strict=True)
    cells = [[str(k)] + ["NA" if v != v else f"{v:.1f}" for v in values] for k, values in rows]
    widths = [max(len(r[j]) for r in [header, *cells]) for j in range(len(header))]
    return "\n".join(indent + "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in [header, *cells])


def _frame_table(frame, columns=None, indent: str = "  ") -> str:
    frame = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    header = [frame.index.name or ""] + [str(c) for c in frame.columns]
    rows = [[str(i)] + list(row) for i, row in zip(frame.index, frame.itertuples(index=False), strict=True)]
    return _text_table(header, rows, indent)


def _terminal_width() -> int | None:
    """$COLUMNS if set, else the width of the terminal stdout is; None for a file or a pipe."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def _component_text(outcome, indent: str = "  ") -> str:
    """The component table (weight, rows, mean and sd per column) by component; turned,
    one row per statistic and feature and one column per component, when it is wider than
    the terminal ($COLUMNS, else the terminal's width), as with many columns of data (30
    columns: 63 table columns). Output to a file or a pipe has no width: it is turned only
    when $COLUMNS gives one."""
    from gmm_ppl.app.report import component_table

    header, rows = component_table(outcome)
    text = _text_table(header, rows, indent)
    width = _terminal_width()
    if width is None or max(map(len, text.splitlines())) <= width:
        return text
    turned = _text_table(
        ["component", *(str(row[0]) for row in rows)],
        [[name, *(row[j] for row in rows)] for j, name in enumerate(header) if j > 0],
        indent,
    )
    return f"{indent}(turned: one column per component; by component it is wider than {width} columns)\n{turned}"


def _print_outcome(outcome, args):
    if args.json:
        print(json.dumps(outcome.summary(), indent=2, allow_nan=False))
        return
    print(render(outcome))


def render(outcome) -> str:
    """The run as text tables, for a person. Every criterion is in one sign, mclust's
    (larger is better), and every table that shows one says so above it."""
    from gmm_ppl import criteria
    from gmm_ppl.app.words import describe_covariance, interrupted_words

    spec, t, f = outcome.spec, outcome.table, outcome.fitted
    N, D = t.x.shape
    title = f"card {spec.name} ({spec.card})" if spec.card else spec.name
    lines = [title, ""]
    data = f"{t.source}, {N} rows x {D} columns ({', '.join(t.columns)})"
    if t.n_dropped:
        data += f"; {t.n_dropped} rows with missing values dropped"
    if t.skipped_columns:
        data += f"; non-numeric columns left out: {', '.join(t.skipped_columns)}"
    if t.mean is not None:
        data += "; standardised (parameters in standardised units)"
    lines.append(f"data    {data}")
    if outcome.selection is not None:
        sel = outcome.selection
        lines.append(
            f"grid    K in {spec.model.select.k} x {', '.join(spec.model.select.covariance_types)}; "
            f"best by {sel.criterion.upper()}: {sel.best[0]}, K={sel.best[1]}"
        )
        top = sel.table.sort_values(sel.criterion, ascending=False).head(8)
        cols = ["covariance_type", "n_components", "log_likelihood", "n_parameters", "bic", "aic", "icl", "singular"]
        lines += ["", f"  Criteria in {criteria.SIGN_LINE}.", _frame_table(top[cols].set_index("covariance_type")), ""]
        lines += [f"{criteria.label(sel.criterion)} by K and structure, as mclust prints it (NA: singular):", ""]
        lines += [_criterion_grid(sel.wide_table()), ""]
    if f.method == "kmeans":
        lines.append(
            f"k-means K={f.n_components}: inertia {f.extra['inertia']:.6g}, {f.n_iter} iterations, "
            f"{'converged' if f.converged else 'not converged'}; as the EII mixture, log-likelihood "
            f"{f.log_likelihood:.6f} per row"
        )
    else:
        kind = "MAP-EM (default prior)" if f.prior is not None else "maximum likelihood"
        lines.append(f"model   K={f.n_components}, {describe_covariance(f.covariance_type)}; {kind}")
        lines.append(
            f"EM      log-likelihood {f.log_likelihood:.6f} per row (total {f.log_likelihood * N:.3f}), "
            f"BIC {f.bic(N, D):.2f} ({criteria.FORMULAS['bic']}, {criteria.DIRECTION}); {f.n_iter} iterations, "
            f"{'converged' if f.converged else 'NOT converged'}; best of {len(f.restart_objectives)} restarts"
        )
    lines += ["", _component_text(outcome)]
    if outcome.idata is not None:
        d = outcome.diagnostics()
        lines += [
            "",
            f"NUTS    {d['num_chains']} chains x ({d['num_warmup']} warm-up + {d['num_samples']} draws): "
            f"{d['divergences']} divergences, largest r_hat {d['max_r_hat']:.3f}, smallest bulk ESS "
            f"{d['min_ess_bulk']:.0f}",
        ]
        if outcome.interrupted is not None:
            lines.append(f"        INTERRUPTED: {interrupted_words(outcome.interrupted)}")
        if outcome.comparison is None:
            cols = ["mean", "sd", "hdi_3%", "hdi_97%", "r_hat", "ess_bulk", "ess_tail"]
            lines += ["", _frame_table(outcome.posterior_summary, cols)]
    if outcome.comparison is not None:
        c = outcome.comparison
        cols = ["em_ml", "em_map", "wald_low", "wald_high", "boot_low", "boot_high", "vb_mean", "vb_sd"]
        cols += ["mean", "sd", "hdi_low", "hdi_high", "ml_in_hdi", "map_in_hdi", "r_hat", "ess_bulk"]
        cols = [col for col in cols if col in c.parameters.columns]
        lines += ["", f"EM beside the posterior (HDI {c.hdi_prob:.0%}):", "", _frame_table(c.parameters, cols)]
        from gmm_ppl.compare import SUMMARY_HEADER

        lines += ["", f"  {SUMMARY_HEADER}", _frame_table(c.readable_summary())]
    if outcome.recovery is not None:
        r = outcome.recovery
        lines += ["", "Recovery of the true parameters (components matched by KL):", "", _frame_table(r)]
    if outcome.crosstab is not None:
        lines += [
            "",
            f"Against the known {t.label_name}: adjusted Rand index {outcome.adjusted_rand_index:.3f}",
            "",
            _frame_table(outcome.crosstab),
        ]
    lines.append("")
    if outcome.out is not None:
        lines.append(f"report: {outcome.out / 'report.md'}  ({len(outcome.files)} files in {outcome.out})")
    else:
        lines.append("nothing written (add --out DIR to keep the results)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Model cards: one declarative TOML file per model, checked strictly, turned into a ``RunSpec``.

A card::

    name = "old_faithful"                  # required
    description = "..."                    # required

    [data]                                 # exactly one of dataset, path, simulate
    dataset = "old_faithful"               # a shipped dataset (gmm-ppl datasets list)
    # path = "data.csv"                    # a CSV or .npy file, relative to the card's folder
    columns = ["eruptions", "waiting"]     # optional: the columns to use
    standardize = false                    # optional: centre and scale every column
    drop_na = false                        # optional: drop rows with missing values

    [data.simulate]                        # rows drawn from gmm_model with known parameters
    n_rows = 600
    seed = 3
    covariance_type = "full"               # of the true covariances below
    weights = [0.5, 0.3, 0.2]
    means = [[0.0, 0.0], [4.0, 4.0], [-4.0, 3.0]]
    covariances = [...]

    [model]
    n_components = 2                       # or select = {k = "1..9", covariance_types = [...], criterion = "bic"}
    covariance_type = "full"               # a name or mclust code (VVV, EEE, ...)
    prior = "none"                         # "none" (maximum likelihood) or "default" (MAP-EM)
    method = "em"                          # "em" or "kmeans" (the hard, equal-weight spherical limit)

    [em]                                   # all optional
    n_init = 10
    init = "kmeans++"
    max_iter = 1000
    tol = 1e-6
    seed = 0

    [mcmc]                                 # optional; NUTS on the same model
    enabled = true
    num_warmup = 500
    num_samples = 500
    num_chains = 2
    seed = 1

    [compare]                              # optional; what is set beside the posterior
    methods = ["ml", "map", "vb", "nuts", "bootstrap"]   # default ["ml", "map", "nuts"]

``model.select.k`` is a range written as a string, "1..9" (both ends included), or a list of
the exact K values ([2, 3, 5]). Any unknown key, wrong type or value is refused with the
key's dotted name: ``card models/x.toml: em.n_inti is not a known key (...)``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import math
import numbers
import tomllib
from pathlib import Path

from gmm_ppl import covariance
from gmm_ppl.app.words import supported_words
from gmm_ppl.init import INIT_METHODS
from gmm_ppl.selection import DEFAULT_COVARIANCE_TYPES

CRITERIA = ("bic", "aic", "icl")
# Upper limits, so that a hostile card or option fails with a message instead of an
# OverflowError or an allocation of terabytes: counts are int32 inside the compiled loops,
# JAX seeds are int64, restarts run batched in memory, and a K grid is a list.
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**63 - 1
MAX_RESTARTS = 10_000
MAX_GRID = 1_000
MAX_SIMULATED_ROWS = 10_000_000
# EM keeps every restart's objective trace, n_init x (max_iter + 1) numbers; NUTS keeps
# num_chains x num_samples draws. Beyond these a run dies of memory, not with a message.
MAX_TRACE = 10**8
MAX_CHAINS = 1_000
MAX_DRAWS = 10**6
PRIORS = ("none", "default")
METHODS = ("em", "kmeans")
# What a comparison sets side by side (``RunSpec.methods``): maximum-likelihood and MAP EM
# (the run's own fit is always there; naming the other adds it), variational Bayes under the
# posterior's prior, the NUTS posterior itself (which the others are set beside: always
# there, named or not), and EM's own uncertainty about the run's fit ('bootstrap': its Wald
# interval from the observed information and its bootstrap percentile interval).
COMPARE_METHODS = ("ml", "map", "vb", "nuts", "bootstrap")
DEFAULT_COMPARE_METHODS = ("ml", "map", "nuts")


class CardError(ValueError):
    """A card that cannot be run; the message starts with 'card PATH:' and names the key."""


# -- the run specification (what a card or a subcommand asks for) -------------------------


@dataclasses.dataclass
class SimulateSpec:
    n_rows: int
    seed: int
    weights: list
    means: list
    covariances: list
    covariance_type: str = "full"


@dataclasses.dataclass
class DataSpec:
    dataset: str | None = None
    path: Path | None = None
    simulate: SimulateSpec | None = None
    columns: list[str] | None = None
    standardize: bool = False
    drop_na: bool = False


@dataclasses.dataclass
class SelectSpec:
    k: list[int]
    covariance_types: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_COVARIANCE_TYPES))
    criterion: str = "bic"


@dataclasses.dataclass
class ModelSpec:
    n_components: int | None = None
    select: SelectSpec | None = None
    covariance_type: str = "full"
    prior: str = "none"
    method: str = "em"


@dataclasses.dataclass
class EMSpec:
    n_init: int = 10
    init: str = "kmeans++"
    max_iter: int = 1000
    tol: float = 1e-6
    seed: int = 0


@dataclasses.dataclass
class MCMCSpec:
    enabled: bool = False
    num_warmup: int = 500
    num_samples: int = 500
    num_chains: int = 4
    seed: int = 0


@dataclasses.dataclass
class RunSpec:
    """Everything a run needs; built from a card (``load_card``) or from a subcommand.

    ``compare``: when NUTS ran, set EM beside the posterior (``gp.compare``); ``methods``:
    what the comparison sets side by side (``COMPARE_METHODS``).
    """

    name: str
    description: str
    data: DataSpec
    model: ModelSpec
    em: EMSpec = dataclasses.field(default_factory=EMSpec)
    mcmc: MCMCSpec = dataclasses.field(default_factory=MCMCSpec)
    compare: bool = True
    methods: tuple[str, ...] = DEFAULT_COMPARE_METHODS
    card: str | None = None

    def check(self, where: str = "", names: dict[str, str] | None = None) -> RunSpec:
        """Refuse combinations no run can honour (ValueError naming the key).

        ``names``: what to call a key in the messages instead (the command line passes its
        options: ``--n-init`` for ``em.n_init``)."""
        prefix = where

        def name(key: str) -> str:
            return (names or {}).get(key, key)

        m = self.model
        if m.method not in METHODS:
            raise ValueError(f"{prefix}model.method must be one of {list(METHODS)}; got {m.method!r}")
        if m.prior not in PRIORS:
            raise ValueError(f"{prefix}model.prior must be 'none' or 'default'; got {m.prior!r}")
        if (m.n_components is None) == (m.select is None):
            raise ValueError(f"{prefix}model needs exactly one of n_components and select")
        if m.n_components is not None and not 1 <= m.n_components <= MAX_COUNT:
            raise ValueError(f"{prefix}model.n_components must be between 1 and {MAX_COUNT}; got {m.n_components}")
        types = m.select.covariance_types if m.select is not None else [m.covariance_type]
        for t in types:
            try:
                covariance.canonical(t)
            except ValueError as err:
                key = "model.select.covariance_types" if m.select is not None else "model.covariance_type"
                raise ValueError(f"{prefix}{key}: {err}") from None
        no_nuts = [t for t in types if not covariance.supports(t, "nuts")]
        if m.select is not None:
            if not m.select.k or min(m.select.k) < 1 or max(m.select.k) > MAX_COUNT or len(m.select.k) > MAX_GRID:
                raise ValueError(
                    f"{prefix}model.select.k must list at most {MAX_GRID} K values between 1 and {MAX_COUNT}; "
                    f"got {_brief(m.select.k)}"
                )
            if not m.select.covariance_types:
                raise ValueError(f"{prefix}model.select.covariance_types is empty")
            if m.select.criterion not in CRITERIA:
                raise ValueError(
                    f"{prefix}model.select.criterion must be one of {list(CRITERIA)}; got {m.select.criterion!r}"
                )
        if m.method == "kmeans":
            if m.select is not None:
                raise ValueError(f"{prefix}model.select does not apply to method 'kmeans'; give n_components")
            if m.prior != "none":
                raise ValueError(f"{prefix}model.prior does not apply to method 'kmeans'")
            if self.mcmc.enabled:
                raise ValueError(f"{prefix}mcmc.enabled: NUTS needs method 'em' (k-means is not a probability model)")
        if self.mcmc.enabled and no_nuts:
            raise ValueError(
                f"{prefix}mcmc.enabled: covariance type {no_nuts[0]} has no NumPyro model; "
                f"NUTS supports {supported_words('nuts')}"
            )
        unknown = [x for x in self.methods if x not in COMPARE_METHODS]
        if unknown or not self.methods:
            raise ValueError(
                f"{prefix}{name('compare.methods')} must name some of {', '.join(COMPARE_METHODS)}; got "
                f"{', '.join(self.methods) or 'none'}"
            )
        if tuple(self.methods) != DEFAULT_COMPARE_METHODS and not self.mcmc.enabled:
            raise ValueError(
                f"{prefix}{name('compare.methods')}: a comparison sets the methods beside NUTS's posterior; "
                "enable [mcmc]"
            )
        e, c = self.em, self.mcmc
        for key, value, low, high in (
            ("em.n_init", e.n_init, 1, MAX_RESTARTS),
            ("em.max_iter", e.max_iter, 1, MAX_COUNT),
            ("em.seed", e.seed, 0, MAX_SEED),
            ("mcmc.num_warmup", c.num_warmup, 0, MAX_COUNT),
            ("mcmc.num_samples", c.num_samples, 1, MAX_COUNT),
            ("mcmc.num_chains", c.num_chains, 1, MAX_CHAINS),
            ("mcmc.seed", c.seed, 0, MAX_SEED),
        ):
            if value < low:
                raise ValueError(f"{prefix}{name(key)} must be >= {low}; got {value}")
            if value > high:
                raise ValueError(f"{prefix}{name(key)} must be at most {high}; got {value}")
        if e.n_init * (e.max_iter + 1) > MAX_TRACE:
            raise ValueError(
                f"{prefix}{name('em.n_init')} x ({name('em.max_iter')} + 1) = {e.n_init * (e.max_iter + 1)} "
                f"is above {MAX_TRACE}: EM keeps every restart's objective trace in memory; lower one of them"
            )
        if c.enabled and c.num_chains * c.num_samples > MAX_DRAWS:
            raise ValueError(
                f"{prefix}{name('mcmc.num_chains')} x {name('mcmc.num_samples')} = {c.num_chains * c.num_samples} "
                f"is above {MAX_DRAWS} kept draws; lower one of them"
            )
        if e.init not in INIT_METHODS:
            raise ValueError(f"{prefix}em.init must be one of {list(INIT_METHODS)}; got {e.init!r}")
        if not 0 <= e.tol < math.inf:
            raise ValueError(f"{prefix}em.tol must be a finite number >= 0; got {e.tol}")
        d = self.data
        if sum(x is not None for x in (d.dataset, d.path, d.simulate)) != 1:
            raise ValueError(f"{prefix}data needs exactly one of dataset, path and simulate")
        if d.simulate is not None and d.standardize:
            raise ValueError(
                f"{prefix}data.standardize cannot be combined with data.simulate: the true parameters are in raw units"
            )
        return self


def fast(spec: RunSpec) -> RunSpec:
    """The same run, shrunk for tests and quick looks: at most 2 EM restarts and 200
    iterations, NUTS 2 chains x (100 warm-up + 100 draws), a grid of at most 3 K values by
    2 covariance types."""
    spec = dataclasses.replace(
        spec,
        em=dataclasses.replace(spec.em, n_init=min(spec.em.n_init, 2), max_iter=min(spec.em.max_iter, 200)),
        mcmc=dataclasses.replace(
            spec.mcmc,
            num_warmup=min(spec.mcmc.num_warmup, 100),
            num_samples=min(spec.mcmc.num_samples, 100),
            num_chains=min(spec.mcmc.num_chains, 2),
        ),
    )
    if spec.model.select is not None:
        select = dataclasses.replace(
            spec.model.select,
            k=spec.model.select.k[:3],
            covariance_types=spec.model.select.covariance_types[:2],
        )
        spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model, select=select))
    return spec


def parse_k(text) -> list[int]:
    """'1..9' -> [1, ..., 9]; '1,2,5' -> [1, 2, 5]; '3' -> [3]."""
    text = str(text).strip()
    try:
        if ".." in text:
            low, high = (int(p) for p in text.split(".."))
            if high < low:
                raise ValueError
            # Checked before the list is built: "1..10**20" would not fit in memory.
            if high - low + 1 > MAX_GRID:
                raise OverflowError
            ks = list(range(low, high + 1))
        else:
            ks = [int(p) for p in text.split(",")]
    except ValueError:
        raise ValueError(f"K must be a range like 1..9 or a list like 1,2,3; got {_brief(text)}") from None
    except OverflowError:
        raise ValueError(f"a K grid holds at most {MAX_GRID} values; got {_brief(text)}") from None
    if not ks or min(ks) < 1:
        raise ValueError(f"K values must be >= 1; got {_brief(text)}")
    if max(ks) > MAX_COUNT or len(set(ks)) > MAX_GRID:
        raise ValueError(f"K values must be at most {MAX_COUNT}, and at most {MAX_GRID} of them; got {_brief(text)}")
    return sorted(set(ks))


def _brief(value, limit: int = 60) -> str:
    """repr of a value for a message, cut to ``limit`` characters."""
    return _cut(repr(value), limit)


def _cut(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- reading a card ----------------------------------------------------------------------

_TOML_TYPES = {str: "string", bool: "boolean", int: "integer", float: "float", list: "array", dict: "table"}


def _type_name(value) -> str:
    for t, name in _TOML_TYPES.items():
        if isinstance(value, t):
            return name
    return type(value).__name__


class _Reader:
    """Takes keys out of one TOML table, checking names and types; dotted names in errors."""

    def __init__(self, card: str, raw: dict, where: str, known: tuple[str, ...]):
        self.card, self.raw, self.where = card, raw, where
        for key in raw:
            if key not in known:
                raise CardError(f"card {card}: {_cut(self.name(key))} is not a known key (known: {', '.join(known)})")

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str):
        value = self.raw[key]
        raise CardError(
            f"card {self.card}: {self.name(key)} must be {expected}; got {_brief(value)} ({_type_name(value)})"
        )

    def has(self, key: str) -> bool:
        return key in self.raw

    def text(self, key, default=None, choices=None, required=False):
        if key not in self.raw:
            if required:
                raise CardError(f"card {self.card}: {self.name(key)} is required")
            return default
        value = self.raw[key]
        if not isinstance(value, str):
            self.fail(key, "a string")
        if choices is not None and value not in choices:
            self.fail(key, "one of " + ", ".join(repr(c) for c in choices))
        return value

    def flag(self, key, default):
        if key not in self.raw:
            return default
        if not isinstance(self.raw[key], bool):
            self.fail(key, "true or false")
        return self.raw[key]

    def integer(self, key, default, minimum=0, maximum=None):
        if key not in self.raw:
            return default
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "an integer")
        if value < minimum:
            self.fail(key, f"an integer >= {minimum}")
        if maximum is not None and value > maximum:
            self.fail(key, f"an integer <= {maximum}")
        return value

    def number(self, key, default, minimum=0.0):
        if key not in self.raw:
            return default
        value = self.raw[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self.fail(key, "a number")
        if not value >= minimum:
            self.fail(key, f"a number >= {minimum}")
        try:
            return float(value)
        except OverflowError:  # a TOML integer beyond float64, such as 10**400
            self.fail(key, "a number within float64's range")

    def table(self, key, required=False) -> dict | None:
        if key not in self.raw:
            if required:
                raise CardError(f"card {self.card}: [{self.name(key)}] is required")
            return None
        if not isinstance(self.raw[key], dict):
            self.fail(key, "a table")
        return self.raw[key]

    def strings(self, key, default=None):
        if key not in self.raw:
            return default
        value = self.raw[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            self.fail(key, "a non-empty array of strings")
        return list(value)

    def array(self, key, depth: int):
        """A (nested) array of numbers of the given depth (1: [1, 2], 2: [[1, 2]], ...)."""
        if key not in self.raw:
            raise CardError(f"card {self.card}: {self.name(key)} is required")
        value = self.raw[key]

        def ok(v, d):
            if d == 0:
                return isinstance(v, numbers.Real) and not isinstance(v, bool)
            return isinstance(v, list) and len(v) > 0 and all(ok(e, d - 1) for e in v)

        if not ok(value, depth):
            self.fail(key, f"an array of numbers nested {depth} deep")
        return value


def _covariance_depth(covariance_type: str) -> int:
    return len(covariance.get(covariance_type).shape(1, 1))


def parse_card(raw: dict, card: str, folder: Path) -> RunSpec:
    """A ``RunSpec`` from a parsed TOML document; ``folder`` anchors ``data.path``."""
    top = _Reader(card, raw, "", ("name", "description", "data", "model", "em", "mcmc", "compare"))
    name = top.text("name", required=True)
    description = top.text("description", required=True)

    d = _Reader(
        card,
        top.table("data", required=True),
        "data",
        ("dataset", "path", "simulate", "columns", "standardize", "drop_na"),
    )
    sources = [k for k in ("dataset", "path", "simulate") if d.has(k)]
    if len(sources) != 1:
        raise CardError(
            f"card {card}: [data] needs exactly one of dataset, path and simulate; got "
            + (", ".join(sources) if sources else "none")
        )
    data = DataSpec(
        columns=d.strings("columns"), standardize=d.flag("standardize", False), drop_na=d.flag("drop_na", False)
    )
    if d.has("dataset"):
        from gmm_ppl import datasets

        data.dataset = d.text("dataset", choices=datasets.names())
    elif d.has("path"):
        data.path = _inside(card, folder, d.text("path"))
    else:
        s = _Reader(
            card,
            d.table("simulate"),
            "data.simulate",
            ("n_rows", "seed", "covariance_type", "weights", "means", "covariances"),
        )
        cov_type = s.text("covariance_type", "full")
        try:
            canonical = covariance.canonical(cov_type)
        except ValueError as err:
            raise CardError(f"card {card}: data.simulate.covariance_type: {err}") from None
        if not covariance.supports(canonical, "nuts"):
            raise CardError(
                f"card {card}: data.simulate.covariance_type must be {supported_words('nuts', 'or')}; got {cov_type!r}"
            )
        if not s.has("n_rows"):
            raise CardError(f"card {card}: data.simulate.n_rows is required")
        data.simulate = SimulateSpec(
            n_rows=s.integer("n_rows", None, minimum=1, maximum=MAX_SIMULATED_ROWS),
            seed=s.integer("seed", 0, maximum=MAX_SEED),
            weights=s.array("weights", 1),
            means=s.array("means", 2),
            covariances=s.array("covariances", _covariance_depth(canonical)),
            covariance_type=canonical,
        )
        _check_truth(card, data.simulate)

    m = _Reader(
        card,
        top.table("model", required=True),
        "model",
        ("n_components", "select", "covariance_type", "prior", "method"),
    )
    model = ModelSpec(
        n_components=m.integer("n_components", None, minimum=1),
        prior=m.text("prior", "none", choices=PRIORS),
        method=m.text("method", "em", choices=METHODS),
    )
    if m.has("select"):
        s = _Reader(card, m.table("select"), "model.select", ("k", "covariance_types", "criterion"))
        if not s.has("k"):
            raise CardError(f'card {card}: model.select.k is required (a range such as "1..9" or a list of K)')
        k = s.raw["k"]
        if isinstance(k, str):
            try:
                ks = parse_k(k)
            except ValueError as err:
                raise CardError(f"card {card}: model.select.k: {err}") from None
        elif isinstance(k, list) and k and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in k):
            ks = sorted(set(k))
        else:
            s.fail("k", 'a range such as "1..9" or an array of integers >= 1')
        model.select = SelectSpec(
            k=ks,
            covariance_types=s.strings("covariance_types", list(DEFAULT_COVARIANCE_TYPES)),
            criterion=s.text("criterion", "bic", choices=CRITERIA),
        )
        if m.has("covariance_type"):
            raise CardError(
                f"card {card}: model.covariance_type and model.select both given; "
                "list the types in model.select.covariance_types"
            )
    if m.has("covariance_type") and model.method == "kmeans":
        raise CardError(
            f"card {card}: model.covariance_type does not apply to method 'kmeans' "
            "(k-means is the equal-weight limit with one shared spherical variance, EII)"
        )
    model.covariance_type = m.text("covariance_type", "full")
    if model.method == "kmeans":
        model.covariance_type = "EII"

    em = EMSpec()
    if top.has("em"):
        e = _Reader(card, top.table("em"), "em", ("n_init", "init", "max_iter", "tol", "seed"))
        em = EMSpec(
            n_init=e.integer("n_init", em.n_init, minimum=1),
            init=e.text("init", em.init, choices=INIT_METHODS),
            max_iter=e.integer("max_iter", em.max_iter, minimum=1),
            tol=e.number("tol", em.tol),
            seed=e.integer("seed", em.seed),
        )
    mcmc = MCMCSpec()
    if top.has("mcmc"):
        c = _Reader(card, top.table("mcmc"), "mcmc", ("enabled", "num_warmup", "num_samples", "num_chains", "seed"))
        mcmc = MCMCSpec(
            enabled=c.flag("enabled", True),
            num_warmup=c.integer("num_warmup", mcmc.num_warmup),
            num_samples=c.integer("num_samples", mcmc.num_samples, minimum=1),
            num_chains=c.integer("num_chains", mcmc.num_chains, minimum=1),
            seed=c.integer("seed", mcmc.seed),
        )
    methods = DEFAULT_COMPARE_METHODS
    if top.has("compare"):
        methods = tuple(_Reader(card, top.table("compare"), "compare", ("methods",)).strings("methods", methods))
    spec = RunSpec(
        name=name, description=description, data=data, model=model, em=em, mcmc=mcmc, methods=methods, card=card
    )
    try:
        return spec.check()
    except CardError:
        raise
    except ValueError as err:
        raise CardError(f"card {card}: {err}") from None


def _check_truth(card: str, sim: SimulateSpec) -> None:
    """The true parameters of ``[data.simulate]``: one shape, weights on the simplex, positive
    definite covariances, means and covariances within the range the data may have."""
    import numpy as np

    from gmm_ppl import GMMParams, _validate
    from gmm_ppl._validate import MAX_ABS_VALUE

    try:
        means = np.asarray(sim.means, dtype=np.float64)
    except (ValueError, OverflowError):  # rows of different lengths; an integer beyond float64
        raise CardError(f"card {card}: data.simulate.means must be a K x D array (rows of one length)") from None
    K, D = means.shape
    truth = GMMParams(sim.weights, means, sim.covariances)
    try:
        arrays = [np.asarray(a, dtype=np.float64) for a in truth]
    except (ValueError, OverflowError):
        raise CardError(f"card {card}: data.simulate: weights, means and covariances must be regular arrays") from None
    try:
        _validate.check_params(truth, K, D, sim.covariance_type, name="data.simulate")
    except ValueError as err:
        raise CardError(f"card {card}: {err} (K={K} and D={D}, from data.simulate.means)") from None
    if max(float(np.abs(a).max()) for a in arrays) > MAX_ABS_VALUE:
        raise CardError(
            f"card {card}: data.simulate: means and covariances beyond +-{MAX_ABS_VALUE:.0e} would draw rows "
            "that EM cannot fit in float64"
        )


def _inside(card: str, folder: Path, path: str) -> Path:
    """``path`` relative to the card's folder; refused if it leads out of that folder."""
    root = folder.resolve()
    if "\x00" in path:
        raise CardError(f"card {card}: data.path {_brief(path)} holds a NUL character")
    try:
        target = (root / path).resolve()
    except (OSError, RuntimeError) as err:  # a symlink loop: RuntimeError before Python 3.13, OSError after
        raise CardError(f"card {card}: data.path {_brief(path)} cannot be resolved: {err}") from None
    if Path(path).is_absolute() or not target.is_relative_to(root):
        raise CardError(
            f"card {card}: data.path {path!r} leads out of the card's folder {folder}; "
            "put the data file next to the card or below it"
        )
    return target


def load_card(path, display: str | None = None) -> RunSpec:
    """Read and check the card at ``path`` (a TOML file) into a ``RunSpec``.

    ``display``: how messages name the card (default: ``path`` as given).
    """
    path = Path(path)
    card = display or str(path)
    if not path.is_file():
        raise CardError(f"card {card}: no such file" + ("" if not path.exists() else " (it is a folder)"))
    try:
        # utf-8-sig: an editor's byte-order mark (Windows Notepad) is not part of the TOML.
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as err:
        raise CardError(f"card {card}: not valid TOML: {err}") from None
    except UnicodeDecodeError:
        raise CardError(f"card {card}: not a UTF-8 text file") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise CardError(f"card {card}: not a model card: arrays or tables nested too deeply") from None
    return parse_card(raw, card, path.parent)


# -- the cards shipped in gmm_ppl/app/models ---------------------------------------------


def builtin_folder():
    """The folder of the shipped cards (``gmm_ppl/app/models``; ``models/`` in the repository)."""
    return importlib.resources.files("gmm_ppl.app") / "models"


def builtin_names() -> list[str]:
    """Names of the shipped cards (file names without .toml)."""
    return sorted(p.name[: -len(".toml")] for p in builtin_folder().iterdir() if p.name.endswith(".toml"))


@contextlib.contextmanager
def builtin_path(name: str):
    """A filesystem path of the shipped card ``name`` (for the duration of the context)."""
    if name not in builtin_names():
        raise CardError(f"card {name}: no such file, and no built-in card of that name ({', '.join(builtin_names())})")
    with importlib.resources.as_file(builtin_folder() / f"{name}.toml") as path:
        yield path

"""Model-selection grid: gmm_ppl (padded, one program per structure; and K by K) against a
loop of scikit-learn fits, on the shipped datasets. Run by hand:

    .venv/bin/python benchmarks/selection.py            # writes benchmarks/results/selection.md

scikit-learn has four of the six structures (VVV, EEE, VVI, VII = full, tied, diag,
spherical); the comparison uses those four for all three systems, K = 1..9, 10 restarts,
the same tol (1e-5 per row) and max_iter. Times include gmm_ppl's compilation (the
"first" columns) and exclude it (the "again" columns: a second call, same shapes).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from _machine import describe
from sklearn.mixture import GaussianMixture

import gmm_ppl as gp
from gmm_ppl.density import full_covariances

TYPES = ("VVV", "EEE", "VVI", "VII")
SK_NAMES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
KS = range(1, 10)
KW = dict(n_init=10, tol=1e-5, max_iter=1000)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def sklearn_grid(x):
    """Best -bic over the grid: over all fits, and over the fits gmm_ppl would not mark
    singular (a covariance eigenvalue below 2 * reg_covar, or below 1e-6 of the data's
    column variances): scikit-learn has no such guard, and a component collapsed onto
    repeated values wins its grid."""
    best = best_regular = -np.inf
    spread = x.std(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for code in TYPES:
            for k in KS:
                gm = GaussianMixture(k, covariance_type=SK_NAMES[code], random_state=0, **KW).fit(x)
                bic = -gm.bic(x)
                full = full_covariances(gm.covariances_, SK_NAMES[code], k, x.shape[1])
                eig = np.linalg.eigvalsh(full).min()
                scaled = np.linalg.eigvalsh(full / np.outer(spread, spread)).min()
                best = max(best, bic)
                if eig >= 2 * gm.reg_covar and scaled >= 1e-6:
                    best_regular = max(best_regular, bic)
    return best, best_regular


def main() -> None:
    gp.disable_compilation_cache()  # the "first call" columns include compiling
    lines = [
        "# Model-selection grid: 4 structures x K=1..9, 10 restarts, tol 1e-5",
        "",
        describe(scikit_learn=sklearn.__version__, gmm_ppl=gp.__version__),
        "",
        "gmm_ppl's 'first call' includes compiling its programs; 'again' is a second call with the same",
        "shapes. Singular fits (see gmm_ppl.select_model) cannot win in gmm_ppl's grid.",
        "",
        "| data | system | first call (s) | again (s) | best BIC (mclust sign) | best model |",
        "|---|---|---|---|---|---|",
        # scikit-learn's row gives the best BIC over non-singular fits, then over all fits.
    ]
    for name in ("old_faithful", "diabetes"):
        x = gp.datasets.load(name)
        for label, padded in (("gmm_ppl padded", True), ("gmm_ppl K by K", False)):

            def run(padded=padded, x=x):
                return gp.select_model(x, KS, TYPES, key=0, padded=padded, progress=False, **KW)

            first, sel = timed(run)
            again, _ = timed(run)
            best = f"{sel.best[0]}, K={sel.best[1]}"
            lines.append(f"| {name} | {label} | {first:.1f} | {again:.1f} | {sel.table.bic.max():.2f} | {best} |")
            print(lines[-1], flush=True)
        seconds, (bic, bic_regular) = timed(lambda x=x: sklearn_grid(x))
        lines.append(
            f"| {name} | scikit-learn loop | {seconds:.1f} | {seconds:.1f} | {bic_regular:.2f} "
            f"(all fits, singular ones included: {bic:.2f}) | |"
        )
        print(lines[-1], flush=True)
    out = Path(__file__).parent / "results" / "selection.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
